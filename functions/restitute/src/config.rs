//! The function's configuration, read once at cold start, and the app built from it with
//! the real adapters.

use crate::{App, Lake};
use tdb_api::{Campaigns, ConfigError, TokenVerifier};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;

/// Everything the function needs from its environment.
#[derive(Clone)]
pub struct Config {
    pub campaign_table: String,
    pub accounts_table: String,
    pub lake_bucket: String,
    pub issuer: String,
    pub audience: String,
    /// The JWKS of the accounts function's signing key (public).
    pub public_keys: String,
}

/// What the snapshot function needs: the tables it reads and the lake.
#[derive(Clone)]
pub struct SnapshotConfig {
    pub campaign_table: String,
    pub accounts_table: String,
    pub lake_bucket: String,
}

impl SnapshotConfig {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SnapshotConfig, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = SnapshotConfig {
            campaign_table: env.var("CAMPAIGN_TABLE"),
            accounts_table: env.var("ACCOUNTS_TABLE"),
            lake_bucket: env.var("LAKE_BUCKET"),
        };
        env.finish().map_err(ConfigError::Missing)?;
        Ok(config)
    }

    /// The stores the snapshot reads.
    pub fn stores(&self, aws: &aws_config::SdkConfig) -> (CampaignTable, AccountsTable) {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        (
            CampaignTable::new(dynamo.clone(), &self.campaign_table),
            AccountsTable::new(dynamo, &self.accounts_table),
        )
    }
}

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = Config {
            campaign_table: env.var("CAMPAIGN_TABLE"),
            accounts_table: env.var("ACCOUNTS_TABLE"),
            lake_bucket: env.var("LAKE_BUCKET"),
            issuer: env.var("JWT_ISSUER"),
            audience: env.var("JWT_AUDIENCE"),
            public_keys: env.var("JWT_PUBLIC_KEYS"),
        };
        env.finish().map_err(ConfigError::Missing)?;
        Ok(config)
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The shipped campaigns' definitions.
    pub fn campaigns() -> Result<Campaigns, ConfigError> {
        Ok(Campaigns::new(
            tdb_api::shipped_campaigns().map_err(ConfigError::Definition)?,
        ))
    }

    /// The function behind the API.
    pub fn app(
        self,
        aws: &aws_config::SdkConfig,
    ) -> Result<App<CampaignTable, AccountsTable>, Box<dyn std::error::Error + Send + Sync>> {
        let verifier = TokenVerifier::from_jwks(&self.public_keys, &self.issuer, &self.audience)?;
        let (questionnaires, accounts) = SnapshotConfig {
            campaign_table: self.campaign_table,
            accounts_table: self.accounts_table,
            lake_bucket: self.lake_bucket.clone(),
        }
        .stores(aws);
        let lake = Lake::from_env(&self.lake_bucket)?;
        Ok(App::new(
            questionnaires,
            accounts,
            Config::campaigns()?,
            lake,
            verifier,
            tdb_api::system_clock(),
        )?)
    }

    pub fn router(
        self,
        aws: &aws_config::SdkConfig,
    ) -> Result<axum::Router, Box<dyn std::error::Error + Send + Sync>> {
        Ok(crate::router(self.app(aws)?))
    }
}
