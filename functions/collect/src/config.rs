//! The function's configuration, read once at cold start, and the router built from it
//! with the real adapters.

use crate::{App, Clock, router, system_clock};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;

/// Everything the function needs from its environment.
#[derive(Clone)]
pub struct Config {
    pub campaign_table: String,
    pub accounts_table: String,
    pub issuer: String,
    pub audience: String,
    /// The JWKS of the accounts function's signing key (public).
    pub public_keys: String,
}

pub use tdb_api::ConfigError;

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = Config {
            campaign_table: env.var("CAMPAIGN_TABLE"),
            accounts_table: env.var("ACCOUNTS_TABLE"),
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

    /// The function over DynamoDB, with every campaign shipped with the platform.
    pub fn app(
        self,
        aws: &aws_config::SdkConfig,
    ) -> Result<App<CampaignTable, CampaignTable, AccountsTable>, ConfigError> {
        self.app_with_clock(aws, system_clock())
    }

    /// The same over another clock, which decides the campaign's phases: the local
    /// gateway's end-to-end test walks a campaign's calendar with it.
    pub fn app_with_clock(
        self,
        aws: &aws_config::SdkConfig,
        clock: Clock,
    ) -> Result<App<CampaignTable, CampaignTable, AccountsTable>, ConfigError> {
        let verifier = TokenVerifier::from_jwks(&self.public_keys, &self.issuer, &self.audience)?;
        let campaigns = tdb_api::shipped_campaigns().map_err(ConfigError::Definition)?;
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        // Saves check in their own transaction that the writer still holds its role.
        let campaign = CampaignTable::new(dynamo.clone(), self.campaign_table)
            .guarded_by(&self.accounts_table);
        Ok(App::new(
            campaign.clone(),
            campaign,
            AccountsTable::new(dynamo, self.accounts_table),
            campaigns,
            verifier,
            clock,
        ))
    }

    pub fn router(self, aws: &aws_config::SdkConfig) -> Result<axum::Router, ConfigError> {
        Ok(router(self.app(aws)?))
    }
}
