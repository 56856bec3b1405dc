//! The function's configuration, read once at cold start, and the app built from it with
//! the real adapters.

use crate::{App, Clock, Reminders, SendRate, router, system_clock};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_aws::ses::SesMailer;

/// Everything the function needs from its environment.
#[derive(Clone)]
pub struct Config {
    pub campaign_table: String,
    pub accounts_table: String,
    pub sender_email: String,
    /// SES configuration set publishing bounces and complaints (optional).
    pub configuration_set: Option<String>,
    pub issuer: String,
    pub audience: String,
    /// The JWKS of the accounts function's signing key (public).
    pub public_keys: String,
    /// The web application's address, for the questionnaire links.
    pub public_url: String,
}

pub use tdb_api::ConfigError;

impl Config {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = tdb_api::Environment::new(lookup);
        let config = Config {
            campaign_table: env.var("CAMPAIGN_TABLE"),
            accounts_table: env.var("ACCOUNTS_TABLE"),
            sender_email: env.var("SENDER_EMAIL"),
            configuration_set: env.optional("SES_CONFIGURATION_SET"),
            issuer: env.var("JWT_ISSUER"),
            audience: env.var("JWT_AUDIENCE"),
            public_keys: env.var("JWT_PUBLIC_KEYS"),
            public_url: env.var("PUBLIC_URL"),
        };
        env.finish().map_err(ConfigError::Missing)?;
        Ok(config)
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The reminders engine over DynamoDB and SES.
    pub fn reminders(
        aws: &aws_config::SdkConfig,
        tables: (&str, &str),
        mailer: SesMailer,
        public_url: &str,
        rate: SendRate,
    ) -> Result<Reminders<CampaignTable, AccountsTable, SesMailer>, ConfigError> {
        Config::reminders_with_clock(aws, tables, mailer, public_url, rate, system_clock())
    }

    fn reminders_with_clock(
        aws: &aws_config::SdkConfig,
        tables: (&str, &str),
        mailer: SesMailer,
        public_url: &str,
        rate: SendRate,
        clock: Clock,
    ) -> Result<Reminders<CampaignTable, AccountsTable, SesMailer>, ConfigError> {
        let campaigns = tdb_api::shipped_campaigns().map_err(ConfigError::Definition)?;
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        Ok(Reminders::new(
            CampaignTable::new(dynamo.clone(), tables.0),
            AccountsTable::new(dynamo, tables.1),
            mailer,
            campaigns,
            clock,
            rate,
            public_url,
        ))
    }

    /// The function behind the API.
    pub fn app(
        self,
        aws: &aws_config::SdkConfig,
        rate: SendRate,
    ) -> Result<App<CampaignTable, AccountsTable, SesMailer>, ConfigError> {
        self.app_with_clock(aws, rate, system_clock())
    }

    /// The same over another clock, which decides the day reminded for: the local
    /// gateway's end-to-end test walks a campaign's calendar with it.
    pub fn app_with_clock(
        self,
        aws: &aws_config::SdkConfig,
        rate: SendRate,
        clock: Clock,
    ) -> Result<App<CampaignTable, AccountsTable, SesMailer>, ConfigError> {
        let verifier = TokenVerifier::from_jwks(&self.public_keys, &self.issuer, &self.audience)?;
        let reminders = Config::reminders_with_clock(
            aws,
            (&self.campaign_table, &self.accounts_table),
            SesMailer::new(aws_sdk_ses::Client::new(aws), self.sender_email)
                .reporting_to(self.configuration_set),
            &self.public_url,
            rate,
            clock,
        )?;
        Ok(App::new(reminders, verifier))
    }

    pub fn router(
        self,
        aws: &aws_config::SdkConfig,
        rate: SendRate,
    ) -> Result<axum::Router, ConfigError> {
        Ok(router(self.app(aws, rate)?))
    }
}
