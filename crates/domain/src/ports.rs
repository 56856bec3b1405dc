//! Ports: what the functions need from storage and e-mail, in domain terms. The AWS adapters
//! (crate `tdb-aws`) implement them over DynamoDB, S3 and SES; `memory` implements them in
//! process for handler tests. A contract test runs the same assertions against both.

use crate::accounts::{Account, AccountId, AccountRecord, StructureRecord, TokenRecord};
use crate::campaign::{CampaignYear, QuestionnaireStatus};
use crate::finess::Finess;
use crate::geo::Departement;
use crate::rights::Role;
use crate::structure::Respondent;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use time::Date;

/// A questionnaire as stored: answers in their JSON form (see `Definition::parse_answers`),
/// with what the listings need next to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredQuestionnaire {
    pub campaign: CampaignYear,
    pub respondent: Respondent,
    pub departement: Departement,
    /// The OG managing the respondent, when there is one (for the OG's progress view).
    pub og: Option<Finess>,
    pub status: QuestionnaireStatus,
    pub answers: serde_json::Map<String, serde_json::Value>,
    pub fill_rate: f64,
    /// Incremented by each write: optimistic concurrency between two editors.
    pub version: u64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One line of a territory's progress listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEntry {
    pub finess: Finess,
    pub status: QuestionnaireStatus,
    pub fill_rate: f64,
}

