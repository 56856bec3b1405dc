//! The collect function (domain §7): a structure, or its OG for the items subsidiarity
//! gives it, reads and saves its campaign questionnaire. [`router`] builds the
//! `axum::Router` that Lambda runs, tests call and the local gateway serves; its handlers
//! call [`App`]'s methods, which work over the ports.
//!
//! Saves are partial and checked item by item; concurrent saves are reconciled per item
//! (docs/collect.md): a save is refused only when an item it changes was changed by
//! someone else since the version it was based on.

mod bulk;
mod config;
mod http;
mod opening;
mod prefill;

use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use tdb_api::views::{FillView, ViolationView, fill_view, violations_view};
use tdb_api::{ApiError, Caller, Campaigns, Structures, TokenVerifier};
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::{Activity, CampaignYear, Phase, QuestionnaireStatus};
use tdb_domain::ports::{
    AccountStore, AuditEntry, AuditLog, AuditedWrite, HeldRole, IdempotencyStore, ItemMeta, Origin,
    QuestionnaireStore, Replay, StoreError, StoredQuestionnaire,
};
use tdb_domain::questionnaire::{CampaignDefinitions, Definition};
use tdb_domain::rights::{Action, DataScope, Target};
use tdb_domain::workflow::Transition;
use tdb_domain::{Finess, RespondentKind};

pub use bulk::{BulkRow, BulkSummary};
pub use config::{Config, ConfigError};
pub use http::{OPENAPI_PATH, router};
pub use opening::{OPENING_LEASE, OpeningSummary, open_campaign};
pub use prefill::{PrefillRejection, PrefillSummary};

pub use tdb_api::{Clock, system_clock};

pub struct App<Q, A, S> {
    questionnaires: Q,
    audit: A,
    /// The accounts table: structures (kind, OG, principal) and the caller's current roles.
    structures: S,
    campaigns: Campaigns,
    verifier: TokenVerifier,
    clock: Clock,
    /// Structures read in the last minute: a referential import's changes reach a warm
    /// instance within that minute.
    recent: Structures,
}

impl<Q, A, S> tdb_api::HasVerifier for App<Q, A, S> {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// The most items one save may carry: a whole questionnaire.
pub const MAX_ITEMS_PER_SAVE: usize = 1000;

/// One item as a caller sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub id: String,
    pub section: String,
    pub label: String,
    pub help: Option<String>,
    /// `integer`, `decimal`, `money`, `percentage`, `date`, `yes_no`, `choice`,
    /// `multiple_choice` or `text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `[code, label]` pairs.
    pub choices: Vec<(String, String)>,
    pub required: bool,
    /// Computed from other items, never entered.
    pub computed: bool,
    /// Whether this caller may change it now.
    pub editable: bool,
    /// The answer (or `{"status": ...}`), or a computed item's value.
    #[schema(value_type = Option<Object>)]
    pub value: Option<Json>,
    #[schema(value_type = Option<String>)]
    pub origin: Option<Origin>,
    /// The value imported from the financial statements, when there is one: next to a
    /// structure's correction, the original stays visible.
    #[schema(value_type = Option<Object>)]
    pub prefilled: Option<Json>,
    /// Last campaign's answer, for the items compared year on year.
    #[schema(value_type = Option<Object>)]
    pub previous: Option<Json>,
}

/// A questionnaire as its reader sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuestionnaireView {
    pub campaign: u16,
    #[schema(value_type = String)]
    pub finess: Finess,
    /// `generic` or `sad`.
    pub platform: &'static str,
    /// `not_started`, `in_progress`, `validated`, `reopened`, `closed`.
    #[schema(value_type = String)]
    pub status: QuestionnaireStatus,
    /// The version a save must be based on.
    pub version: u64,
    /// Whether the caller may save anything now (phase, status and rights).
    pub writable: bool,
    /// The secondary FINESS this questionnaire covers.
    #[schema(value_type = Vec<String>)]
    pub covers: Vec<Finess>,
    pub fill: FillView,
    pub violations: Vec<ViolationView>,
    pub items: Vec<ItemView>,
}

/// A value of a save that was not kept, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedValue {
    pub item: String,
    pub reason: String,
}

