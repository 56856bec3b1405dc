//! The function's configuration, read once at cold start (from the environment in Lambda,
//! from the local stack in the gateway), and the router built from it with the real adapters.

use crate::jobs::Uploads;
use crate::secrets::SigningKeyError;
use crate::{App, Settings, TokenSigner, router, system_clock};
use tdb_api::{TokenError, TokenVerifier};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::s3::S3Lake;
use tdb_aws::ses::SesMailer;

/// Everything the function needs from its environment.
#[derive(Clone)]
pub struct Config {
    pub accounts_table: String,
    /// The lake bucket: import files are uploaded there, and the stored FINESS referential
    /// lives there.
    pub lake_bucket: String,
    pub sender_email: String,
    /// SES configuration set publishing bounces and complaints (optional).
    pub configuration_set: Option<String>,
    /// The name of the Secrets Manager secret holding the RSA private key (PKCS#8 PEM) that
    /// signs access tokens. The key itself is read at cold start, never configured.
    pub signing_key_secret: String,
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
    #[error("reading the signing key")]
    Secret(#[from] tdb_aws::secrets::SecretError),
}

impl Config {
    /// Reads every variable through `lookup`, and reports all the missing ones together.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = Config {
            accounts_table: env.var("ACCOUNTS_TABLE"),
            lake_bucket: env.var("LAKE_BUCKET"),
            sender_email: env.var("SENDER_EMAIL"),
            configuration_set: env.optional("SES_CONFIGURATION_SET"),
            signing_key_secret: env.var("JWT_SIGNING_KEY_SECRET"),
            issuer: env.var("JWT_ISSUER"),
            audience: env.var("JWT_AUDIENCE"),
            public_url: env.var("PUBLIC_URL"),
        };
        env.finish().map_err(ConfigError::Missing)?;
        Ok(config)
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The function over DynamoDB, SES, the lake bucket and its signing key from Secrets Manager, with the
    /// system clock.
    pub async fn app(
        self,
        aws: &aws_config::SdkConfig,
    ) -> Result<App<AccountsTable, SesMailer, S3Lake>, ConfigError> {
        let secrets = aws_sdk_secretsmanager::Client::new(aws);
        let pem = tdb_aws::secrets::secret_string(&secrets, &self.signing_key_secret).await?;
        let signer = TokenSigner::from_pem(&pem, &self.issuer, &self.audience)?;
        let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), &self.issuer, &self.audience)?;
        Ok(App::new(
            AccountsTable::new(aws_sdk_dynamodb::Client::new(aws), self.accounts_table),
            SesMailer::new(aws_sdk_ses::Client::new(aws), self.sender_email)
                .reporting_to(self.configuration_set),
            S3Lake::new(aws, self.lake_bucket),
            signer,
            verifier,
            system_clock(),
            Settings::new(self.public_url),
        ))
    }

    /// The function's router, as Lambda runs it.
    pub async fn router(self, aws: &aws_config::SdkConfig) -> Result<axum::Router, ConfigError> {
        Ok(router(self.app(aws).await?))
    }
}

/// What the upload worker needs from its environment: the accounts table and the lake
/// bucket, nothing else.
#[derive(Clone)]
pub struct UploadsConfig {
    pub accounts_table: String,
    pub lake_bucket: String,
}

impl UploadsConfig {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<UploadsConfig, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = UploadsConfig {
            accounts_table: env.var("ACCOUNTS_TABLE"),
            lake_bucket: env.var("LAKE_BUCKET"),
        };
        env.finish().map_err(ConfigError::Missing)?;
        Ok(config)
    }

    pub fn from_env() -> Result<UploadsConfig, ConfigError> {
        UploadsConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// The worker over DynamoDB and S3, with the system clock.
    pub fn uploads(self, aws: &aws_config::SdkConfig) -> Uploads<AccountsTable, S3Lake> {
        Uploads::new(
            AccountsTable::new(aws_sdk_dynamodb::Client::new(aws), self.accounts_table),
            S3Lake::new(aws, self.lake_bucket),
            system_clock(),
        )
    }
}