/// A page of results and the opaque token of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote first: reload and try again.
    #[error("the record changed since it was read (expected version {expected})")]
    Conflict { expected: u64 },
    #[error("invalid page token")]
    BadPageToken,
    /// A value that must be unique is taken (an e-mail address, the APE of a structure).
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Questionnaires by structure and campaign, and the listings that steer a campaign.
pub trait QuestionnaireStore: Send + Sync {
    fn get(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> impl Future<Output = Result<Option<StoredQuestionnaire>, StoreError>> + Send;

    /// Writes `q` if the stored version is `q.version - 1` (a new questionnaire has version 1).
    fn put(&self, q: &StoredQuestionnaire) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes many questionnaires unconditionally (campaign opening, imports), in batches.
    fn put_many(
        &self,
        qs: &[StoredQuestionnaire],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The structures an OG manages that have a questionnaire in this campaign.
    fn list_by_og(
        &self,
        campaign: CampaignYear,
        og: Finess,
        page: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Finess>, StoreError>> + Send;

    /// The progress of a département's questionnaires, optionally of one status only.
    fn list_by_departement(
        &self,
        campaign: CampaignYear,
        departement: Departement,
        status: Option<QuestionnaireStatus>,
        page: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<ProgressEntry>, StoreError>> + Send;
}

/// One event in a questionnaire's history. `actor` is an account id, never a name or e-mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: serde_json::Value,
}

/// The audit trail of questionnaires, oldest first.
pub trait AuditLog: Send + Sync {
    fn append(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
}

/// Which reminders went to which structure, so none is sent twice the same day.
pub trait SendLog: Send + Sync {
    /// Records a send; `false` if this kind was already recorded for this structure that day.
    fn record(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        kind: &str,
        day: Date,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn sent(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> impl Future<Output = Result<Vec<(Date, String)>, StoreError>> + Send;
}

/// Structures, accounts, roles and tokens of the account platform.
///
/// Multi-item changes are atomic: a role and the structure's APE link are written together,
/// so an interrupted request never leaves one without the other.
pub trait AccountStore: Send + Sync {
    /// The structures among `finess` that exist, each once, in no particular order.
    fn structures(
        &self,
        finess: &[Finess],
    ) -> impl Future<Output = Result<Vec<StructureRecord>, StoreError>> + Send;

    /// Adds new structures (referential import); they have no APE yet.
    fn create_structures(
        &self,
        structures: &[StructureRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Rewrites the referential data of an existing structure, keeping its APE link.
    fn update_structure(
        &self,
        structure: &StructureRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The structures of a département, those without an APE first, then by FINESS.
    fn structures_of_departement(
        &self,
        departement: Departement,
    ) -> impl Future<Output = Result<Vec<StructureRecord>, StoreError>> + Send;

    /// The ESMS an OG manages, those without an APE first, then by FINESS.
    fn structures_of_og(
        &self,
        og: Finess,
    ) -> impl Future<Output = Result<Vec<StructureRecord>, StoreError>> + Send;

    fn account(
        &self,
        id: &AccountId,
    ) -> impl Future<Output = Result<Option<AccountRecord>, StoreError>> + Send;

    fn account_by_email(
        &self,
        email: &EmailAddress,
    ) -> impl Future<Output = Result<Option<AccountRecord>, StoreError>> + Send;

    /// The accounts among `ids` that exist (without their roles), each once, in no
    /// particular order.
    fn accounts(
        &self,
        ids: &[AccountId],
    ) -> impl Future<Output = Result<Vec<Account>, StoreError>> + Send;

    /// Creates an account holding one role. `Duplicate("email")` if the address has an
    /// account; for an APE role, `Duplicate("ape")` if the structure already has one and
    /// `NotFound("structure")` if it does not exist.
    fn create_account(
        &self,
        account: &Account,
        role: &Role,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves the person, password hash and login counters if the stored version is
    /// `account.version - 1` (`Conflict` otherwise). The e-mail address never changes.
    fn save_account(
        &self,
        account: &Account,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives an existing account a role, replacing the role it held on the same structure.
    /// Same errors as `create_account` for an APE role.
    fn grant(
        &self,
        id: &AccountId,
        role: &Role,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a role away (an APE role also frees the structure). An account left without
    /// any role is deleted with its e-mail address and tokens. `NotFound("role")` if the
    /// account did not hold it.
    fn revoke(
        &self,
        id: &AccountId,
        role: &Role,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The accounts holding a role on a structure, with that role, by account id.
    fn members(
        &self,
        structure: Finess,
    ) -> impl Future<Output = Result<Vec<(Account, Role)>, StoreError>> + Send;

    fn put_token(&self, token: &TokenRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a token and returns it: of two concurrent callers only one gets it.
    fn take_token(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// Removes every token of an account (logout everywhere, new password).
    fn revoke_tokens(&self, id: &AccountId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An e-mail address, checked for shape when parsed. Never logged.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an e-mail address")]
pub struct EmailAddressError;

impl EmailAddress {
    pub fn parse(s: &str) -> Result<EmailAddress, EmailAddressError> {
        let s = s.trim();
        let (local, domain) = s.split_once('@').ok_or(EmailAddressError)?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(EmailAddress(s.to_lowercase()))
        } else {
            Err(EmailAddressError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailAddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}

/// Debug output hides the address: personal data stays out of logs.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

/// A message ready to send, already rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mail service refused the message: {0}")]
    Rejected(String),
    #[error("the mail service failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends e-mail.
pub trait Mailer: Send + Sync {
    /// Sends one message; returns the provider's message id.
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, MailError>> + Send;
}

/// Objects of the Parquet lake.
pub trait Lake: Send + Sync {
    fn put(&self, key: &str, bytes: Vec<u8>)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// In-process implementations of the ports, for handler tests and demos.
pub mod memory {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    fn page_of<T: Clone>(
        all: Vec<T>,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<T>, StoreError> {
        let start: usize = match page {
            None => 0,
            Some(token) => token.parse().map_err(|_| StoreError::BadPageToken)?,
        };
        let end = (start + limit.max(1) as usize).min(all.len());
        let next = (end < all.len()).then(|| end.to_string());
        Ok(Page {
            items: all.get(start..end).unwrap_or_default().to_vec(),
            next,
        })
    }

    #[derive(Default)]
    pub struct MemoryQuestionnaireStore {
        rows: Mutex<BTreeMap<(CampaignYear, Finess), StoredQuestionnaire>>,
    }

    impl QuestionnaireStore for MemoryQuestionnaireStore {
        async fn get(
            &self,
            campaign: CampaignYear,
            finess: Finess,
        ) -> Result<Option<StoredQuestionnaire>, StoreError> {
            Ok(self
                .rows
                .lock()
                .expect("lock")
                .get(&(campaign, finess))
                .cloned())
        }

        async fn put(&self, q: &StoredQuestionnaire) -> Result<(), StoreError> {
            let mut rows = self.rows.lock().expect("lock");
            let key = (q.campaign, q.respondent.finess);
            let expected = q.version.saturating_sub(1);
            let current = rows.get(&key).map_or(0, |r| r.version);
            if current != expected {
                return Err(StoreError::Conflict { expected });
            }
            rows.insert(key, q.clone());
            Ok(())
        }

        async fn put_many(&self, qs: &[StoredQuestionnaire]) -> Result<(), StoreError> {
            let mut rows = self.rows.lock().expect("lock");
            for q in qs {
                rows.insert((q.campaign, q.respondent.finess), q.clone());
            }
            Ok(())
        }

        async fn list_by_og(
            &self,
            campaign: CampaignYear,
            og: Finess,
            page: Option<String>,
            limit: u32,
        ) -> Result<Page<Finess>, StoreError> {
            let all = self
                .rows
                .lock()
                .expect("lock")
                .values()
                .filter(|q| q.campaign == campaign && q.og == Some(og))
                .map(|q| q.respondent.finess)
                .collect();
            page_of(all, page, limit)
        }

        async fn list_by_departement(
            &self,
            campaign: CampaignYear,
            departement: Departement,
            status: Option<QuestionnaireStatus>,
            page: Option<String>,
            limit: u32,
        ) -> Result<Page<ProgressEntry>, StoreError> {
            let mut all: Vec<_> = self
                .rows
                .lock()
                .expect("lock")
                .values()
                .filter(|q| {
                    q.campaign == campaign
                        && q.departement == departement
                        && status.is_none_or(|s| s == q.status)
                })
                .map(|q| ProgressEntry {
                    finess: q.respondent.finess,
                    status: q.status,
                    fill_rate: q.fill_rate,
                })
                .collect();
            // The same order as the DynamoDB index: by status name, then FINESS.
            all.sort_by(|a, b| {
                (status_key(a.status), a.finess).cmp(&(status_key(b.status), b.finess))
            });
            page_of(all, page, limit)
        }
    }

    /// The name of a status, as stored and sorted.
    pub fn status_key(status: QuestionnaireStatus) -> &'static str {
        match status {
            QuestionnaireStatus::NotStarted => "not_started",
            QuestionnaireStatus::InProgress => "in_progress",
            QuestionnaireStatus::Validated => "validated",
            QuestionnaireStatus::Reopened => "reopened",
            QuestionnaireStatus::Closed => "closed",
        }
    }

    #[derive(Default)]
    pub struct MemoryAuditLog {
        entries: Mutex<BTreeMap<(CampaignYear, Finess), Vec<AuditEntry>>>,
    }

    impl AuditLog for MemoryAuditLog {
        async fn append(
            &self,
            campaign: CampaignYear,
            finess: Finess,
            entry: &AuditEntry,
        ) -> Result<(), StoreError> {
            let mut entries = self.entries.lock().expect("lock");
            let list = entries.entry((campaign, finess)).or_default();
            list.push(entry.clone());
            list.sort_by_key(|e| e.at);
            Ok(())
        }

        async fn list(
            &self,
            campaign: CampaignYear,
            finess: Finess,
        ) -> Result<Vec<AuditEntry>, StoreError> {
            Ok(self
                .entries
                .lock()
                .expect("lock")
                .get(&(campaign, finess))
                .cloned()
                .unwrap_or_default())
        }
    }

    /// Sends recorded per questionnaire: (day, kind).
    type Sends = BTreeMap<(CampaignYear, Finess), Vec<(Date, String)>>;

    #[derive(Default)]
    pub struct MemorySendLog {
        sent: Mutex<Sends>,
    }

    impl SendLog for MemorySendLog {
        async fn record(
            &self,
            campaign: CampaignYear,
            finess: Finess,
            kind: &str,
            day: Date,
        ) -> Result<bool, StoreError> {
            let mut sent = self.sent.lock().expect("lock");
            let list = sent.entry((campaign, finess)).or_default();
            if list.iter().any(|(d, k)| *d == day && k == kind) {
                return Ok(false);
            }
            list.push((day, kind.to_string()));
            list.sort();
            Ok(true)
        }

        async fn sent(
            &self,
            campaign: CampaignYear,
            finess: Finess,
        ) -> Result<Vec<(Date, String)>, StoreError> {
            Ok(self
                .sent
                .lock()
                .expect("lock")
                .get(&(campaign, finess))
                .cloned()
                .unwrap_or_default())
        }
    }

    #[derive(Default)]
    struct Accounts {
        structures: BTreeMap<Finess, StructureRecord>,
        accounts: BTreeMap<AccountId, Account>,
        roles: BTreeMap<AccountId, Vec<Role>>,
        tokens: BTreeMap<String, TokenRecord>,
    }

    impl Accounts {
        fn record(&self, id: &AccountId) -> Option<AccountRecord> {
            Some(AccountRecord {
                account: self.accounts.get(id)?.clone(),
                roles: self.roles.get(id).cloned().unwrap_or_default(),
            })
        }

        /// The checks an APE role needs before it is written.
        fn check_ape(&self, role: &Role, holder: &AccountId) -> Result<(), StoreError> {
            if let Role::Ape { structure } = role {
                let s = self
                    .structures
                    .get(structure)
                    .ok_or(StoreError::NotFound("structure"))?;
                if s.ape.as_ref().is_some_and(|a| a != holder) {
                    return Err(StoreError::Duplicate("ape"));
                }
            }
            Ok(())
        }

        fn set_role(&mut self, id: &AccountId, role: &Role) {
            let roles = self.roles.entry(id.clone()).or_default();
            let on = crate::accounts::role_structure(role);
            let replaced: Vec<Role> = roles
                .iter()
                .filter(|r| on.is_some() && crate::accounts::role_structure(r) == on)
                .copied()
                .collect();
            roles.retain(|r| !replaced.contains(r) && r != role);
            roles.push(*role);
            for r in replaced {
                if let Role::Ape { structure } = r
                    && let Some(s) = self.structures.get_mut(&structure)
                {
                    s.ape = None;
                }
            }
            if let Role::Ape { structure } = role
                && let Some(s) = self.structures.get_mut(structure)
            {
                s.ape = Some(id.clone());
            }
        }
    }

    /// Sorts like the DynamoDB indexes: structures without an APE first, then by FINESS.
    fn ape_first(mut v: Vec<StructureRecord>) -> Vec<StructureRecord> {
        v.sort_by_key(|s| (s.ape.is_some(), s.finess));
        v
    }

    #[derive(Default)]
    pub struct MemoryAccountStore {
        inner: Mutex<Accounts>,
    }

    impl AccountStore for MemoryAccountStore {
        async fn structures(&self, finess: &[Finess]) -> Result<Vec<StructureRecord>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            let unique: std::collections::BTreeSet<_> = finess.iter().collect();
            Ok(unique
                .into_iter()
                .filter_map(|f| inner.structures.get(f).cloned())
                .collect())
        }

        async fn create_structures(
            &self,
            structures: &[StructureRecord],
        ) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            for s in structures {
                inner.structures.insert(
                    s.finess,
                    StructureRecord {
                        ape: None,
                        ..s.clone()
                    },
                );
            }
            Ok(())
        }

        async fn update_structure(&self, structure: &StructureRecord) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            let stored = inner
                .structures
                .get_mut(&structure.finess)
                .ok_or(StoreError::NotFound("structure"))?;
            *stored = StructureRecord {
                ape: stored.ape.clone(),
                ..structure.clone()
            };
            Ok(())
        }

        async fn structures_of_departement(
            &self,
            departement: Departement,
        ) -> Result<Vec<StructureRecord>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            Ok(ape_first(
                inner
                    .structures
                    .values()
                    .filter(|s| s.departement() == departement)
                    .cloned()
                    .collect(),
            ))
        }

        async fn structures_of_og(&self, og: Finess) -> Result<Vec<StructureRecord>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            Ok(ape_first(
                inner
                    .structures
                    .values()
                    .filter(|s| s.og == Some(og))
                    .cloned()
                    .collect(),
            ))
        }

        async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>, StoreError> {
            Ok(self.inner.lock().expect("lock").record(id))
        }

        async fn account_by_email(
            &self,
            email: &EmailAddress,
        ) -> Result<Option<AccountRecord>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            let id = inner
                .accounts
                .values()
                .find(|a| &a.email == email)
                .map(|a| a.id.clone());
            Ok(id.and_then(|id| inner.record(&id)))
        }

        async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            let unique: std::collections::BTreeSet<_> = ids.iter().collect();
            Ok(unique
                .into_iter()
                .filter_map(|id| inner.accounts.get(id).cloned())
                .collect())
        }

        async fn create_account(&self, account: &Account, role: &Role) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            if inner.accounts.values().any(|a| a.email == account.email) {
                return Err(StoreError::Duplicate("email"));
            }
            inner.check_ape(role, &account.id)?;
            inner.accounts.insert(account.id.clone(), account.clone());
            inner.set_role(&account.id, role);
            Ok(())
        }

        async fn save_account(&self, account: &Account) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            let expected = account.version.saturating_sub(1);
            let stored = inner
                .accounts
                .get_mut(&account.id)
                .ok_or(StoreError::NotFound("account"))?;
            if stored.version != expected {
                return Err(StoreError::Conflict { expected });
            }
            *stored = Account {
                email: stored.email.clone(),
                ..account.clone()
            };
            Ok(())
        }

        async fn grant(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            if !inner.accounts.contains_key(id) {
                return Err(StoreError::NotFound("account"));
            }
            inner.check_ape(role, id)?;
            inner.set_role(id, role);
            Ok(())
        }

        async fn revoke(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
            let mut inner = self.inner.lock().expect("lock");
            let roles = inner.roles.entry(id.clone()).or_default();
            if !roles.contains(role) {
                return Err(StoreError::NotFound("role"));
            }
            roles.retain(|r| r != role);
            let now_empty = roles.is_empty();
            if let Role::Ape { structure } = role
                && let Some(s) = inner.structures.get_mut(structure)
            {
                s.ape = None;
            }
            if now_empty {
                inner.roles.remove(id);
                inner.accounts.remove(id);
                inner.tokens.retain(|_, t| &t.account != id);
            }
            Ok(())
        }

        async fn members(&self, structure: Finess) -> Result<Vec<(Account, Role)>, StoreError> {
            let inner = self.inner.lock().expect("lock");
            Ok(inner
                .roles
                .iter()
                .flat_map(|(id, roles)| roles.iter().map(move |r| (id, r)))
                .filter(|(_, r)| crate::accounts::role_structure(r) == Some(structure))
                .filter_map(|(id, r)| Some((inner.accounts.get(id)?.clone(), *r)))
                .collect())
        }

        async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
            self.inner
                .lock()
                .expect("lock")
                .tokens
                .insert(token.hash.clone(), token.clone());
            Ok(())
        }

        async fn take_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
            Ok(self.inner.lock().expect("lock").tokens.remove(hash))
        }

        async fn revoke_tokens(&self, id: &AccountId) -> Result<(), StoreError> {
            self.inner
                .lock()
                .expect("lock")
                .tokens
                .retain(|_, t| &t.account != id);
            Ok(())
        }
    }

    /// Keeps every message it is given.
    #[derive(Default)]
    pub struct MemoryMailer {
        pub outbox: Mutex<Vec<Email>>,
    }

    impl Mailer for MemoryMailer {
        async fn send(&self, email: &Email) -> Result<String, MailError> {
            let mut outbox = self.outbox.lock().expect("lock");
            outbox.push(email.clone());
            Ok(format!("memory-{}", outbox.len()))
        }
    }

    #[derive(Default)]
    pub struct MemoryLake {
        objects: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl Lake for MemoryLake {
        async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
            self.objects
                .lock()
                .expect("lock")
                .insert(key.to_string(), bytes);
            Ok(())
        }

        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.objects.lock().expect("lock").get(key).cloned())
        }

        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            Ok(self
                .objects
                .lock()
                .expect("lock")
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_and_never_shown_in_debug_output() {
        let e = EmailAddress::parse(" Direction.EHPAD@exemple.fr ").unwrap();
        assert_eq!(e.as_str(), "direction.ehpad@exemple.fr");
        assert!(!format!("{e:?}").contains("exemple"));
        for bad in ["", "no-at", "a@b", "a@@b.fr", "a b@c.fr", "@c.fr", "a@.fr"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