/// What a save did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SaveResult {
    pub version: u64,
    /// Items whose value was written (unchanged values are not counted).
    pub saved: Vec<String>,
    /// Values refused, with the reason; the others of the same save are kept.
    pub rejected: Vec<RejectedValue>,
    pub fill: FillView,
    pub violations: Vec<ViolationView>,
}

/// The answer to a stale save: what the items it touched hold now. Other 409 answers
/// (outside collection, validated) have only `code` and `message`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaleSave {
    pub code: &'static str,
    pub message: String,
    /// The questionnaire's current version.
    pub version: Option<u64>,
    /// The current value (or null) of each item changed by someone else since the save's
    /// base version.
    #[schema(value_type = Option<Object>)]
    pub current: Option<Map<String, Json>>,
}

/// The body of a 409 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    pub error: StaleSave,
}

/// How a save failed.
pub enum SaveError {
    Api(ApiError),
    Stale(StaleSave),
}

impl From<ApiError> for SaveError {
    fn from(e: ApiError) -> Self {
        SaveError::Api(e)
    }
}

/// One audit entry as the trail shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    pub next: Option<String>,
}

fn type_name(kind: &tdb_domain::questionnaire::ItemType) -> &'static str {
    use tdb_domain::questionnaire::ItemType::*;
    match kind {
        Integer => "integer",
        Decimal { .. } => "decimal",
        Money { .. } => "money",
        Percentage { .. } => "percentage",
        Date => "date",
        YesNo => "yes_no",
        Choice => "choice",
        MultipleChoice => "multiple_choice",
        Text { .. } => "text",
    }
}

/// What a caller may enter on a questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    All,
    Subsidiarity,
    Nothing,
}

impl<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore> App<Q, A, S> {
    pub fn new(
        questionnaires: Q,
        audit: A,
        structures: S,
        campaigns: BTreeMap<CampaignYear, CampaignDefinitions>,
        verifier: TokenVerifier,
        clock: Clock,
    ) -> App<Q, A, S> {
        App {
            questionnaires,
            audit,
            structures,
            campaigns: Campaigns::new(campaigns),
            verifier,
            clock,
            recent: Structures::default(),
        }
    }

    /// Today in Paris: the campaign's deadlines are French days.
    fn today(&self) -> time::Date {
        tdb_domain::campaign::paris_day((self.clock)())
    }

    /// What the caller may enter on this structure's questionnaire, by rights only.
    fn entry(caller: &Caller, target: &Target) -> Entry {
        if caller
            .authorize(Action::EnterData(DataScope::All), target)
            .is_ok()
        {
            Entry::All
        } else if caller
            .authorize(Action::EnterData(DataScope::Subsidiarity), target)
            .is_ok()
        {
            Entry::Subsidiarity
        } else {
            Entry::Nothing
        }
    }

    /// Whether the phase and the status let anything be written now.
    /// Whether the campaign's phase lets answers be entered today: during collection and
    /// fiabilisation; after them, the campaign is closed.
    fn open_for_writing(&self, definition: &Definition) -> Result<(), ApiError> {
        let phase = definition.campaign().phase_on(self.today());
        if phase.allows(Activity::EnterData) {
            return Ok(());
        }
        Err(match phase {
            Phase::Preparation => ApiError::conflict(
                "outside_collection",
                "answers can be entered once collection opens",
            ),
            _ => ApiError::conflict(
                "campaign_closed",
                "collection and fiabilisation are over: answers no longer change",
            ),
        })
    }

