//! Ports: what the functions need from storage and e-mail, in domain terms. The AWS adapters
//! (crate `tdb-aws`) implement them over DynamoDB, S3 and SES; `fakes` (feature `fakes`)
//! implements them in process for tests. A contract test runs the same assertions against
//! both.

use crate::accounts::{Account, AccountId, AccountRecord, ImportJob, StructureRecord, TokenRecord};
use crate::campaign::{CampaignYear, QuestionnaireStatus};
use crate::category::RespondentKind;
use crate::email::EmailAddress;
use crate::finess::Finess;
use crate::geo::Departement;
use crate::rights::Role;
use crate::structure::Respondent;
use serde::{Deserialize, Serialize};
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
    /// For each answered item: the questionnaire version that last changed it, and where
    /// its value came from. Concurrent saves are checked item by item against it.
    #[serde(default)]
    pub items: std::collections::BTreeMap<String, ItemMeta>,
    /// The values last imported from the financial statements, kept next to the answers:
    /// a structure's correction replaces the answer, never this.
    #[serde(default)]
    pub prefilled: serde_json::Map<String, serde_json::Value>,
    pub fill_rate: f64,
    /// Blocking rules failing at the last write (the OG's and the ARS's listings show it).
    #[serde(default)]
    pub blocking: u32,
    /// Warnings acknowledged, and values flagged as outliers, at the last write: what puts
    /// a questionnaire on the ARS's review list.
    #[serde(default)]
    pub acknowledged: u32,
    #[serde(default)]
    pub outliers: u32,
    /// Each part's status and records, the acknowledgements, the OG's validation.
    #[serde(default)]
    pub workflow: crate::workflow::Workflow,
    /// Incremented by each write: optimistic concurrency between two editors.
    pub version: u64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl StoredQuestionnaire {
    /// A questionnaire as loaded from outside the API (a generated campaign, an import):
    /// every answered part in progress, and what is stored beside the answers evaluated.
    pub fn loaded(
        definition: &crate::questionnaire::Definition,
        campaign: CampaignYear,
        respondent: crate::Respondent,
        og: Option<Finess>,
        answers: serde_json::Map<String, serde_json::Value>,
        updated_at: i64,
    ) -> Result<StoredQuestionnaire, String> {
        let kind = respondent.kind;
        let parsed = definition
            .parse_answers(kind, &answers)
            .map_err(|e| format!("{}: {} invalid answers", respondent.finess, e.len()))?;
        let origin = ItemMeta {
            version: 1,
            origin: Origin::Structure,
            by: None,
        };
        let mut q = StoredQuestionnaire {
            campaign,
            departement: respondent.finess.departement(),
            respondent,
            og,
            status: QuestionnaireStatus::NotStarted,
            items: answers
                .keys()
                .map(|id| (id.clone(), origin.clone()))
                .collect(),
            answers,
            prefilled: Default::default(),
            fill_rate: 0.0,
            blocking: 0,
            acknowledged: 0,
            outliers: 0,
            workflow: Default::default(),
            version: 1,
            updated_at,
        };
        for id in q.answers.keys() {
            if let Some(item) = definition.item(id) {
                let part = definition.part_of(item).id.clone();
                q.workflow
                    .apply(&part, crate::workflow::Transition::Save)
                    .map_err(|e| e.to_string())?;
            }
        }
        q.record(definition, &definition.evaluate(kind, &parsed, None));
        Ok(q)
    }

    /// Each started part's status, as listings project it.
    pub fn part_statuses(&self) -> std::collections::BTreeMap<String, QuestionnaireStatus> {
        self.workflow
            .parts
            .iter()
            .map(|(id, state)| (id.clone(), state.status))
            .collect()
    }

    /// Brings what is stored beside the answers up to date with their evaluation: the
    /// fill rate, the failing blocking rules, the failing warnings acknowledged, and the
    /// status its parts give.
    pub fn record(
        &mut self,
        definition: &crate::questionnaire::Definition,
        evaluation: &crate::questionnaire::Evaluation<'_>,
    ) {
        use crate::questionnaire::Severity;
        self.fill_rate = evaluation.fill.overall.ratio();
        self.blocking = evaluation.blocking_violations().count() as u32;
        self.acknowledged = evaluation
            .violations
            .iter()
            .filter(|v| {
                v.severity == Severity::Warning
                    && self.workflow.acknowledgements.contains_key(v.rule)
            })
            .count() as u32;
        self.status = self.workflow.status(definition, self.respondent.kind);
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Entered by the structure itself.
    Structure,
    /// Entered by its managing organisation (subsidiarity).
    Og,
    /// Uploaded in bulk.
    Import,
    /// Pre-filled from the financial statements.
    Prefill,
}

/// What is known of one answered item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// The questionnaire version whose save last changed the item.
    pub version: u64,
    pub origin: Origin,
    /// The account whose save changed it last (an opaque id): a person's own earlier save
    /// never makes their next one stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// One line of an OG's or a territory's progress listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEntry {
    pub finess: Finess,
    pub kind: RespondentKind,
    pub status: QuestionnaireStatus,
    pub fill_rate: f64,
    pub blocking: u32,
    pub acknowledged: u32,
    pub outliers: u32,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// Each started part's status (a part absent is not started).
    pub parts: std::collections::BTreeMap<String, QuestionnaireStatus>,
    /// The OG managing the structure, if one.
    pub og: Option<Finess>,
}

