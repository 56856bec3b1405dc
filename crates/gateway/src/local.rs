//! The gateway over the local AWS stack, assembled as `tdb-gateway` serves it: the stack's
//! resources created, the accounts function's signing key stored where it reads it, every
//! function's router built from the stack's environment, and the S3 and SNS event relays
//! started. The binary and the end-to-end test (`tests/campaign.rs` at the workspace root)
//! both start it here, so the test talks to exactly what the binary serves.

use crate::{ApiRoute, TemplateError, gateway};
use axum::Router;
use std::collections::BTreeMap;
use tdb_api::Clock;
use tokio::task::JoinHandle;

/// The audience of the access tokens, as the template's `JwtAudience` gives it.
pub const AUDIENCE: &str = "tdb-esms";

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("creating the stack's resources on the local AWS stack: is it started?")]
    Provision(#[from] tdb_aws::provision::ProvisionError),
    #[error("storing the signing key in the local stack's Secrets Manager")]
    Secret(#[from] tdb_aws::secrets::SecretError),
    #[error("the signing key")]
    SigningKey(#[from] accounts::secrets::SigningKeyError),
    #[error("the {function} function")]
    Function {
        function: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the event relays")]
    Relays(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

fn function_error(
    function: &'static str,
) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> LocalError {
    move |source| LocalError::Function { function, source }
}

/// What [`start`] needs.
pub struct Options<'a> {
    /// The stack whose resources the functions use; created if missing (`tdb provision`).
    pub stack_name: &'a str,
    /// The address e-mails are sent from (verified in the local SES).
    pub sender: &'a str,
    /// The accounts function's signing key (PKCS#8 PEM, `tdb keygen`).
    pub signing_key: &'a str,
    /// The gateway's own address (`http://127.0.0.1:3000`): the tokens' issuer, and where
    /// e-mailed links point.
    pub base: &'a str,
    /// Browser origins allowed by CORS (the template's `WebOrigins`).
    pub web_origins: &'a [String],
    /// The time the campaign functions (collect, validate, remind) decide phases and days
    /// by: the system clock for the binary, a walked calendar for the end-to-end test.
    pub campaign_clock: Clock,
}

/// The gateway, ready to serve.
pub struct Local {
    /// Every function's routes, the password page, CORS and the access log.
    pub router: Router,
    /// Routes of functions not built yet: they answer the JSON 404.
    pub missing: Vec<ApiRoute>,
    /// The functions' environment: the template's, resolved for the stack, with the local
    /// values (see [`local_environment`]). `tdb admin` reads the same values.
    pub environment: BTreeMap<String, String>,
    /// The tasks relaying S3 and SNS notifications to the functions they invoke.
    pub relays: Vec<JoinHandle<()>>,
}

/// Creates the stack's resources if needed, stores the signing key in the local Secrets
/// Manager (as deployed, the accounts function reads it there at cold start), starts the
/// event relays and builds every function's router.
pub async fn start(aws: &aws_config::SdkConfig, options: Options<'_>) -> Result<Local, LocalError> {
    let provisioned =
        tdb_aws::provision::provision_stack(aws, options.stack_name, options.sender).await?;
    let secret = format!("{}-jwt-signing-key", options.stack_name);
    tdb_aws::secrets::put_secret_string(
        &aws_sdk_secretsmanager::Client::new(aws),
        &secret,
        options.signing_key,
    )
    .await?;
    // The public keys the other functions verify tokens with, as the template's
    // `JwtPublicKeys` gives them in a deployment.
    let public_keys =
        accounts::TokenSigner::from_pem(options.signing_key, options.base, AUDIENCE)?.jwks_json();
    let environment =
        local_environment(&provisioned.environment, secret, options.base, public_keys);
    let lookup = |name: &str| environment.get(name).cloned();
    let relays = crate::events::spawn_event_relays(aws, &provisioned.event_queues, lookup)
        .map_err(LocalError::Relays)?;
    let functions = functions(aws, lookup, options.campaign_clock).await?;
    let (router, missing) = gateway(
        tdb_aws::provision::TEMPLATE,
        &functions,
        options.web_origins,
    )?;
    Ok(Local {
        router,
        missing,
        environment,
        relays,
    })
}

/// The template's environment of a provisioned stack, with what the gateway adds locally:
/// the signing key's secret, its own address as the tokens' issuer (so that discovery works
/// as deployed) and as the address e-mailed links point at, and the public keys.
pub fn local_environment(
    provisioned: &BTreeMap<String, String>,
    signing_key_secret: String,
    base: &str,
    public_keys: String,
) -> BTreeMap<String, String> {
    let mut environment = provisioned.clone();
    environment.extend([
        ("JWT_SIGNING_KEY_SECRET".to_string(), signing_key_secret),
        ("JWT_ISSUER".to_string(), base.to_string()),
        ("JWT_AUDIENCE".to_string(), AUDIENCE.to_string()),
        ("JWT_PUBLIC_KEYS".to_string(), public_keys),
        ("PUBLIC_URL".to_string(), base.to_string()),
    ]);
    environment
}

/// Every function's router by its binary's name (`Metadata.BuildProperties.Binary` in the
/// template), each built from its environment as `lookup` gives it. Accounts keeps the
/// system clock whatever `campaign_clock` says: the tokens it signs are checked against
/// the real time by every function.
pub async fn functions(
    aws: &aws_config::SdkConfig,
    lookup: impl Fn(&str) -> Option<String>,
    campaign_clock: Clock,
) -> Result<BTreeMap<String, Router>, LocalError> {
    let mut functions = BTreeMap::new();
    let accounts = accounts::Config::from_lookup(&lookup)
        .map_err(|e| function_error("accounts")(e.into()))?
        .router(aws)
        .await
        .map_err(|e| function_error("accounts")(e.into()))?;
    functions.insert("accounts".to_string(), accounts);
    let collect = collect::Config::from_lookup(&lookup)
        .and_then(|config| config.app_with_clock(aws, campaign_clock.clone()))
        .map_err(|e| function_error("collect")(e.into()))?;
    functions.insert("collect".to_string(), collect::router(collect));
    let validate = validate::Config::from_lookup(&lookup)
        .and_then(|config| config.app_with_clock(aws, campaign_clock.clone()))
        .map_err(|e| function_error("validate")(e.into()))?;
    functions.insert("validate".to_string(), validate::router(validate));
    // LocalStack's SES quota is one message a second: locally the rate is fixed.
    let remind = remind::Config::from_lookup(&lookup)
        .and_then(|config| {
            config.app_with_clock(aws, remind::SendRate::Fixed(50.0), campaign_clock)
        })
        .map_err(|e| function_error("remind")(e.into()))?;
    functions.insert("remind".to_string(), remind::router(remind));
    // Restitute has no phase of its own: a platform's closure opens its restitutions.
    let restitute = restitute::Config::from_lookup(&lookup)
        .map_err(|e| function_error("restitute")(e.into()))?
        .router(aws)
        .map_err(function_error("restitute"))?;
    functions.insert("restitute".to_string(), restitute);
    Ok(functions)
}

/// The campaign functions' clock as `tdb-gateway` runs it: the system's, shifted to start
/// at midday (UTC) of a chosen day and running from there. A demo walks the calendar
/// (collection, fiabilisation, closure) by moving it with `PUT /_local/campaign-date`
/// `{"date": "2025-09-01"}`; `GET` says which day it is. Local only: nothing deployed has
/// this route, and the accounts function keeps the real time (tokens).
#[derive(Clone, Default)]
pub struct CampaignClock {
    shift: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// The route of [`CampaignClock`].
pub const CAMPAIGN_DATE_PATH: &str = "/_local/campaign-date";

impl CampaignClock {
    /// The system clock, or shifted to midday of `date`.
    pub fn starting(date: Option<time::Date>) -> CampaignClock {
        let clock = CampaignClock::default();
        if let Some(date) = date {
            clock.set(date);
        }
        clock
    }

    /// From now on, it is midday of `date`.
    pub fn set(&self, date: time::Date) {
        let midday = date.midnight().assume_utc().unix_timestamp() + 12 * 3600;
        let system = tdb_api::system_clock()();
        self.shift
            .store(midday - system, std::sync::atomic::Ordering::Relaxed);
    }

    /// The time the campaign functions read.
    pub fn clock(&self) -> Clock {
        let shift = self.shift.clone();
        let system = tdb_api::system_clock();
        std::sync::Arc::new(move || system() + shift.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn today(&self) -> time::Date {
        time::OffsetDateTime::from_unix_timestamp(self.clock()())
            .map_or(time::Date::MIN, |t| t.date())
    }

    /// `GET` and `PUT` [`CAMPAIGN_DATE_PATH`].
    pub fn router(&self) -> Router {
        use axum::extract::State;
        use axum::routing::get;
        async fn read(State(clock): State<CampaignClock>) -> axum::Json<serde_json::Value> {
            axum::Json(serde_json::json!({ "date": iso(clock.today()) }))
        }
        async fn move_to(
            State(clock): State<CampaignClock>,
            tdb_api::JsonBody(body): tdb_api::JsonBody<serde_json::Value>,
        ) -> Result<axum::Json<serde_json::Value>, tdb_api::ApiError> {
            let date = body
                .get("date")
                .and_then(|d| d.as_str())
                .and_then(|d| {
                    time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                        .ok()
                })
                .ok_or_else(|| tdb_api::ApiError::invalid("date", "a day like 2025-09-01"))?;
            clock.set(date);
            tracing::info!("the campaign functions now run on {}", iso(date));
            Ok(read(State(clock)).await)
        }
        Router::new()
            .route(CAMPAIGN_DATE_PATH, get(read).put(move_to))
            .with_state(self.clone())
    }
}

fn iso(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn call(router: &Router, method: &str, body: &str) -> (u16, serde_json::Value) {
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(CAMPAIGN_DATE_PATH)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn the_campaign_date_moves_forward_for_every_reader_and_bad_dates_name_the_field() {
        let start = time::macros::date!(2025 - 07 - 15);
        let clock = CampaignClock::starting(Some(start));
        let functions_clock = clock.clock();
        let router = clock.router();
        let midday = start.midnight().assume_utc().unix_timestamp() + 12 * 3600;
        assert!((functions_clock() - midday).abs() < 5);
        assert_eq!(
            call(&router, "GET", "").await,
            (200, serde_json::json!({"date": "2025-07-15"}))
        );

        let (status, body) = call(&router, "PUT", r#"{"date": "2025-09-01"}"#).await;
        assert_eq!((status, body["date"].as_str()), (200, Some("2025-09-01")));
        // The clock the functions were given before reads the new day.
        let september = time::macros::date!(2025 - 09 - 01);
        let midday = september.midnight().assume_utc().unix_timestamp() + 12 * 3600;
        assert!((functions_clock() - midday).abs() < 5);

        for bad in [
            r#"{"date": "1er septembre"}"#,
            r#"{"day": "2025-09-01"}"#,
            "[]",
        ] {
            let (status, body) = call(&router, "PUT", bad).await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(body["error"]["field"], "date", "{bad}: {body}");
        }
        assert_eq!(call(&router, "GET", "").await.1["date"], "2025-09-01");
    }
}