    /// Refuses the first item the workflow keeps from being written: a validated or
    /// checked part, or subsidiarity items the OG validated.
    fn check_workflow<'v>(
        definition: &Definition,
        stored: &StoredQuestionnaire,
        items: impl IntoIterator<Item = &'v String>,
    ) -> Result<(), ApiError> {
        for id in items {
            if let Some(refusal) = stored.workflow.item_refusal(definition, id) {
                return Err(ApiError {
                    field: Some(id.clone()),
                    ..ApiError::conflict(refusal.code(), refusal.message())
                });
            }
        }
        Ok(())
    }

    async fn stored(
        &self,
        year: CampaignYear,
        finess: Finess,
    ) -> Result<StoredQuestionnaire, ApiError> {
        let stored = self
            .questionnaires
            .get(year, finess)
            .await
            .map_err(ApiError::from_store)?;
        stored.ok_or_else(tdb_api::not_opened)
    }

    pub(crate) async fn open(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
    ) -> Result<QuestionnaireView, ApiError> {
        let (year, definitions) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.structures, finess).await?;
        let target = Target::Structure(structure.target());
        caller.authorize(Action::Consult, &target)?;
        let definition = definitions.for_kind(structure.kind);
        let (stored, previous) =
            tdb_api::with_previous(&self.questionnaires, year, definition, &structure).await?;
        let entry = Self::entry(caller, &target);
        let writable = entry != Entry::Nothing
            && self.open_for_writing(definition).is_ok()
            && definition
                .parts_for(structure.kind)
                .any(|p| stored.workflow.write_refusal(&p.id, false).is_none());
        let covers = self.secondaries(&structure).await?;
        Ok(view(
            definition,
            &stored,
            entry,
            writable,
            covers,
            previous.as_ref(),
        ))
    }

    /// The secondaries of a principal, from its département's structures.
    async fn secondaries(&self, structure: &StructureRecord) -> Result<Vec<Finess>, ApiError> {
        if structure.kind == RespondentKind::Og {
            return Ok(vec![]);
        }
        Ok(self
            .structures
            .structures_of_departement(structure.departement())
            .await
            .map_err(ApiError::from_store)?
            .into_iter()
            .filter(|s| s.principal == Some(structure.finess))
            .map(|s| s.finess)
            .collect())
    }

    /// Saves `values` on a structure's questionnaire. `base_version` is the version the
    /// values were entered on (`None` for a bulk upload, which is authoritative).
    pub(crate) async fn save(
        &self,
        caller: Caller,
        year: u16,
        finess: &str,
        base_version: Option<u64>,
        values: Map<String, Json>,
        mode: SaveMode,
    ) -> Result<SaveResult, SaveError> {
        if values.len() > MAX_ITEMS_PER_SAVE {
            return Err(ApiError::invalid(
                "answers",
                format!("at most {MAX_ITEMS_PER_SAVE} items per save"),
            )
            .into());
        }
        let (year, definitions) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.structures, finess).await?;
        let target = Target::Structure(structure.target());
        caller.authorize(Action::Consult, &target)?;
        let definition = definitions.for_kind(structure.kind);
        let entry = Self::entry(&caller, &target);
        // The role the save is made under: the write happens only if the account still
        // holds it (checked in the write's own transaction, no separate read).
        let granting = caller.granting(
            Action::EnterData(match entry {
                Entry::All => DataScope::All,
                _ => DataScope::Subsidiarity,
            }),
            &target,
        )?;
        let held = HeldRole {
            account: &caller.account,
            role: granting,
        };
        let own = caller
            .roles
            .iter()
            .any(|r| tdb_domain::accounts::role_structure(r) == Some(structure.finess));
        let origin = if mode.bulk {
            Origin::Import
        } else if own {
            Origin::Structure
        } else {
            Origin::Og
        };
        // Rights item by item, before anything is read or written.
        for id in values.keys() {
            if let Some(item) = definition.item(id)
                && entry == Entry::Subsidiarity
                && !item.subsidiarity
            {
                return Err(ApiError {
                    field: Some(id.clone()),
                    ..ApiError::new(
                        403,
                        "not_subsidiarity",
                        "an OG enters only the items subsidiarity gives it (staff, information systems, finance)",
                    )
                }
                .into());
            }
        }
        let (first, previous) =
            tdb_api::with_previous(&self.questionnaires, year, definition, &structure).await?;
        let mut first = Some(first);
        for _ in 0..5 {
            // The first read came with last campaign's answers; a retry reads again.
            let stored = match first.take() {
                Some(stored) => stored,
                None => self.stored(year, structure.finess).await?,
            };
            self.open_for_writing(definition)?;
            Self::check_workflow(definition, &stored, values.keys())?;
            if base_version.is_some_and(|b| b > stored.version) {
                return Err(ApiError::invalid(
                    "base_version",
                    format!("the questionnaire is at version {}", stored.version),
                )
                .into());
            }
            // Items changed by someone else since the save's base version.
            let stale: Map<String, Json> = values
                .keys()
                .filter(|id| {
                    stored.items.get(*id).is_some_and(|meta| {
                        base_version.is_some_and(|b| meta.version > b)
                            && meta.by.as_deref() != Some(caller.account.as_str())
                    })
                })
                .map(|id| {
                    (
                        id.clone(),
                        stored.answers.get(id).cloned().unwrap_or(Json::Null),
                    )
                })
                .collect();
            if !stale.is_empty() {
                return Err(SaveError::Stale(StaleSave {
                    code: "stale_version",
                    message: format!(
                        "{} item(s) changed since version {}: reread them and save again",
                        stale.len(),
                        base_version.unwrap_or_default()
                    ),
                    version: Some(stored.version),
                    current: Some(stale),
                }));
            }
            // The questionnaire's own kind: the one its answers were checked against.
            let kind = stored.respondent.kind;
            if kind != structure.kind {
                return Err(ApiError::conflict(
                    "category_changed",
                    "the structure's category changed in the referential since the campaign opened; contact the national administrator",
                )
                .into());
            }
            let mut answers = definition.carry_over(kind, &stored.answers);
            let mut rejected = Vec::new();
            let mut accepted = Vec::new();
            for (id, value) in &values {
                match definition.set_answer(&mut answers, kind, id, value) {
                    Err(e) => rejected.push(RejectedValue {
                        item: id.clone(),
                        reason: e.reason.to_string(),
                    }),
                    Ok(()) => accepted.push(id),
                }
            }
            // Only the saved items change in what is stored: nothing else is rewritten.
            let normalised = definition.answers_to_json(&answers);
            let mut changes = Map::new();
            let mut stored_answers = stored.answers.clone();
            for id in accepted {
                let old = stored.answers.get(id).cloned().unwrap_or(Json::Null);
                let new = normalised.get(id).cloned().unwrap_or(Json::Null);
                if old != new {
                    match &new {
                        Json::Null => stored_answers.remove(id),
                        value => stored_answers.insert(id.clone(), value.clone()),
                    };
                    changes.insert(id.clone(), serde_json::json!({ "old": old, "new": new }));
                }
            }
            let evaluation = definition.evaluate(kind, &answers, previous.as_ref());
            // A bulk row is saved whole or not at all; a dry run only reports.
            if changes.is_empty() || (mode.whole && !rejected.is_empty()) || mode.dry_run {
                let would_write = mode.dry_run && (!mode.whole || rejected.is_empty());
                let saved = if would_write {
                    changes.keys().cloned().collect()
                } else {
                    vec![]
                };
                return Ok(SaveResult {
                    version: stored.version,
                    saved,
                    rejected,
                    fill: fill_view(&evaluation.fill),
                    violations: violations_view(&evaluation.violations),
                });
            }
            let version = stored.version + 1;
            let mut items = stored.items.clone();
            for id in changes.keys() {
                items.insert(
                    id.clone(),
                    ItemMeta {
                        version,
                        origin,
                        by: Some(caller.account.to_string()),
                    },
                );
            }
            let mut next = StoredQuestionnaire {
                answers: stored_answers,
                items,
                version,
                updated_at: (self.clock)(),
                ..stored.clone()
            };
            // Each part a change falls in is in progress (a reopened one stays reopened).
            for id in changes.keys() {
                if let Some(item) = definition.item(id) {
                    next.workflow
                        .apply(&definition.part_of(item).id, Transition::Save)
                        .map_err(|e| {
                            ApiError::conflict("questionnaire_validated", e.to_string())
                        })?;
                }
            }
            next.workflow
                .forget_acknowledgements(definition, changes.keys().map(String::as_str));
            next.record(definition, &evaluation);
            let saved: Vec<String> = changes.keys().cloned().collect();
            let entry = AuditEntry {
                at: (self.clock)() * 1000,
                actor: caller.account.to_string(),
                action: "save".into(),
                detail: serde_json::json!({ "version": version, "origin": origin, "changes": changes }),
            };
            // The answers and their trail line in one transaction.
            let write = AuditedWrite {
                before: &stored,
                after: &next,
                entry: &entry,
                held: Some(held),
            };
            match self.questionnaires.put_audited(write).await {
                Ok(()) => {}
                // Someone saved meanwhile: read again and check the items again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e).into()),
            }
            tracing::info!(finess = %structure.finess, version, saved = saved.len(), rejected = rejected.len(), "questionnaire saved");
            return Ok(SaveResult {
                version,
                saved,
                rejected,
                fill: fill_view(&evaluation.fill),
                violations: violations_view(&evaluation.violations),
            });
        }
        Err(ApiError::conflict(
            "concurrent_change",
            "the questionnaire kept changing during the save; try again",
        )
        .into())
    }

    /// A save, answered once per `Idempotency-Key`: a client resending it (a mobile on a
    /// bad connection) gets the first answer again and no second effect. Keys are the
    /// caller's own and last a day. The answer: status, JSON body, and whether it is a
    /// replay.
    pub(crate) async fn save_once(
        &self,
        caller: Caller,
        year: u16,
        finess: &str,
        key: Option<&str>,
        body: SaveRequest,
    ) -> (u16, String, bool) {
        let Some(key) = key else {
            let (status, body) = answer(
                self.save(
                    caller,
                    year,
                    finess,
                    Some(body.base_version),
                    body.answers,
                    SaveMode::default(),
                )
                .await,
            );
            return (status, body, false);
        };
        if key.is_empty()
            || key.len() > 128
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return error_answer(ApiError::invalid(
                "Idempotency-Key",
                "1 to 128 letters, digits, '-', '_', '.' or ':'",
            ));
        }
        let scoped = format!("{}#{year}#{finess}#{key}", caller.account);
        let fingerprint = fingerprint(&body);
        let now = (self.clock)();
        match self
            .questionnaires
            .begin(&scoped, &fingerprint, now, now + IDEMPOTENCY_TTL)
            .await
        {
            Err(e) => error_answer(ApiError::from_store(e)),
            Ok(Replay::Done { status, body }) => (status, body, true),
            Ok(Replay::Running) => error_answer(ApiError::conflict(
                "request_in_progress",
                "a request with this Idempotency-Key is still running; retry in a moment",
            )),
            Ok(Replay::Mismatch) => error_answer(ApiError {
                field: Some("Idempotency-Key".into()),
                ..ApiError::new(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                )
            }),
            Ok(Replay::New) => {
                let (status, answer) = answer(
                    self.save(
                        caller,
                        year,
                        finess,
                        Some(body.base_version),
                        body.answers,
                        SaveMode::default(),
                    )
                    .await,
                );
                // Only final answers are kept: a 5xx or a "try again" frees the key.
                let retryable = status >= 500 || answer.contains("\"concurrent_change\"");
                let kept = if retryable {
                    // A retry may succeed: the key is free again.
                    self.questionnaires.abandon(&scoped).await
                } else {
                    self.questionnaires.finish(&scoped, status, &answer).await
                };
                if let Err(e) = kept {
                    tracing::error!(error = %e, "idempotent answer not recorded");
                }
                (status, answer, false)
            }
        }
    }

    pub(crate) async fn trail(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
        page: Option<&str>,
    ) -> Result<AuditPage, ApiError> {
        const PAGE: u32 = 50;
        let (year, _) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.structures, finess).await?;
        caller.authorize(Action::Consult, &Target::Structure(structure.target()))?;
        let page = self
            .audit
            .list(year, structure.finess, page.map(str::to_string), PAGE)
            .await
            .map_err(ApiError::from_store)?;
        Ok(AuditPage {
            entries: page.items,
            next: page.next,
        })
    }

    /// Creates the "not started" questionnaire of every respondent of the referential that
    /// has none: principal ESMS in scope on their platform, and OG. Running it again
    /// creates nothing.
    pub(crate) async fn open_campaign(
        &self,
        caller: &Caller,
        year: u16,
    ) -> Result<OpeningSummary, ApiError> {
        let caller = caller.clone().current(&self.structures).await?;
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let (year, _) = self.campaigns.year(year)?;
        let summary = opening::open_campaign(
            &self.questionnaires,
            &self.structures,
            year,
            (self.clock)(),
            &caller.account.to_string(),
        )
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| {
            ApiError::conflict(
                "opening_running",
                "this campaign is being opened; try again when it is done",
            )
        })?;
        tracing::info!(campaign = %year, created = summary.created, already_open = summary.already_open, "campaign opened");
        Ok(summary)
    }
}

