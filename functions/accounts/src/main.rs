//! The accounts Lambda: configuration read once, AWS clients built once per cold start,
//! then the function's router answers every request.

use accounts::{App, Settings, TokenSigner, router, system_clock};
use anyhow::Context;
use lambda_http::Error;
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::ses::SesMailer;

/// Everything the function needs from its environment, all checked before the first request.
struct Config {
    accounts_table: String,
    sender_email: String,
    signing_key: String,
    issuer: String,
    audience: String,
    public_url: String,
}

impl Config {
    fn from_env() -> anyhow::Result<Config> {
        let mut missing = Vec::new();
        let mut var = |name: &'static str| {
            std::env::var(name).unwrap_or_else(|_| {
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
            anyhow::bail!("missing environment variables: {}", missing.join(", "))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    let signer = TokenSigner::from_pem(&config.signing_key, &config.issuer, &config.audience)
        .context("JWT_SIGNING_KEY")?;
    let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), &config.issuer, &config.audience)
        .context("the signing key's own JWKS")?;
    let app = App::new(
        AccountsTable::new(aws_sdk_dynamodb::Client::new(&aws), config.accounts_table),
        SesMailer::new(aws_sdk_ses::Client::new(&aws), config.sender_email),
        signer,
        verifier,
        system_clock(),
        Settings::new(config.public_url),
    );
    lambda_http::run(router(app)).await
}