impl ProgressEntry {
    pub fn of(q: &StoredQuestionnaire) -> ProgressEntry {
        ProgressEntry {
            finess: q.respondent.finess,
            kind: q.respondent.kind,
            status: q.status,
            fill_rate: q.fill_rate,
            blocking: q.blocking,
            acknowledged: q.acknowledged,
            outliers: q.outliers,
            updated_at: q.updated_at,
            parts: q.part_statuses(),
            og: q.og,
        }
    }

    /// A part's status.
    pub fn part(&self, part: &str) -> QuestionnaireStatus {
        self.parts
            .get(part)
            .copied()
            .unwrap_or(QuestionnaireStatus::NotStarted)
    }
}

/// A questionnaire's change as one atomic write: the new state (its version one more than
/// `before`'s), its trail line, the difference it makes to the progress counters, and
/// optionally the role the writer must still hold.
#[derive(Debug, Clone, Copy)]
pub struct AuditedWrite<'a> {
    pub before: &'a StoredQuestionnaire,
    pub after: &'a StoredQuestionnaire,
    pub entry: &'a AuditEntry,
    pub held: Option<HeldRole<'a>>,
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
    /// The account no longer holds the role the write was made under.
    #[error("the account no longer holds the role it wrote under")]
    RoleWithdrawn,
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

/// A questionnaire and its predecessor of the previous campaign, either absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    pub current: Option<StoredQuestionnaire>,
    pub previous: Option<StoredQuestionnaire>,
}

/// The role a write is made under, as the account's token states it.
#[derive(Debug, Clone, Copy)]
pub struct HeldRole<'a> {
    pub account: &'a AccountId,
    pub role: &'a Role,
}