/// How a save is made.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SaveMode {
    /// Any refused value refuses the whole save (a bulk row).
    pub whole: bool,
    /// Check and report, write nothing.
    pub dry_run: bool,
    /// An upload: the values' origin is `import`.
    pub bulk: bool,
}

/// How long an idempotent answer is kept, in seconds.
const IDEMPOTENCY_TTL: i64 = 24 * 3600;

/// A partial save: any number of items, based on the version the client read.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    /// The questionnaire version the values were entered on.
    pub base_version: u64,
    /// `{item id: value}`; `null` clears an answer, `{"status": "not_applicable"}` or
    /// `{"status": "unknown"}` say so.
    #[schema(value_type = Object)]
    pub answers: Map<String, Json>,
}

/// What identifies a request's content: its version and values, canonically ordered.
fn fingerprint(body: &SaveRequest) -> String {
    use base64::Engine;
    use sha2::Digest;
    let canonical =
        serde_json::json!({ "base_version": body.base_version, "answers": body.answers });
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

fn error_answer(e: ApiError) -> (u16, String, bool) {
    let status = e.status;
    // Codes and statuses only in the log, as for every refusal.
    tracing::info!(status, code = e.code, "refused");
    let body = serde_json::to_string(&tdb_api::ErrorBody { error: e }).unwrap_or_default();
    (status, body, false)
}

/// A save's outcome as the status and JSON body sent.
fn answer(outcome: Result<SaveResult, SaveError>) -> (u16, String) {
    fn to_json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }
    match outcome {
        Ok(result) => (200, to_json(&result)),
        Err(SaveError::Stale(stale)) => (409, to_json(&Refusal { error: stale })),
        Err(SaveError::Api(e)) => {
            let (status, body, _) = error_answer(e);
            (status, body)
        }
    }
}

