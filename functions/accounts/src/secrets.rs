//! Secrets: random tokens and their stored hashes, password hashing (argon2id), and the
//! signing of access tokens (RS256 with aws-lc-rs, constant-time, with the public key served
//! as a JWKS).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};
use tdb_api::Claims;
use tdb_domain::Finess;
use tdb_domain::accounts::AccountId;
use tdb_domain::rights::Role;

/// Bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without an entropy source no account can be made safely: failing loudly is right.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A new secret token for a link or a refresh: 256 random bits, URL-safe.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What is stored of a token: its SHA-256, in hex. Tokens have 256 bits of entropy, so a
/// fast hash is enough; a stolen table gives no usable token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes a password with argon2id and the OWASP-recommended parameters (19 MiB, t=2, p=1),
/// as a PHC string that records them.
pub fn hash_password(password: &str) -> String {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
        .expect("argon2 accepts a 16-byte salt and a bounded password")
        .to_string()
}

/// Whether `password` matches a stored PHC hash. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("JWT_SIGNING_KEY is not an RSA private key in PEM form")]
    NotRsaPem(#[source] jsonwebtoken::errors::Error),
}

/// Signs access tokens. The key id is the key's RFC 7638 thumbprint, so a rotated key gets
/// a new id without configuration.
pub struct TokenSigner {
    key: EncodingKey,
    kid: String,
    jwks: JwkSet,
    issuer: String,
    audience: String,
    /// Lifetime of an access token, in seconds.
    pub ttl: i64,
}

impl TokenSigner {
    pub fn from_pem(
        pem: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<TokenSigner, SigningKeyError> {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(SigningKeyError::NotRsaPem)?;
        let jwk = public_jwk(&key)?;
        Ok(TokenSigner {
            key,
            kid: jwk.common.key_id.clone().expect("public_jwk names the key"),
            jwks: JwkSet { keys: vec![jwk] },
            issuer: issuer.into(),
            audience: audience.into(),
            // Short: access tokens cannot be revoked one by one, refresh tokens can.
            ttl: 10 * 60,
        })
    }

    pub fn sign(
        &self,
        account: &AccountId,
        roles: Vec<Role>,
        acting_for: Option<Finess>,
        now: i64,
    ) -> String {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: account.clone(),
            iat: now,
            exp: now + self.ttl,
            roles,
            acting_for,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .expect("an RSA key that loaded signs any claims")
    }

    /// The `iss` of the tokens it signs: the address the accounts API is served at.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.jwks).expect("a key set serialises")
    }
}

/// The public half of a signing key, named by its RFC 7638 thumbprint.
fn public_jwk(key: &EncodingKey) -> Result<Jwk, SigningKeyError> {
    let mut jwk =
        Jwk::from_encoding_key(key, Algorithm::RS256).map_err(SigningKeyError::NotRsaPem)?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(SigningKeyError::NotRsaPem)?;
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// The JWKS of the public halves of signing keys (PKCS#8 PEM), as the template's
/// `JwtPublicKeys` takes it (`tdb jwks`): during a rotation, the old key and the new.
pub fn public_key_set(pems: &[String]) -> Result<String, SigningKeyError> {
    let keys = pems
        .iter()
        .map(|pem| {
            let key =
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(SigningKeyError::NotRsaPem)?;
            public_jwk(&key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::to_string(&JwkSet { keys }).expect("a key set serialises"))
}

/// A new 2048-bit RSA signing key in PKCS#8 PEM (`tdb keygen`, tests). Store it as a secret.
/// Generated by aws-lc-rs, which also signs: constant-time RSA.
pub fn generate_signing_key() -> String {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .expect("RSA key generation from the OS generator");
    let der = key.as_der().expect("a fresh key encodes");
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_argon2id_and_verify_only_the_right_password() {
        let hash = hash_password("cheval agrafe pile correcte");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("cheval agrafe pile correcte", &hash));
        assert!(!verify_password("cheval agrafe pile correctE", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert_ne!(hash, hash_password("cheval agrafe pile correcte"), "salted");
    }

    #[test]
    fn a_key_set_of_two_keys_accepts_tokens_of_either_and_no_other() {
        let (old, new, other) = (
            generate_signing_key(),
            generate_signing_key(),
            generate_signing_key(),
        );
        let set = public_key_set(&[old.clone(), new.clone()]).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&set).unwrap();
        assert_eq!(parsed["keys"].as_array().unwrap().len(), 2);
        assert!(!set.contains("\"d\""), "no private part: {set}");
        let verifier =
            tdb_api::TokenVerifier::from_jwks(&set, "https://api.test", "tdb-esms").unwrap();
        let account = AccountId::from_random([7; 16]);
        for (pem, accepted) in [(&old, true), (&new, true), (&other, false)] {
            let signer = TokenSigner::from_pem(pem, "https://api.test", "tdb-esms").unwrap();
            // The same key names itself the same in the signer's JWKS and in the set.
            assert_eq!(set.contains(&signer.kid), accepted);
            let token = signer.sign(&account, vec![Role::NationalAdmin], None, now());
            assert_eq!(verifier.verify(&token).is_ok(), accepted);
        }
        assert!(public_key_set(&["not a key".to_string()]).is_err());
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_a_hash() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a));
    }
}
