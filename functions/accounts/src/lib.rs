//! The accounts function (the Plage part, domain §6): referential import, APE and user
//! accounts, login, tokens. Every handler is a plain async method over the ports, so tests
//! call it with real AWS adapters on the local stack or with the in-memory fakes.
//!
//! See `openapi.yaml` for the routes and `docs/accounts.md` for the design.

mod admin;
mod auth;
pub mod import;
mod mail;
pub mod routes;
pub mod secrets;

use lambda_http::{Body, Request, Response};
use routes::Route;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tdb_api::{ApiError, TokenVerifier};
use tdb_domain::accounts::{LoginThrottle, PasswordPolicy};
use tdb_domain::ports::{AccountStore, Mailer, StoreError};

pub use secrets::{TokenSigner, generate_signing_key};

/// The time, in Unix seconds. Passed in so tests can move it (link expiry, lockouts).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Rules an operator may want to change without touching code.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The web application's address; links in e-mails point at `<public_url>/mot-de-passe`.
    pub public_url: String,
    /// How long an activation or reset link works, in seconds (72 h).
    pub link_ttl: i64,
    /// How long a refresh token works, in seconds.
    pub refresh_ttl: i64,
    pub password_policy: PasswordPolicy,
    pub login_throttle: LoginThrottle,
}

impl Settings {
    pub fn new(public_url: impl Into<String>) -> Settings {
        Settings {
            public_url: public_url.into().trim_end_matches('/').to_string(),
            link_ttl: 72 * 3600,
            refresh_ttl: 30 * 24 * 3600,
            password_policy: PasswordPolicy::default(),
            login_throttle: LoginThrottle::default(),
        }
    }
}

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest uploaded file: Lambda's synchronous payload limit is 6 MB.
pub const MAX_FILE_BODY: usize = 6 * 1024 * 1024 - 64 * 1024;

pub struct App<S, M> {
    store: S,
    mailer: M,
    signer: TokenSigner,
    verifier: TokenVerifier,
    clock: Clock,
    settings: Settings,
    /// Verified against when the e-mail is unknown, so that the answer takes as long. Made
    /// on first need, not at cold start: hashing costs tens of milliseconds.
    decoy_hash: std::sync::OnceLock<String>,
}

impl<S: AccountStore, M: Mailer> App<S, M> {
    pub fn new(
        store: S,
        mailer: M,
        signer: TokenSigner,
        verifier: TokenVerifier,
        clock: Clock,
        settings: Settings,
    ) -> App<S, M> {
        App {
            store,
            mailer,
            signer,
            verifier,
            clock,
            settings,
            decoy_hash: std::sync::OnceLock::new(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn decoy_hash(&self) -> &str {
        self.decoy_hash
            .get_or_init(|| secrets::hash_password(&secrets::new_token()))
    }

    /// Answers one HTTP request. Never fails: errors become JSON error bodies.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let outcome = match routes::route(&method, &path) {
            Err(e) => Err(e),
            Ok((route, params)) => {
                let params: Vec<String> = params.into_iter().map(str::to_string).collect();
                self.dispatch(route, &params, &request).await
            }
        };
        match outcome {
            Ok(response) => response,
            Err(e) => {
                // Codes and statuses only: bodies may hold personal data.
                tracing::info!(%method, %path, status = e.status, code = e.code, "refused");
                e.into_response()
            }
        }
    }

    async fn dispatch(
        &self,
        route: Route,
        params: &[String],
        request: &Request,
    ) -> Result<Response<Body>, ApiError> {
        if route.is_public() {
            return match route {
                Route::Login => self.login(json_body(request)?).await,
                Route::Refresh => self.refresh(json_body(request)?).await,
                Route::Logout => self.logout(json_body(request)?).await,
                Route::SetPassword => self.set_password(json_body(request)?).await,
                Route::RequestReset => self.request_reset(json_body(request)?).await,
                Route::Jwks => Ok(self.jwks()),
                _ => unreachable!("public routes are listed above"),
            };
        }
        let caller = self.verifier.caller(request.headers())?;
        let param = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
        let query = query(request);
        match route {
            Route::Me => self.me(&caller).await,
            Route::Structures => self.list_structures(&caller, &query).await,
            Route::Structure => self.structure(&caller, param(0)).await,
            Route::PutApe => self.put_ape(&caller, param(0), json_body(request)?).await,
            Route::DeleteApe => self.delete_ape(&caller, param(0)).await,
            Route::Users => self.users(&caller, param(0)).await,
            Route::CreateUser => {
                self.create_user(&caller, param(0), json_body(request)?)
                    .await
            }
            Route::UpdateUser => {
                self.update_user(&caller, param(0), param(1), json_body(request)?)
                    .await
            }
            Route::DeleteUser => self.delete_user(&caller, param(0), param(1)).await,
            Route::ImportReferential => {
                self.import_referential(&caller, file_body(request)?, dry_run(&query)?)
                    .await
            }
            Route::ImportSecondaries => {
                self.import_secondaries(&caller, file_body(request)?, dry_run(&query)?)
                    .await
            }
            Route::ImportApeContacts => {
                self.import_ape_contacts(&caller, file_body(request)?, dry_run(&query)?)
                    .await
            }
            _ => unreachable!("public routes returned above"),
        }
    }
}

/// What a storage failure becomes for the caller; the details go to the log.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate("email") => {
            ApiError::conflict("email_taken", "this e-mail address already has an account")
        }
        StoreError::Duplicate("ape") => {
            ApiError::conflict("ape_exists", "this structure already has an APE")
        }
        StoreError::Duplicate(what) => {
            ApiError::conflict("duplicate", format!("{what} already exists"))
        }
        StoreError::NotFound(what) => ApiError::not_found(what),
        StoreError::Conflict { .. } => ApiError::conflict(
            "concurrent_change",
            "the record changed during the request; try again",
        ),
        StoreError::BadPageToken => ApiError::invalid("page", "invalid page token"),
        e @ StoreError::Backend(_) => {
            tracing::error!(error = ?e, "storage backend failed");
            ApiError::unavailable()
        }
        e @ StoreError::Corrupt(_) => {
            tracing::error!(error = %e, "stored data could not be read");
            ApiError::internal()
        }
    }
}

/// Parses a JSON body, naming the field that is wrong.
pub(crate) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes = request.body().as_ref();
    if bytes.len() > MAX_JSON_BODY {
        return Err(ApiError::too_large(MAX_JSON_BODY));
    }
    let bytes = if bytes.is_empty() {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        // serde names a missing or unknown field only in its message.
        let named = ["missing field `", "unknown field `"].iter().find_map(|p| {
            message
                .split(p)
                .nth(1)?
                .split('`')
                .next()
                .map(str::to_string)
        });
        let path = e.path().to_string();
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => name,
            (Some(name), path) if path.ends_with(&name) => path.to_string(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, "." | "") => "body".to_string(),
            (None, path) => path.to_string(),
        };
        let reason = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        ApiError::invalid(field, reason)
    })
}

/// The raw bytes of an uploaded file.
pub(crate) fn file_body(request: &Request) -> Result<&[u8], ApiError> {
    let bytes = request.body().as_ref();
    if bytes.len() > MAX_FILE_BODY {
        return Err(ApiError::too_large(MAX_FILE_BODY));
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("body", "the file is empty"));
    }
    Ok(bytes)
}

pub(crate) type Query = Vec<(String, String)>;

fn query(request: &Request) -> Query {
    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn query_value<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query_value(query, "dry_run") {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(_) => Err(ApiError::invalid("dry_run", "expected true or false")),
    }
}
