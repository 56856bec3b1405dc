//! The accounts function (the Plage part, domain §6): referential import, APE and user
//! accounts, login, tokens. [`router`] builds the `axum::Router` that Lambda runs, tests
//! call and the local gateway serves; its handlers are thin calls of [`App`]'s methods,
//! which work over the ports, so tests run them with the real AWS adapters on the local
//! stack or with the in-memory fakes.
//!
//! The routes are described by [`openapi`] (served at `/accounts/openapi.json`); the design
//! is in `docs/accounts.md`.

mod admin;
mod auth;
mod config;
mod http;
pub mod import;
pub mod jobs;
mod mail;
pub mod secrets;

use std::sync::Arc;
use tdb_api::{ApiError, Caller, TokenVerifier};
use tdb_domain::accounts::{Account, AccountRecord, LoginThrottle, PasswordPolicy};
use tdb_domain::ports::{AccountStore, Lake, Mailer, StoreError};

pub use config::{Config, ConfigError, UploadsConfig};
pub use http::{OPENAPI_PATH, router};
pub use secrets::{TokenSigner, generate_signing_key, public_key_set};
pub use tdb_api::{MAX_FILE_BODY, MAX_JSON_BODY};

pub use tdb_api::{Clock, system_clock};

/// Rules an operator may want to change without touching code.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The web application's address; links in e-mails point at `<public_url>/mot-de-passe`.
    pub public_url: String,
    /// How long an activation or reset link works, in seconds (72 h).
    pub link_ttl: i64,
    /// How long a refresh token works unused, in seconds.
    pub refresh_ttl: i64,
    /// The longest a session lasts from its login, however often it is refreshed.
    pub session_max_age: i64,
    /// The most sessions (live refresh tokens) an account keeps: a new login beyond it ends
    /// the oldest.
    pub max_sessions: usize,
    /// The least time between two links e-mailed to one account, in seconds.
    pub link_cooldown: i64,
    /// A password-reset request is answered no sooner than this, whether the address has
    /// an account (a link is made and sent) or not (nothing is done): the answer's timing
    /// says nothing of the address.
    pub reset_answer_floor: std::time::Duration,
    /// A refused login is answered no sooner than this, for the same reason.
    pub login_refusal_floor: std::time::Duration,
    /// How long a direct referential import waits for another import to finish before
    /// answering 409.
    pub import_lock_wait: std::time::Duration,
    pub password_policy: PasswordPolicy,
    pub login_throttle: LoginThrottle,
}

impl Settings {
    pub fn new(public_url: impl Into<String>) -> Settings {
        Settings {
            public_url: public_url.into().trim_end_matches('/').to_string(),
            link_ttl: 72 * 3600,
            refresh_ttl: 7 * 24 * 3600,
            session_max_age: 30 * 24 * 3600,
            max_sessions: 10,
            link_cooldown: 5 * 60,
            reset_answer_floor: std::time::Duration::from_secs(1),
            login_refusal_floor: std::time::Duration::from_millis(300),
            import_lock_wait: std::time::Duration::from_secs(10),
            password_policy: PasswordPolicy::default(),
            login_throttle: LoginThrottle::default(),
        }
    }
}

pub struct App<S, M, L> {
    store: S,
    mailer: M,
    /// The lake bucket: uploaded import files and the stored FINESS referential.
    lake: L,
    signer: TokenSigner,
    verifier: TokenVerifier,
    clock: Clock,
    settings: Settings,
    /// Verified against when the e-mail is unknown, so that the answer takes as long. Made
    /// on first need, not at cold start: hashing costs tens of milliseconds.
    decoy_hash: std::sync::OnceLock<String>,
    /// Passwords verified against an account's own hash (decoys not counted): the quantity
    /// the login throttle bounds, kept as a figure the operators and tests can read.
    password_checks: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    pub fn new(
        store: S,
        mailer: M,
        lake: L,
        signer: TokenSigner,
        verifier: TokenVerifier,
        clock: Clock,
        settings: Settings,
    ) -> App<S, M, L> {
        App {
            store,
            mailer,
            lake,
            signer,
            verifier,
            clock,
            settings,
            decoy_hash: std::sync::OnceLock::new(),
            password_checks: Arc::default(),
        }
    }

    /// The number of passwords verified against an account's hash so far, shared with the
    /// app (take it before the app moves into its router).
    pub fn password_checks(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.password_checks.clone()
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
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    /// Saves `change(account)` under the account's version condition. When a concurrent
    /// request changed the account first, rereads it and asks `change` again, so a decision
    /// is always made on what is stored (the login counters, a link's cooldown). `change`
    /// answers `None` to decline.
    pub(crate) async fn save_account_with(
        &self,
        mut record: AccountRecord,
        mut change: impl FnMut(&Account) -> Result<Option<Account>, ApiError>,
    ) -> Result<SaveOutcome, ApiError> {
        for _ in 0..8 {
            let Some(next) = change(&record.account)? else {
                return Ok(SaveOutcome::Declined);
            };
            let next = Account {
                version: record.account.version + 1,
                ..next
            };
            match self.store.save_account(&next).await {
                Ok(()) => {
                    record.account = next;
                    return Ok(SaveOutcome::Done(Box::new(record)));
                }
                Err(StoreError::Conflict { .. }) => {
                    match self
                        .store
                        .account(&record.account.id)
                        .await
                        .map_err(store_error)?
                    {
                        Some(current) => record = current,
                        None => return Ok(SaveOutcome::Gone),
                    }
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(SaveOutcome::Contended)
    }

    /// The caller's account as stored now; 401 when it no longer exists.
    pub(crate) async fn caller_record(&self, caller: &Caller) -> Result<AccountRecord, ApiError> {
        self.store
            .account(&caller.account)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "this account no longer exists"))
    }
}

/// What [`App::save_account_with`] did.
pub(crate) enum SaveOutcome {
    /// Saved; the account and roles as stored now.
    Done(Box<AccountRecord>),
    /// `change` declined, given the account as stored now.
    Declined,
    /// The account no longer exists.
    Gone,
    /// Other requests kept changing the account: nothing was saved.
    Contended,
}

impl<S, M, L> tdb_api::HasVerifier for App<S, M, L> {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// What a storage failure becomes for the caller: the accounts' own duplicates, then the
/// shared reading.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate("email") => {
            ApiError::conflict("email_taken", "this e-mail address already has an account")
        }
        StoreError::Duplicate("ape") => {
            ApiError::conflict("ape_exists", "this structure already has an APE")
        }
        other => ApiError::from_store(other),
    }
}