fn view(
    definition: &Definition,
    stored: &StoredQuestionnaire,
    entry: Entry,
    writable: bool,
    covers: Vec<Finess>,
    previous: Option<&tdb_domain::questionnaire::AnswerSet>,
) -> QuestionnaireView {
    let kind = stored.respondent.kind;
    let answers = definition.carry_over(kind, &stored.answers);
    let evaluation = definition.evaluate(kind, &answers, previous);
    // Last year's value of each item the year-on-year rules compare.
    let last_year = previous
        .map(|p| definition.answers_to_json(p))
        .unwrap_or_default();
    let compared: std::collections::HashSet<&str> = definition
        .rules()
        .iter()
        .filter_map(|r| r.id.strip_prefix("evolution_"))
        .collect();
    let items = definition
        .items()
        .iter()
        .enumerate()
        .filter(|(_, item)| item.mask & kind.bit() != 0)
        .map(|(i, item)| {
            let value = if item.computed {
                definition
                    .computed_value(i, kind, &answers)
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
            } else {
                stored.answers.get(&item.id).cloned()
            };
            let may = match entry {
                Entry::All => true,
                Entry::Subsidiarity => item.subsidiarity,
                Entry::Nothing => false,
            };
            ItemView {
                id: item.id.clone(),
                section: definition.sections()[item.section as usize].id.clone(),
                label: item.label.clone(),
                help: item.help.clone(),
                kind: type_name(&item.kind),
                unit: item.unit.clone(),
                min: item.min,
                max: item.max,
                choices: item
                    .choices
                    .iter()
                    .map(|c| (c.code.clone(), c.label.clone()))
                    .collect(),
                required: item.required,
                computed: item.computed,
                editable: writable && may && !item.computed,
                value,
                origin: stored.items.get(&item.id).map(|m| m.origin),
                prefilled: stored.prefilled.get(&item.id).cloned(),
                previous: if !compared.contains(item.id.as_str()) {
                    None
                } else if item.computed {
                    previous
                        .and_then(|p| definition.computed_value(i, kind, p))
                        .and_then(serde_json::Number::from_f64)
                        .map(Json::Number)
                } else {
                    last_year.get(&item.id).cloned()
                },
            }
        })
        .collect();
    QuestionnaireView {
        campaign: stored.campaign.value(),
        finess: stored.respondent.finess,
        platform: definition.platform().key(),
        status: stored.status,
        version: stored.version,
        writable,
        covers,
        fill: fill_view(&evaluation.fill),
        violations: violations_view(&evaluation.violations),
        items,
    }
}

