//! Signing in and out: login, refresh-token rotation, logout, passwords chosen through a
//! single-use link, the public keys, and the caller's own profiles.

use crate::secrets::{hash_password, new_token, token_hash, verify_password};
use crate::{App, SaveOutcome, mail, store_error};
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tdb_api::{ApiError, Caller, FinessSchema, PUBLIC_DOCUMENT, RoleSchema, json, no_content};
use tdb_domain::Finess;
use tdb_domain::accounts::{
    Account, AccountId, AccountRecord, PasswordError, StructureRecord, TokenPurpose, TokenRecord,
    role_structure,
};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, Lake, Mailer, StoreError};
use tdb_domain::rights::Role;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    #[schema(format = Email)]
    email: String,
    password: String,
    /// The structure to act for; all roles when absent.
    #[serde(default)]
    structure: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
    #[serde(default)]
    structure: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutBody {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    token: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    #[schema(format = Email)]
    email: String,
}

/// What a login or a refresh gives: a short-lived access token to send as
/// `Authorization: Bearer`, and a single-use refresh token to get the next one.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tokens {
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
    refresh_token: String,
    /// The roles the access token acts under.
    #[schema(value_type = Vec<RoleSchema>)]
    roles: Vec<Role>,
    /// The structure the token acts for, when one was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FinessSchema>)]
    acting_for: Option<Finess>,
}

/// A message for a person, when an answer has nothing else to say.
#[derive(Serialize, ToSchema)]
pub(crate) struct Message {
    message: String,
}

/// The structure a profile is on.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProfileStructure {
    #[schema(value_type = FinessSchema)]
    finess: Finess,
    name: String,
    /// `og`, or `{"esms": "<category>"}`.
    #[schema(value_type = Value)]
    kind: tdb_domain::RespondentKind,
}

/// One role of the caller, with its structure when it is on one.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProfileView {
    #[schema(value_type = RoleSchema)]
    role: Role,
    structure: Option<ProfileStructure>,
}

/// The caller's own account and profiles.
#[derive(Serialize, ToSchema)]
pub(crate) struct MeView {
    #[schema(value_type = String)]
    id: tdb_domain::accounts::AccountId,
    #[schema(value_type = String)]
    email: EmailAddress,
    last_name: String,
    first_name: String,
    phone: Option<String>,
    profiles: Vec<ProfileView>,
    /// The roles the presented token acts under.
    #[schema(value_type = Vec<RoleSchema>)]
    acting_roles: Vec<Role>,
}

/// OpenID Connect discovery: where API Gateway's JWT authorizer finds the signing keys.
#[derive(Serialize, ToSchema)]
pub(crate) struct Discovery {
    issuer: String,
    jwks_uri: String,
    id_token_signing_alg_values_supported: Vec<String>,
    response_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
}

/// The one answer to every failed login: it says nothing of whether the address exists,
/// the password was wrong or the account is locked.
fn bad_credentials() -> ApiError {
    ApiError::unauthorized(
        "invalid_credentials",
        "wrong e-mail or password, or too many attempts: try again later",
    )
}

fn invalid_link() -> ApiError {
    ApiError::unauthorized(
        "invalid_link",
        "this link is not valid, was already used or has expired",
    )
}

