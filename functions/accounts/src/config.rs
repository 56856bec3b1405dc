//! The function's configuration, read once at cold start (from the environment in Lambda,
//! from the local stack in the gateway), and the router built from it with the real adapters.

use crate::secrets::SigningKeyError;
use crate::{App, Settings, TokenSigner, router, system_clock};
use tdb_api::{TokenError, TokenVerifier};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::ses::SesMailer;

/// Everything the function needs from its environment.
#[derive(Clone)]
pub struct Config {
    pub accounts_table: String,
    pub sender_email: String,
    /// The RSA private key (PKCS#8 PEM) that signs access tokens. A secret: never logged.
    pub signing_key: String,
    /// The `iss` of access tokens: the public address of the API, where
    /// `/.well-known/openid-configuration` is served.
    pub issuer: String,
    pub audience: String,
    /// The web application's address; e-mailed links point at `<public_url>/mot-de-passe`.
    pub public_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error("the signing key's own key set")]
    KeySet(#[from] TokenError),
}

impl Config {
    /// Reads every variable through `lookup`, and reports all the missing ones together.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut missing = Vec::new();
        let mut var = |name: &'static str| {
            lookup(name).unwrap_or_else(|| {
                missing.push(name);
                String::new()
            })
        };
        let config = Config {
            accounts_table: var("ACCOUNTS_TABLE"),
            sender_email: var("SENDER_EMAIL"),
            signing_key: var("JWT_SIGNING_KEY"),
            issuer: var("JWT_ISSUER"),
            audience: var("JWT_AUDIENCE"),
            public_url: var("PUBLIC_URL"),
        };
        if missing.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Missing(missing))
        }
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The function's router over DynamoDB and SES, with the system clock.
    pub fn router(self, aws: &aws_config::SdkConfig) -> Result<axum::Router, ConfigError> {
        let signer = TokenSigner::from_pem(&self.signing_key, &self.issuer, &self.audience)?;
        let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), &self.issuer, &self.audience)?;
        let app = App::new(
            AccountsTable::new(aws_sdk_dynamodb::Client::new(aws), self.accounts_table),
            SesMailer::new(aws_sdk_ses::Client::new(aws), self.sender_email),
            signer,
            verifier,
            system_clock(),
            Settings::new(self.public_url),
        );
        Ok(router(app))
    }
}