/// The stored size of the largest questionnaire a respondent of `kind` can have: every
/// item answered with its longest value, every financial item prefilled too, with the item
/// metadata. What bounds it: a definition's items are finite and known, and every value is
/// bounded by its type (a text by its `max_length`, a multiple choice by its 64 codes).
pub fn largest_stored_size(definition: &Definition, kind: RespondentKind) -> usize {
    use tdb_domain::questionnaire::ItemType;
    let mut answers = Map::new();
    let mut prefilled = Map::new();
    let mut items = BTreeMap::new();
    for item in definition.items_for(kind).filter(|i| !i.computed) {
        let value = match &item.kind {
            ItemType::Text { max_length } => Json::String("é".repeat(*max_length as usize)),
            ItemType::MultipleChoice => Json::Array(
                item.choices
                    .iter()
                    .map(|c| Json::String(c.code.clone()))
                    .collect(),
            ),
            ItemType::Choice => Json::String(
                item.choices
                    .iter()
                    .map(|c| c.code.clone())
                    .max_by_key(String::len)
                    .unwrap_or_default(),
            ),
            ItemType::Date => Json::String("2024-12-31".into()),
            ItemType::YesNo => Json::Bool(false),
            _ => serde_json::json!(-123_456_789_012.34),
        };
        if item.financial {
            prefilled.insert(item.id.clone(), value.clone());
        }
        answers.insert(item.id.clone(), value);
        items.insert(
            item.id.clone(),
            ItemMeta {
                version: u64::MAX,
                origin: Origin::Prefill,
                by: Some("f".repeat(32)),
            },
        );
    }
    // The workflow at its largest: every part with every record (a reason at its longest),
    // every rule acknowledged with a comment at its longest, the OG's validation.
    use tdb_domain::workflow::{
        Acknowledgement, PartState, Reopening, Stamp, ValidationRecord, Workflow,
    };
    let longest = "é".repeat(1000);
    let stamp = Stamp {
        by: "f".repeat(32),
        at: i64::MAX,
    };
    let workflow = Workflow {
        parts: definition
            .parts_for(kind)
            .map(|p| {
                let state = PartState {
                    status: QuestionnaireStatus::Reopened,
                    validation: Some(ValidationRecord {
                        by: stamp.by.clone(),
                        at: i64::MAX,
                        fill_rate: 0.123_456_789,
                        on_time: false,
                    }),
                    reopening: Some(Reopening {
                        by: stamp.by.clone(),
                        at: i64::MAX,
                        reason: longest.clone(),
                    }),
                    check: Some(stamp.clone()),
                };
                (p.id.clone(), state)
            })
            .collect(),
        acknowledgements: definition
            .rules()
            .iter()
            .filter(|r| r.severity == tdb_domain::questionnaire::Severity::Warning)
            .map(|r| {
                let ack = Acknowledgement {
                    comment: longest.clone(),
                    by: stamp.by.clone(),
                    at: i64::MAX,
                };
                (r.id.clone(), ack)
            })
            .collect(),
        subsidiarity: Some(stamp),
    };
    // The answers, metadata, prefill and workflow as stored (four JSON strings), plus the
    // keys and scalar attributes of the item, generously.
    fn len<T: Serialize>(value: &T) -> usize {
        serde_json::to_string(value).map_or(0, |s| s.len())
    }
    len(&answers) + len(&items) + len(&prefilled) + len(&workflow) + 512
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdb_domain::Category;

    #[test]
    fn the_largest_questionnaire_stays_far_below_dynamodbs_item_limit() {
        let definitions = tdb_domain::questionnaire::builtin::load(2025)
            .unwrap()
            .unwrap();
        let kinds = Category::ALL
            .iter()
            .map(|c| RespondentKind::Esms(*c))
            .chain([RespondentKind::Og]);
        let largest = kinds
            .map(|k| largest_stored_size(definitions.for_kind(k), k))
            .max()
            .unwrap();
        // DynamoDB refuses items over 400 KB; a quarter of it leaves room for years of
        // new questions.
        assert!(
            largest < 200_000,
            "{largest} bytes: under half DynamoDB's 400 KB"
        );
        println!("largest stored questionnaire: {largest} bytes");
        assert!(
            largest > 5_000,
            "{largest} bytes: the estimate counts every item"
        );
    }
}