/// Questionnaires by structure and campaign, and the listings that steer a campaign.
pub trait QuestionnaireStore: Send + Sync {
    fn get(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> impl Future<Output = Result<Option<StoredQuestionnaire>, StoreError>> + Send;

    /// A questionnaire and the same structure's questionnaire of the previous campaign, read
    /// together (one request): a save needs both.
    fn get_with_previous(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> impl Future<Output = Result<Previous, StoreError>> + Send;

    /// Writes `write.after` if the stored version is still `write.before`'s
    /// (`Conflict` otherwise) and, in the same transaction, appends its trail line and adds
    /// its difference to the progress counters: a change is never stored without its line,
    /// and the counters always equal a recount. With `held`, the write also happens only if
    /// the account still holds the role it writes under (`RoleWithdrawn` otherwise): a role
    /// revoked a second ago writes nothing, and no separate read of the account is needed.
    fn put_audited(
        &self,
        write: AuditedWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which of these structures have a questionnaire in this campaign (read consistently).
    fn opened(
        &self,
        campaign: CampaignYear,
        finess: &[Finess],
    ) -> impl Future<Output = Result<std::collections::BTreeSet<Finess>, StoreError>> + Send;

    /// Creates those of `qs` that do not exist yet, with their counts in the progress
    /// counters, atomically by groups; returns how many it created. An existing
    /// questionnaire is never overwritten.
    fn create(
        &self,
        qs: &[StoredQuestionnaire],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Records a platform's closure, once: `false` if it was already closed (the first
    /// record stays).
    fn close(
        &self,
        campaign: CampaignYear,
        platform: crate::campaign::Platform,
        closure: &crate::workflow::Closure,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A platform's closure, if it is closed.
    fn closure(
        &self,
        campaign: CampaignYear,
        platform: crate::campaign::Platform,
    ) -> impl Future<Output = Result<Option<crate::workflow::Closure>, StoreError>> + Send;

    /// Every questionnaire of a campaign, a page at a time (for the peer statistics).
    fn scan(
        &self,
        campaign: CampaignYear,
        page: Option<String>,
    ) -> impl Future<Output = Result<Page<StoredQuestionnaire>, StoreError>> + Send;

    /// Replaces a campaign's progress counters (a recount: run it when nothing writes, as
    /// `tdb recount` says); counters absent from `counts` are removed.
    fn replace_progress(
        &self,
        campaign: CampaignYear,
        counts: &std::collections::BTreeMap<crate::progress::ProgressKey, crate::progress::Counts>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The progress counters of a campaign.
    fn progress(
        &self,
        campaign: CampaignYear,
    ) -> impl Future<
        Output = Result<Vec<(crate::progress::ProgressKey, crate::progress::Counts)>, StoreError>,
    > + Send;

    /// The questionnaires of the structures an OG manages.
    fn list_by_og(
        &self,
        campaign: CampaignYear,
        og: Finess,
        page: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<ProgressEntry>, StoreError>> + Send;

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

/// The audit trail of questionnaires.
pub trait AuditLog: Send + Sync {
    fn append(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A questionnaire's trail, newest first, `limit` entries a page; `page` is the `next`
    /// of the previous page (`BadPageToken` if it is not one).
    fn list(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        page: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<AuditEntry>, StoreError>> + Send;
}

/// What a request with an idempotency key finds when it starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// First time: the request runs, and its answer is recorded with `finish`.
    New,
    /// The same request already ran: its answer, to send again.
    Done { status: u16, body: String },
    /// The same key is running right now in another request.
    Running,
    /// The key was used for a different request.
    Mismatch,
}

/// Answers of requests retried with the same `Idempotency-Key`, kept for a while.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request whose content hashes to `fingerprint`, until `expires_at`
    /// (Unix seconds; a record expired at `now` is free again); of two concurrent claims
    /// only one gets `New`.
    fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Replay, StoreError>> + Send;

    /// Records the answer of the request that claimed `key`.
    fn finish(
        &self,
        key: &str,
        status: u16,
        body: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives `key` up (the request failed in a way a retry may fix).
    fn abandon(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One reminder e-mail: what it is about (`subject`: a structure's FINESS, an OG's digest,
/// a territory's digest), for which occasion of which day, to which account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendKey {
    pub campaign: CampaignYear,
    pub subject: String,
    pub day: Date,
    pub occasion: String,
    /// An account id: the log never holds an address.
    pub recipient: String,
}

/// What claiming a send found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This run sends it, and settles it after.
    Claimed,
    /// It went out already.
    Sent,
    /// Another run is sending it, or stopped while sending it: it is not sent again (an
    /// e-mail that may have left is never repeated).
    Sending,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SendOutcome {
    Sending,
    Sent {
        message_id: String,
    },
    /// Refused or failed (throttling, a bad address): a later run may claim it again.
    Failed {
        reason: String,
    },
}

/// A send as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub key: SendKey,
    pub outcome: SendOutcome,
    /// Unix seconds of the last change.
    pub at: i64,
}

/// The reminders' send log: each (campaign, subject, day, occasion, recipient) goes out
/// once, whatever fails and whoever runs at the same time.
pub trait SendLog: Send + Sync {
    /// Claims a send: `Claimed` if nobody has, or if an earlier attempt failed.
    fn claim(
        &self,
        key: &SendKey,
        now: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records how a claimed send ended (`Sent` or `Failed`).
    fn settle(
        &self,
        key: &SendKey,
        outcome: &SendOutcome,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Everything recorded about a subject, oldest day first.
    fn sends(
        &self,
        campaign: CampaignYear,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<SendRecord>, StoreError>> + Send;
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

    /// The administrators of a region (ARS) or of a département (CD), by account id.
    fn administrators(
        &self,
        territory: crate::rights::Territory,
    ) -> impl Future<Output = Result<Vec<(Account, Role)>, StoreError>> + Send;

    fn put_token(&self, token: &TokenRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a token and returns it: of two concurrent callers only one gets it.
    fn take_token(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// The tokens of an account (read from an index: a token written a moment ago may be
    /// missing).
    fn tokens_of(
        &self,
        id: &AccountId,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    /// Removes every token of an account (logout everywhere, new password).
    fn revoke_tokens(&self, id: &AccountId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a new import job; `Duplicate("job")` if its id is taken.
    fn create_job(&self, job: &ImportJob) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn job(&self, id: &str) -> impl Future<Output = Result<Option<ImportJob>, StoreError>> + Send;

    /// Saves a job if the stored version is `job.version - 1` (`Conflict` otherwise).
    fn save_job(&self, job: &ImportJob) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the lock `name` for `owner` until `until` (Unix seconds), unless another owner
    /// holds it past `now`: `false` then. Taking a lock one already holds extends it.
    fn lock(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lock back if `owner` still holds it.
    fn unlock(
        &self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A message ready to send, already rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    /// The same message in HTML, its values escaped, when there is one.
    pub html: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Certainly not sent: the service answered with a refusal (a bad address, throttling),
    /// or the request never left.
    #[error("the mail service refused the message: {0}")]
    Rejected(String),
    /// Perhaps sent: no answer came back (a timeout, an unreadable response).
    #[error("the mail service failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends e-mail.
pub trait Mailer: Send + Sync {
    /// Sends one message; returns the provider's message id.
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, MailError>> + Send;

    /// How many messages a second the provider accepts from this account.
    fn max_send_rate(&self) -> impl Future<Output = Result<f64, MailError>> + Send;
}

/// Objects of the Parquet lake.
pub trait Lake: Send + Sync {
    fn put(&self, key: &str, bytes: Vec<u8>)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The size of an object in bytes, without reading it.
    fn size(&self, key: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// An address where whoever holds it may `PUT` the object `key` until it expires: the
    /// way a file larger than a request reaches the platform.
    fn upload_url(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}
