//! Access tokens: what they claim, and their verification.

use crate::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tdb_domain::Finess;
use tdb_domain::accounts::AccountId;
use tdb_domain::rights::{Action, Denied, Role, Target, authorize};

/// The claims of an access token. The roles are the ones the account acts under: all its
/// roles, or those on the structure the user chose (`acting_for`) plus territorial ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: AccountId,
    /// Unix seconds.
    pub iat: i64,
    pub exp: i64,
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<Finess>,
}

/// Who is calling, as their verified token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub account: AccountId,
    pub roles: Vec<Role>,
}

impl Caller {
    /// The caller with only the roles its account still holds, read now in one consistent
    /// query: a role removed since the token was issued cannot make lasting changes (write
    /// routes call this; reads live with the token's 10 minutes). 401 when the account is
    /// gone.
    pub async fn current(
        self,
        accounts: &impl tdb_domain::ports::AccountStore,
    ) -> Result<Caller, ApiError> {
        let record = accounts
            .account(&self.account)
            .await
            .map_err(ApiError::from_store)?
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_token", "this account no longer exists")
            })?;
        Ok(Caller {
            roles: self
                .roles
                .into_iter()
                .filter(|r| record.roles.contains(r))
                .collect(),
            ..self
        })
    }

    /// Allowed if any of the caller's roles allows `action` on `target`. The refusal is the
    /// most telling one: outside the territory or structure before "not allowed".
    pub fn authorize(&self, action: Action, target: &Target) -> Result<(), ApiError> {
        self.granting(action, target).map(|_| ())
    }

    /// The first of the caller's roles that allows `action` on `target` (the role a write is
    /// made under), or the refusal `authorize` gives.
    pub fn granting(&self, action: Action, target: &Target) -> Result<&Role, ApiError> {
        let mut refusal = Denied::OutsideStructure;
        for role in &self.roles {
            match authorize(role, action, target) {
                Ok(()) => return Ok(role),
                Err(Denied::ActionNotAllowed) => refusal = Denied::ActionNotAllowed,
                Err(Denied::OutsideTerritory) if refusal == Denied::OutsideStructure => {
                    refusal = Denied::OutsideTerritory
                }
                Err(_) => {}
            }
        }
        Err(ApiError::forbidden(refusal))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the key set is not valid JSON Web Keys")]
    BadKeySet(#[source] serde_json::Error),
    #[error("key `{0}` of the key set cannot verify RS256 signatures")]
    BadKey(String),
}

/// Verifies access tokens with the public keys the accounts function serves.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl TokenVerifier {
    /// From a JWKS document (`/.well-known/jwks.json`); every key must carry a `kid`.
    pub fn from_jwks(
        jwks: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<TokenVerifier, TokenError> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(TokenError::BadKeySet)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::BadKey(kid.clone()))?;
            keys.insert(kid, key);
        }
        // Only RS256: the API gateway's JWT authorizer supports RSA signatures, and pinning
        // the algorithm closes the "alg" confusion attacks.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(TokenVerifier { keys, validation })
    }

    /// Checks signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = || ApiError::unauthorized("invalid_token", "the access token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(invalid)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => Err(
                ApiError::unauthorized("token_expired", "the access token has expired"),
            ),
            Err(_) => Err(invalid()),
        }
    }

    /// The caller of a request, from its `Authorization: Bearer` header.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "an access token is required (Authorization: Bearer)",
                )
            })?;
        let claims = self.verify(token.trim())?;
        Ok(Caller {
            account: claims.sub,
            roles: claims.roles,
        })
    }
}

/// A function's state gives access to its token verifier, so that [`Caller`] can be an
/// extractor: a handler that takes a `Caller` is unreachable without a valid token.
pub trait HasVerifier {
    fn token_verifier(&self) -> &TokenVerifier;
}

impl<T: HasVerifier> HasVerifier for Arc<T> {
    fn token_verifier(&self) -> &TokenVerifier {
        (**self).token_verifier()
    }
}

impl<S: HasVerifier + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        state.token_verifier().caller(&parts.headers)
    }
}