pub(crate) fn parse_email(field: &str, value: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub(crate) fn parse_finess(field: &str, value: &str) -> Result<Finess, ApiError> {
    Finess::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// The roles a token carries when acting for `structure`: those on it, and territorial ones.
fn roles_for(roles: &[Role], structure: Option<Finess>) -> Result<Vec<Role>, ApiError> {
    let Some(f) = structure else {
        return Ok(roles.to_vec());
    };
    if !roles.iter().any(|r| role_structure(r) == Some(f)) {
        return Err(ApiError::forbidden(
            tdb_domain::rights::Denied::OutsideStructure,
        ));
    }
    Ok(roles
        .iter()
        .filter(|r| role_structure(r).is_none_or(|s| s == f))
        .copied()
        .collect())
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    /// Issues an access token and a new refresh token. `continuing` is the refresh token
    /// being rotated: the new one keeps its session's start, so a session cannot outlive
    /// `session_max_age` however often it is refreshed.
    async fn issue(
        &self,
        record: &AccountRecord,
        roles: Vec<Role>,
        acting_for: Option<Finess>,
        continuing: Option<&TokenRecord>,
    ) -> Result<Response, ApiError> {
        let now = self.now();
        let session_started = continuing.map_or(now, |t| t.session_started);
        if continuing.is_none() {
            self.end_oldest_sessions(&record.account.id, now).await?;
        }
        let refresh_token = new_token();
        self.store
            .put_token(&TokenRecord {
                hash: token_hash(&refresh_token),
                purpose: TokenPurpose::Refresh,
                account: record.account.id.clone(),
                expires_at: (now + self.settings.refresh_ttl)
                    .min(session_started + self.settings.session_max_age),
                acting_for,
                epoch: record.account.sessions_epoch,
                session_started,
            })
            .await
            .map_err(store_error)?;
        let access_token = self
            .signer
            .sign(&record.account.id, roles.clone(), acting_for, now);
        Ok(json(
            200,
            &Tokens {
                access_token,
                token_type: "Bearer",
                expires_in: self.signer.ttl,
                refresh_token,
                roles,
                acting_for,
            },
        ))
    }

    /// Before a new session begins: ends the oldest ones so that the account keeps at most
    /// `max_sessions` (the index read may miss a token written a moment ago, so the cap can
    /// be passed by a few concurrent logins, never for long).
    async fn end_oldest_sessions(&self, account: &AccountId, now: i64) -> Result<(), ApiError> {
        let mut live: Vec<TokenRecord> = self
            .store
            .tokens_of(account)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|t| t.purpose == TokenPurpose::Refresh && t.expires_at > now)
            .collect();
        let keep = self.settings.max_sessions.saturating_sub(1);
        if live.len() > keep {
            live.sort_by_key(|t| t.session_started);
            for old in &live[..live.len() - keep] {
                self.store
                    .take_token(&old.hash)
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }

    /// Counts a login attempt as a failure before the password is verified, with a write
    /// conditioned on the account's version: parallel attempts each need a reservation of
    /// their own, so no more passwords are verified than the throttle allows, and none is
    /// verified while the account is paused or locked. `None` when no attempt may be made
    /// (locked, no password yet, or too much contention: the caller answers as for a wrong
    /// password). Returns the account as reserved.
    async fn reserve_attempt(
        &self,
        record: AccountRecord,
    ) -> Result<Option<AccountRecord>, ApiError> {
        let now = self.now();
        let throttle = self.settings.login_throttle;
        let saved = self
            .save_account_with(record, |account| {
                if account.password_hash.is_none() || account.locked_until.is_some_and(|t| t > now)
                {
                    return Ok(None);
                }
                let failures = account.failed_logins + 1;
                Ok(Some(Account {
                    failed_logins: failures,
                    locked_until: throttle.locked_until(failures, now),
                    ..account.clone()
                }))
            })
            .await?;
        Ok(match saved {
            SaveOutcome::Done(record) => Some(*record),
            SaveOutcome::Declined | SaveOutcome::Gone | SaveOutcome::Contended => None,
        })
    }

    /// After a right password: the reserved failure and any pause are cleared. A concurrent
    /// change is reread and the clearing retried; failing that, the counter stays as it was
    /// (the next success clears it), which never blocks this login.
    async fn clear_attempts(&self, reserved: &AccountRecord) -> Result<(), ApiError> {
        let saved = self
            .save_account_with(reserved.clone(), |account| {
                Ok(Some(Account {
                    failed_logins: 0,
                    locked_until: None,
                    ..account.clone()
                }))
            })
            .await?;
        if matches!(saved, SaveOutcome::Contended) {
            tracing::warn!(account = %reserved.account.id, "login counters not cleared: concurrent changes");
        }
        Ok(())
    }

    /// Answers 200 with tokens, or 400 on a malformed body, 401 for every failure whether or
    /// not the address exists, 403 for a `structure` the account has no role on, and 503
    /// when storage is down (for known and unknown addresses alike: both read it).
    pub(crate) async fn login(&self, body: LoginBody) -> Result<Response, ApiError> {
        let started = tokio::time::Instant::now();
        let outcome = self.try_login(body).await;
        // Every refusal takes at least the floor: a known address costs a few more storage
        // round trips than an unknown one, and the answer's timing must not tell them apart.
        if matches!(&outcome, Err(e) if e.status == 401) {
            tokio::time::sleep_until(started + self.settings.login_refusal_floor).await;
        }
        outcome
    }

    async fn try_login(&self, body: LoginBody) -> Result<Response, ApiError> {
        let email = parse_email("email", &body.email)?;
        let acting_for = body
            .structure
            .as_deref()
            .map(|s| parse_finess("structure", s))
            .transpose()?;
        let record = self
            .store
            .account_by_email(&email)
            .await
            .map_err(store_error)?;
        let reserved = match record {
            // A failed reservation write is answered like a wrong password (after the same
            // decoy work): a 503 here would exist only for known addresses.
            Some(record) => self.reserve_attempt(record).await.unwrap_or_else(|e| {
                tracing::error!(code = e.code, "login attempt not reserved");
                None
            }),
            None => None,
        };
        let Some(record) = reserved else {
            // Unknown, locked or never activated: the same work and answer as a wrong password.
            verify_password(&body.password, self.decoy_hash());
            return Err(bad_credentials());
        };
        let hash = record.account.password_hash.as_deref().unwrap_or_default();
        self.password_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !verify_password(&body.password, hash) {
            tracing::info!(account = %record.account.id, "login failed");
            return Err(bad_credentials());
        }
        self.clear_attempts(&record).await?;
        let roles = roles_for(&record.roles, acting_for)?;
        tracing::info!(account = %record.account.id, "login");
        self.issue(&record, roles, acting_for, None).await
    }

    pub(crate) async fn refresh(&self, body: RefreshBody) -> Result<Response, ApiError> {
        let invalid = || ApiError::unauthorized("invalid_token", "the refresh token is not valid");
        let acting_for = body
            .structure
            .as_deref()
            .map(|s| parse_finess("structure", s))
            .transpose()?;
        let now = self.now();
        // Taking the token consumes it: a refresh token is used once, then replaced.
        let token = self
            .store
            .take_token(&token_hash(&body.refresh_token))
            .await
            .map_err(store_error)?
            .ok_or_else(invalid)?;
        if token.purpose != TokenPurpose::Refresh {
            // An e-mailed link sent here by mistake stays usable where it belongs.
            self.store.put_token(&token).await.map_err(store_error)?;
            return Err(invalid());
        }
        if token.expires_at <= now {
            return Err(invalid());
        }
        let record = self
            .store
            .account(&token.account)
            .await
            .map_err(store_error)?
            // A new password raised the epoch: every session begun before it is over.
            .filter(|r| r.account.sessions_epoch == token.epoch)
            .filter(|_| now - token.session_started < self.settings.session_max_age)
            .ok_or_else(invalid)?;
        let acting_for = acting_for.or(token.acting_for);
        let roles = match roles_for(&record.roles, acting_for) {
            Ok(roles) => roles,
            Err(refused) => {
                // Refused for another reason than the token: it stays usable.
                self.store.put_token(&token).await.map_err(store_error)?;
                return Err(refused);
            }
        };
        self.issue(&record, roles, acting_for, Some(&token)).await
    }

    pub(crate) async fn logout(&self, body: LogoutBody) -> Result<Response, ApiError> {
        // Unknown tokens are fine: logging out twice is not an error.
        self.store
            .take_token(&token_hash(&body.refresh_token))
            .await
            .map_err(store_error)?;
        Ok(no_content())
    }

    pub(crate) async fn set_password(&self, body: PasswordBody) -> Result<Response, ApiError> {
        let token = self
            .store
            .take_token(&token_hash(&body.token))
            .await
            .map_err(store_error)?
            .ok_or_else(invalid_link)?;
        if token.purpose == TokenPurpose::Refresh {
            // A refresh token sent here by mistake stays usable where it belongs.
            self.store.put_token(&token).await.map_err(store_error)?;
            return Err(invalid_link());
        }
        if token.expires_at <= self.now() {
            return Err(invalid_link());
        }
        let record = match self.store.account(&token.account).await {
            Ok(record) => record,
            Err(e) => {
                self.store.put_token(&token).await.map_err(store_error)?;
                return Err(store_error(e));
            }
        }
        // A link made before the last password change is over, like the sessions.
        .filter(|r| r.account.sessions_epoch == token.epoch)
        .ok_or_else(invalid_link)?;
        if let Err(e) = self
            .settings
            .password_policy
            .check(&body.password, &record.account.email)
        {
            // The link stays usable for a better password.
            self.store.put_token(&token).await.map_err(store_error)?;
            return Err(password_refused(e));
        }
        let hash = hash_password(&body.password);
        let saved = self
            .save_account_with(record, |account| {
                Ok(Some(Account {
                    password_hash: Some(hash.clone()),
                    failed_logins: 0,
                    locked_until: None,
                    // Every session begun before this password is over.
                    sessions_epoch: account.sessions_epoch + 1,
                    // The link arrived: the address takes mail again.
                    undeliverable: None,
                    ..account.clone()
                }))
            })
            .await;
        let updated = match saved {
            Ok(SaveOutcome::Done(record)) => record.account,
            Ok(SaveOutcome::Gone) => return Err(invalid_link()),
            refused => {
                // Not consumed: the person may simply try again.
                self.store.put_token(&token).await.map_err(store_error)?;
                return Err(match refused {
                    Err(e) => e,
                    _ => store_error(StoreError::Conflict { expected: 0 }),
                });
            }
        };
        // The epoch already ends the sessions; deleting their tokens only tidies the table.
        if let Err(e) = self.store.revoke_tokens(&updated.id).await {
            tracing::warn!(account = %updated.id, error = %e, "old refresh tokens not deleted");
        }
        tracing::info!(account = %updated.id, purpose = ?token.purpose, "password set");
        Ok(no_content())
    }

    /// Answers 202 whether or not the address has an account, no sooner than
    /// `reset_answer_floor`; only a storage failure on the lookup, which both cases make,
    /// answers 503. A link is sent at most once per `link_cooldown`.
    pub(crate) async fn request_reset(&self, body: ResetBody) -> Result<Response, ApiError> {
        let started = tokio::time::Instant::now();
        let email = parse_email("email", &body.email)?;
        let found = self.store.account_by_email(&email).await;
        if let Ok(Some(record)) = &found
            && let Err(e) = self
                .send_link(&record.account, TokenPurpose::PasswordReset, None)
                .await
        {
            // Logged with the account id; the caller is told nothing that depends on it.
            tracing::warn!(account = %record.account.id, code = e.code, "reset link not sent");
        }
        tokio::time::sleep_until(started + self.settings.reset_answer_floor).await;
        found.map_err(store_error)?;
        Ok(json(
            202,
            &Message {
                message: "if this address has an account, a link was sent to it".into(),
            },
        ))
    }

    /// Creates a single-use link for `account` and e-mails it, unless a link was sent less
    /// than `link_cooldown` ago. The send is claimed first by a conditional write of
    /// `link_sent_at` (so of two concurrent requests one sends), and the claim is released
    /// if the e-mail fails, so that a retry sends it. `Ok(false)` when nothing was sent.
    pub(crate) async fn send_link(
        &self,
        account: &Account,
        purpose: TokenPurpose,
        structure: Option<&StructureRecord>,
    ) -> Result<bool, ApiError> {
        let now = self.now();
        let cooldown = self.settings.link_cooldown;
        let current = AccountRecord {
            account: account.clone(),
            roles: Vec::new(),
        };
        // Reread on a concurrent change (a login attempt, or this very link being sent):
        // the cooldown tells the two apart.
        let saved = self
            .save_account_with(current, |account| {
                if account.link_sent_at.is_some_and(|t| now - t < cooldown) {
                    return Ok(None);
                }
                Ok(Some(Account {
                    link_sent_at: Some(now),
                    ..account.clone()
                }))
            })
            .await?;
        let SaveOutcome::Done(saved) = saved else {
            return Ok(false);
        };
        let claimed = saved.account;
        let before = account.link_sent_at;
        if let Err(e) = self.mail_link(&claimed, purpose, structure).await {
            let released = Account {
                link_sent_at: before,
                version: claimed.version + 1,
                ..claimed
            };
            if self.store.save_account(&released).await.is_err() {
                tracing::warn!(account = %account.id, "link claim not released");
            }
            return Err(e);
        }
        Ok(true)
    }

    async fn mail_link(
        &self,
        account: &Account,
        purpose: TokenPurpose,
        structure: Option<&StructureRecord>,
    ) -> Result<(), ApiError> {
        let token = new_token();
        let ttl = self.settings.link_ttl;
        self.store
            .put_token(&TokenRecord {
                hash: token_hash(&token),
                purpose,
                account: account.id.clone(),
                expires_at: self.now() + ttl,
                acting_for: None,
                epoch: account.sessions_epoch,
                session_started: self.now(),
            })
            .await
            .map_err(store_error)?;
        // A fragment, not a query: it never reaches a server log or a Referer header.
        let link = format!("{}/mot-de-passe#jeton={token}", self.settings.public_url);
        let email = match purpose {
            TokenPurpose::PasswordReset => {
                mail::password_reset(&account.email, &account.person, &link, ttl)
            }
            _ => mail::activation(&account.email, &account.person, structure, &link, ttl),
        };
        self.mailer.send(&email).await.map_err(|e| {
            // The error's kind only: a mail service's message may quote the address.
            let kind = match e {
                tdb_domain::ports::MailError::Rejected(_) => "rejected",
                tdb_domain::ports::MailError::Backend(_) => "backend",
            };
            tracing::error!(account = %account.id, kind, "e-mail not sent");
            ApiError::unavailable()
        })?;
        tracing::info!(account = %account.id, ?purpose, "link sent");
        Ok(())
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    "application/json".parse().expect("a header value"),
                ),
                (header::CACHE_CONTROL, PUBLIC_DOCUMENT),
            ],
            self.signer.jwks_json(),
        )
            .into_response()
    }

    /// The OpenID Connect discovery document. The issuer is the address this API is served
    /// at, so `<issuer>/.well-known/jwks.json` is the key set above.
    pub fn discovery(&self) -> Response {
        let issuer = self.signer.issuer().trim_end_matches('/').to_string();
        let document = Discovery {
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            issuer: self.signer.issuer().to_string(),
            id_token_signing_alg_values_supported: vec!["RS256".into()],
            response_types_supported: vec!["token".into()],
            subject_types_supported: vec!["public".into()],
        };
        let mut response = json(200, &document);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, PUBLIC_DOCUMENT);
        response
    }

    /// The caller's account and profiles.
    pub async fn me(&self, caller: &Caller) -> Result<Response, ApiError> {
        let record = self.caller_record(caller).await?;
        let on: Vec<Finess> = record.roles.iter().filter_map(role_structure).collect();
        let structures = self.store.structures(&on).await.map_err(store_error)?;
        let profiles = record
            .roles
            .iter()
            .map(|role| ProfileView {
                role: *role,
                structure: role_structure(role)
                    .and_then(|f| structures.iter().find(|s| s.finess == f))
                    .map(|s| ProfileStructure {
                        finess: s.finess,
                        name: s.name.clone(),
                        kind: s.kind,
                    }),
            })
            .collect();
        let account = record.account;
        Ok(json(
            200,
            &MeView {
                id: account.id,
                email: account.email,
                last_name: account.person.last_name,
                first_name: account.person.first_name,
                phone: account.person.phone,
                profiles,
                acting_roles: caller.roles.clone(),
            },
        ))
    }
}

/// A refused password names its reason in the code, so that the password page can say it
/// in French.
pub(crate) fn password_refused(e: PasswordError) -> ApiError {
    let code = match e {
        PasswordError::TooShort(_) => "password_too_short",
        PasswordError::TooLong(_) => "password_too_long",
        PasswordError::Weak => "password_weak",
        PasswordError::ContainsEmail => "password_contains_email",
    };
    ApiError::invalid_as(code, "password", e.to_string())
}
