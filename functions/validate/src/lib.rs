//! The validate function (domain §3 and §8, docs/validate.md): the checks of a
//! questionnaire, the validation workflow of `tdb_domain::workflow` (validation by the
//! structure and by its OG, acknowledgements, reopening and checking by the ARS and the CD),
//! the closure of a platform's campaign, and progress for the OG, the territories and the
//! country. [`router`] builds the `axum::Router` that Lambda runs, tests call and the local
//! gateway serves.

mod config;
mod http;
mod mail;
mod progress;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tdb_api::views::{FillView, ViolationView, fill_view, violations_view};
use tdb_api::{ApiError, Caller, Campaigns, Structures, TokenVerifier, TtlCache};
use tdb_domain::accounts::{StructureRecord, role_structure};
use tdb_domain::campaign::{Activity, CampaignYear, Phase, Platform, QuestionnaireStatus};
use tdb_domain::outliers::{Outlier, PeerReference};
use tdb_domain::ports::{
    AccountStore, AuditEntry, AuditedWrite, HeldRole, Lake, Mailer, QuestionnaireStore, StoreError,
    StoredQuestionnaire,
};
use tdb_domain::progress::Counts;
use tdb_domain::questionnaire::{AnswerSet, CampaignDefinitions, Definition, Evaluation};
use tdb_domain::rights::{Action, DataScope, Role, Target};
use tdb_domain::workflow::{
    Acknowledgement, Closure, Obstacle, PartState, Reopening, Stamp, Transition, ValidationRecord,
    obstacles, subsidiarity_obstacles,
};
use tdb_domain::{Finess, RespondentKind};

pub use config::{Config, ConfigError};
pub use http::{OPENAPI_PATH, router};
pub use progress::{OgProgress, ProgressRow, StructureLine, TerritoryProgress};

pub use tdb_api::{Clock, system_clock};

/// Where the peer statistics of campaign `year` are kept in the lake.
pub fn peers_key(year: u16) -> String {
    format!("reference/peers/{year}.json")
}

/// Where a platform's closure is announced to the restitute function.
pub fn closure_event_key(year: CampaignYear, platform: Platform) -> String {
    format!("events/closure/{year}-{}.json", platform.key())
}

pub struct App<Q, S, M, L> {
    questionnaires: Q,
    /// Structures (kind, OG, territory), members to notify, roles.
    accounts: S,
    mailer: M,
    lake: L,
    campaigns: Campaigns,
    verifier: TokenVerifier,
    clock: Clock,
    recent: Structures,
    /// The previous campaign's peer statistics, by campaign, re-read every ten minutes.
    peers: TtlCache<u16, Option<Arc<PeerReference>>>,
}

impl<Q, S, M, L> tdb_api::HasVerifier for App<Q, S, M, L> {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// A change asked of a questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The structure's Gestionnaire validates a part.
    Validate,
    /// The structure withdraws its validation of a part (before the ARS checks it).
    Unvalidate,
    /// The ARS or the CD reopens a validated part, with a reason; the structure is told.
    Reopen,
    /// The ARS or the CD marks a validated part as checked.
    Check,
    /// The OG validates the subsidiarity items it entered for one of its ESMS.
    ValidateSubsidiarity,
    /// The OG withdraws that validation.
    WithdrawSubsidiarity,
}

/// `POST /validation/{campaign}/{finess}/transitions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub step: Step,
    /// The part (`generique`; `soins` or `aide` on the SAD platform); optional when the
    /// platform has one part.
    pub part: Option<String>,
    /// Why the part is reopened (required to reopen), 3 to 1,000 characters.
    pub reason: Option<String>,
}

/// `POST /validation/{campaign}/{finess}/acknowledgements`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgementRequest {
    /// A warning rule of the questionnaire.
    pub rule: String,
    /// Why the value is right after all (shown to the ARS), 3 to 1,000 characters.
    pub comment: String,
}

/// One part as the checks show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartCheck {
    pub id: String,
    pub label: String,
    #[schema(value_type = String)]
    pub status: QuestionnaireStatus,
    pub fill_rate: f64,
    pub threshold: f64,
    /// ISO date.
    pub deadline: String,
    /// What stands between the part and its validation (empty: it may be validated).
    #[schema(value_type = Vec<Object>)]
    pub obstacles: Vec<Obstacle>,
    #[schema(value_type = Option<Object>)]
    pub validation: Option<ValidationRecord>,
    #[schema(value_type = Option<Object>)]
    pub reopening: Option<Reopening>,
    #[schema(value_type = Option<Object>)]
    pub check: Option<Stamp>,
}

/// A failing rule with its acknowledgement, if it is a warning the structure commented.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleCheck {
    #[serde(flatten)]
    pub violation: ViolationView,
    #[schema(value_type = Option<Object>)]
    pub acknowledgement: Option<Acknowledgement>,
}

/// The checks of one questionnaire, at any time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub campaign: u16,
    #[schema(value_type = String)]
    pub finess: Finess,
    /// `generic` or `sad`.
    pub platform: &'static str,
    /// `closed` once the platform's campaign is closed; the state before is `final_status`.
    #[schema(value_type = String)]
    pub status: QuestionnaireStatus,
    #[schema(value_type = Option<String>)]
    pub final_status: Option<QuestionnaireStatus>,
    pub version: u64,
    pub fill: FillView,
    pub rules: Vec<RuleCheck>,
    /// Values far from the peers of the same category in the previous campaign (robust
    /// z-score; docs/outliers.md), largest first.
    #[schema(value_type = Vec<Object>)]
    pub outliers: Vec<Outlier>,
    pub parts: Vec<PartCheck>,
    /// For an ESMS managed by an OG: the OG's validation of its subsidiarity items, and
    /// what stands in its way.
    pub subsidiarity: Option<SubsidiarityCheck>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubsidiarityCheck {
    #[schema(value_type = Option<Object>)]
    pub validated: Option<Stamp>,
    #[schema(value_type = Vec<Object>)]
    pub obstacles: Vec<Obstacle>,
}

/// The answer to a step: the checks after it, and for a reopening how many people were
/// told.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepResult {
    pub checks: Checks,
    /// Reopening: the e-mails sent to the structure's APE and Gestionnaires, and those that
    /// failed; `not_notified` is null when the recipients could not be read. The reopening
    /// stands either way: tell the structure another way.
    pub notified: Option<usize>,
    pub not_notified: Option<usize>,
}

/// A refusal that lists what stands in the way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Blocked {
    pub error: BlockedError,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockedError {
    pub code: &'static str,
    pub message: String,
    /// What stands in the way, for `cannot_validate` (absent for the other refusals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub obstacles: Vec<Obstacle>,
}

/// How a step failed.
pub enum StepError {
    Api(ApiError),
    Blocked(Vec<Obstacle>),
}

impl From<ApiError> for StepError {
    fn from(e: ApiError) -> Self {
        StepError::Api(e)
    }
}

/// What closing a platform's campaign did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClosureSummary {
    /// `generic` or `sad`.
    pub platform: &'static str,
    /// Closed by an earlier request: this is its record.
    pub already_closed: bool,
    pub closed_at: i64,
    /// The final states, by status.
    #[schema(value_type = Object)]
    pub counts: Counts,
}

/// `POST /validation/{campaign}/closure`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosureRequest {
    /// `generic` or `sad`.
    pub platform: String,
}

/// The text of a reason or a comment: trimmed, 3 to 1,000 characters, no control
/// characters but line breaks.
fn text(field: &'static str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let length = value.chars().count();
    if !(3..=1000).contains(&length) {
        return Err(ApiError::invalid(field, "3 to 1,000 characters"));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(value.to_string())
}

/// What a questionnaire read gives: the stored state, last campaign's answers, the
/// evaluation's inputs.
struct Read {
    structure: StructureRecord,
    stored: StoredQuestionnaire,
    previous: Option<AnswerSet>,
}

impl<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake> App<Q, S, M, L> {
    pub fn new(
        questionnaires: Q,
        accounts: S,
        mailer: M,
        lake: L,
        campaigns: BTreeMap<CampaignYear, CampaignDefinitions>,
        verifier: TokenVerifier,
        clock: Clock,
    ) -> App<Q, S, M, L> {
        App {
            questionnaires,
            accounts,
            mailer,
            lake,
            campaigns: Campaigns::new(campaigns),
            verifier,
            clock,
            recent: Structures::default(),
            peers: TtlCache::new(std::time::Duration::from_secs(600), 16),
        }
    }

    fn today(&self) -> time::Date {
        tdb_domain::campaign::paris_day((self.clock)())
    }

    async fn read(
        &self,
        year: CampaignYear,
        definition: &Definition,
        structure: &StructureRecord,
    ) -> Result<Read, ApiError> {
        let (stored, previous) =
            tdb_api::with_previous(&self.questionnaires, year, definition, structure).await?;
        Ok(Read {
            structure: structure.clone(),
            stored,
            previous,
        })
    }

    /// The previous campaign's peer statistics, if `tdb peers` computed them.
    async fn peer_reference(&self, year: CampaignYear) -> Option<Arc<PeerReference>> {
        let last = year.value() - 1;
        if let Some(cached) = self.peers.get(&last) {
            return cached;
        }
        let reference = match self.lake.get(&peers_key(last)).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<PeerReference>(&bytes) {
                Ok(reference) => Some(Arc::new(reference)),
                Err(_) => {
                    tracing::error!(campaign = last, "peer statistics could not be read");
                    None
                }
            },
            Ok(None) => None,
            // Checks work without outliers: the lake being down is logged, not fatal.
            Err(e) => {
                tracing::error!(error = %e, "peer statistics unavailable");
                return None;
            }
        };
        self.peers.insert(last, reference.clone());
        reference
    }

    /// The part a step is about: the one named, among those asked of this respondent, or
    /// the only one.
    fn part<'d>(
        definition: &'d Definition,
        kind: RespondentKind,
        part: Option<&str>,
    ) -> Result<&'d str, ApiError> {
        let parts: Vec<&str> = definition.parts_for(kind).map(|p| p.id.as_str()).collect();
        match (part, parts.as_slice()) {
            (Some(id), _) => {
                parts.iter().copied().find(|p| *p == id).ok_or_else(|| {
                    ApiError::invalid("part", format!("one of {}", parts.join(", ")))
                })
            }
            (None, [only]) => Ok(only),
            (None, _) => Err(ApiError::invalid(
                "part",
                format!(
                    "this questionnaire has parts {}: say which",
                    parts.join(", ")
                ),
            )),
        }
    }

    fn checks_of(
        &self,
        definition: &Definition,
        read: &Read,
        evaluation: &Evaluation<'_>,
        outliers: Vec<Outlier>,
        closed: bool,
    ) -> Checks {
        let stored = &read.stored;
        let workflow = &stored.workflow;
        let parts = definition
            .parts_for(read.structure.kind)
            .map(|p| {
                let state: Option<&PartState> = workflow.parts.get(&p.id);
                let status = workflow.part_status(&p.id);
                let fill_rate = evaluation
                    .fill
                    .parts
                    .iter()
                    .find(|f| f.part == p.id)
                    .map_or(0.0, |f| f.rate.ratio());
                PartCheck {
                    id: p.id.clone(),
                    label: p.label.clone(),
                    status: if closed {
                        QuestionnaireStatus::Closed
                    } else {
                        status
                    },
                    fill_rate,
                    threshold: p.fill_threshold,
                    deadline: p.deadline.to_string(),
                    obstacles: match status {
                        QuestionnaireStatus::Validated | QuestionnaireStatus::Checked => vec![],
                        _ => obstacles(definition, evaluation, workflow, &p.id),
                    },
                    validation: state.and_then(|s| s.validation.clone()),
                    reopening: state.and_then(|s| s.reopening.clone()),
                    check: state.and_then(|s| s.check.clone()),
                }
            })
            .collect();
        let rules = violations_view(&evaluation.violations)
            .into_iter()
            .map(|violation| RuleCheck {
                acknowledgement: workflow.acknowledgements.get(&violation.rule).cloned(),
                violation,
            })
            .collect();
        let subsidiarity = (stored.og.is_some()
            && matches!(read.structure.kind, RespondentKind::Esms(_)))
        .then(|| SubsidiarityCheck {
            validated: workflow.subsidiarity.clone(),
            obstacles: subsidiarity_obstacles(definition, evaluation),
        });
        Checks {
            campaign: stored.campaign.value(),
            finess: stored.respondent.finess,
            platform: definition.platform().key(),
            status: if closed {
                QuestionnaireStatus::Closed
            } else {
                stored.status
            },
            final_status: closed.then_some(stored.status),
            version: stored.version,
            fill: fill_view(&evaluation.fill),
            rules,
            outliers,
            parts,
            subsidiarity,
        }
    }

    /// The checks of one questionnaire: fill rates, failing rules with their
    /// acknowledgements, outliers, and each part's state and obstacles.
    pub(crate) async fn checks(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
    ) -> Result<Checks, ApiError> {
        let (year, definitions) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.accounts, finess).await?;
        caller.authorize(Action::Consult, &Target::Structure(structure.target()))?;
        let definition = definitions.for_kind(structure.kind);
        let read = self.read(year, definition, &structure).await?;
        self.checks_after(year, definition, &read).await
    }

    async fn checks_after(
        &self,
        year: CampaignYear,
        definition: &Definition,
        read: &Read,
    ) -> Result<Checks, ApiError> {
        let kind = read.stored.respondent.kind;
        let answers = definition.carry_over(kind, &read.stored.answers);
        let evaluation = definition.evaluate(kind, &answers, read.previous.as_ref());
        let outliers = match self.peer_reference(year).await {
            Some(reference) => reference.outliers(kind, &read.stored.answers),
            None => vec![],
        };
        let closed = self
            .questionnaires
            .closure(year, definition.platform())
            .await
            .map_err(ApiError::from_store)?
            .is_some();
        Ok(self.checks_of(definition, read, &evaluation, outliers, closed))
    }

    fn phase_allows(&self, definition: &Definition, activity: Activity) -> Result<(), ApiError> {
        let phase = definition.campaign().phase_on(self.today());
        if phase.allows(activity) {
            return Ok(());
        }
        Err(match phase {
            Phase::Preparation => ApiError::conflict(
                "outside_collection",
                "the campaign's collection has not opened yet",
            ),
            Phase::Collection => ApiError::conflict(
                "outside_fiabilisation",
                "reopening is for the fiabilisation phase, after the collection deadline",
            ),
            _ => ApiError::conflict(
                "campaign_closed",
                "collection and fiabilisation are over: nothing changes any more",
            ),
        })
    }

    /// The role a step is made under (the write checks it is still held).
    fn role_for<'c>(
        caller: &'c Caller,
        step: Step,
        structure: &StructureRecord,
    ) -> Result<&'c Role, ApiError> {
        let target = Target::Structure(structure.target());
        match step {
            Step::Validate | Step::Unvalidate => {
                caller.granting(Action::Validate(DataScope::All), &target)
            }
            Step::Reopen => caller.granting(Action::Reopen, &target),
            Step::Check => caller.granting(Action::Check, &target),
            Step::ValidateSubsidiarity | Step::WithdrawSubsidiarity => {
                // The OG's own validation: a role on the ESMS itself does not give it.
                let og = structure.og.ok_or_else(|| {
                    ApiError::conflict(
                        "no_og",
                        "this structure has no OG: there is no subsidiarity to validate",
                    )
                })?;
                caller.authorize(Action::Validate(DataScope::Subsidiarity), &target)?;
                caller
                    .roles
                    .iter()
                    .find(|r| {
                        role_structure(r) == Some(og)
                            && tdb_domain::rights::authorize(
                                r,
                                Action::Validate(DataScope::Subsidiarity),
                                &target,
                            )
                            .is_ok()
                    })
                    .ok_or_else(|| {
                        ApiError::forbidden(tdb_domain::rights::Denied::ActionNotAllowed)
                    })
            }
        }
    }

    /// Takes one step of the workflow on a questionnaire, atomically with its trail line
    /// and the progress counters, again on a fresh read if someone wrote meanwhile.
    pub(crate) async fn step(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
        request: StepRequest,
    ) -> Result<StepResult, StepError> {
        let (year, definitions) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.accounts, finess).await?;
        caller.authorize(Action::Consult, &Target::Structure(structure.target()))?;
        let definition = definitions.for_kind(structure.kind);
        let role = Self::role_for(caller, request.step, &structure)?;
        let subsidiarity_step = matches!(
            request.step,
            Step::ValidateSubsidiarity | Step::WithdrawSubsidiarity
        );
        let part = if subsidiarity_step {
            None
        } else {
            Some(Self::part(
                definition,
                structure.kind,
                request.part.as_deref(),
            )?)
        };
        let reason = match (request.step, request.reason.as_deref()) {
            (Step::Reopen, Some(reason)) => Some(text("reason", reason)?),
            (Step::Reopen, None) => {
                return Err(ApiError::invalid("reason", "a reopening says why").into());
            }
            _ => None,
        };
        // Reopening and checking are fiabilisation's (a part checked in May could not be
        // corrected before July); the structure's own steps are allowed from collection on.
        self.phase_allows(
            definition,
            if matches!(request.step, Step::Reopen | Step::Check) {
                Activity::Reopen
            } else {
                Activity::Validate
            },
        )?;
        let now = (self.clock)();
        let stamp = Stamp {
            by: caller.account.to_string(),
            at: now,
        };
        for _ in 0..5 {
            let read = self.read(year, definition, &structure).await?;
            let kind = read.stored.respondent.kind;
            let answers = definition.carry_over(kind, &read.stored.answers);
            let evaluation = definition.evaluate(kind, &answers, read.previous.as_ref());
            let mut next = read.stored.clone();
            let from = part.map(|p| next.workflow.part_status(p));
            match (request.step, part) {
                (Step::ValidateSubsidiarity, _) => {
                    if next.workflow.subsidiarity.is_some() {
                        return Err(ApiError::conflict(
                            "invalid_transition",
                            "the subsidiarity items are already validated",
                        )
                        .into());
                    }
                    let found = subsidiarity_obstacles(definition, &evaluation);
                    if !found.is_empty() {
                        return Err(StepError::Blocked(found));
                    }
                    next.workflow.subsidiarity = Some(stamp.clone());
                }
                (Step::WithdrawSubsidiarity, _) => {
                    if next.workflow.subsidiarity.take().is_none() {
                        return Err(ApiError::conflict(
                            "invalid_transition",
                            "the subsidiarity items are not validated",
                        )
                        .into());
                    }
                }
                (step, Some(part)) => {
                    let transition = match step {
                        Step::Validate => Transition::Validate,
                        Step::Unvalidate => Transition::Unvalidate,
                        Step::Reopen => Transition::Reopen,
                        _ => Transition::Check,
                    };
                    next.workflow.apply(part, transition).map_err(|e| {
                        ApiError::conflict("invalid_transition", format!("{e} (part {part})"))
                    })?;
                    if step == Step::Validate {
                        let found = obstacles(definition, &evaluation, &read.stored.workflow, part);
                        if !found.is_empty() {
                            return Err(StepError::Blocked(found));
                        }
                    }
                    let fill_rate = evaluation
                        .fill
                        .parts
                        .iter()
                        .find(|f| f.part == part)
                        .map_or(0.0, |f| f.rate.ratio());
                    let deadline = definition
                        .parts()
                        .iter()
                        .find(|p| p.id == part)
                        .map(|p| p.deadline);
                    let state = next
                        .workflow
                        .parts
                        .get_mut(part)
                        .ok_or_else(ApiError::internal)?;
                    match step {
                        Step::Validate => {
                            // Validated again after a reopening: as timely as the first
                            // validation was (the correction was asked for after the
                            // deadline).
                            let on_time = match (from, &state.validation) {
                                (Some(QuestionnaireStatus::Reopened), Some(first)) => first.on_time,
                                _ => deadline.is_some_and(|d| self.today() <= d),
                            };
                            state.validation = Some(ValidationRecord {
                                by: stamp.by.clone(),
                                at: now,
                                fill_rate,
                                on_time,
                            });
                        }
                        Step::Reopen => {
                            state.reopening = Some(Reopening {
                                by: stamp.by.clone(),
                                at: now,
                                reason: reason.clone().unwrap_or_default(),
                            });
                            state.check = None;
                        }
                        Step::Check => state.check = Some(stamp.clone()),
                        _ => {}
                    }
                    // A reopened questionnaire is corrected by whoever entered the data.
                    if step == Step::Reopen {
                        next.workflow.subsidiarity = None;
                    }
                }
                (_, None) => unreachable!("a part step has its part"),
            }
            next.version += 1;
            next.updated_at = now;
            next.outliers = match self.peer_reference(year).await {
                Some(reference) => reference.outliers(kind, &next.answers).len() as u32,
                None => 0,
            };
            next.record(definition, &evaluation);
            let to = part.map(|p| next.workflow.part_status(p));
            let entry = AuditEntry {
                at: now * 1000,
                actor: caller.account.to_string(),
                action: serde_json::to_value(request.step)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                detail: serde_json::json!({
                    "version": next.version,
                    "part": part,
                    "from": from,
                    "to": to,
                    "reason": reason,
                }),
            };
            if !self
                .write(caller, role, &read.stored, &next, &entry)
                .await?
            {
                continue;
            }
            tracing::info!(finess = %next.respondent.finess, step = ?request.step, part = part.unwrap_or("subsidiarity"), version = next.version, "workflow step");
            let (notified, not_notified) = if request.step == Step::Reopen {
                // The part is named when the questionnaire has several (SAD's care and aid).
                let named = match definition.parts_for(structure.kind).count() {
                    1 => None,
                    _ => definition
                        .parts()
                        .iter()
                        .find(|p| Some(p.id.as_str()) == part)
                        .map(|p| p.label.as_str()),
                };
                let outcome = self
                    .notify_reopening(
                        &read.structure,
                        named,
                        reason.as_deref().unwrap_or_default(),
                    )
                    .await;
                match outcome {
                    Some((sent, failed)) => (Some(sent), Some(failed)),
                    None => (Some(0), None),
                }
            } else {
                (None, None)
            };
            let after = Read {
                stored: next,
                ..read
            };
            let checks = self.checks_after(year, definition, &after).await?;
            return Ok(StepResult {
                checks,
                notified,
                not_notified,
            });
        }
        Err(ApiError::conflict(
            "concurrent_change",
            "the questionnaire kept changing; try again",
        )
        .into())
    }

    /// Writes `next` over `before` with its trail line, provided the caller still holds
    /// `role`; `false` if someone wrote meanwhile (read again and decide again).
    async fn write(
        &self,
        caller: &Caller,
        role: &Role,
        before: &StoredQuestionnaire,
        next: &StoredQuestionnaire,
        entry: &AuditEntry,
    ) -> Result<bool, ApiError> {
        let write = AuditedWrite {
            before,
            after: next,
            entry,
            held: Some(HeldRole {
                account: &caller.account,
                role,
            }),
        };
        match self.questionnaires.put_audited(write).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(ApiError::from_store(e)),
        }
    }

    /// Tells the structure's APE and Gestionnaires that a part was reopened.
    async fn notify_reopening(
        &self,
        structure: &StructureRecord,
        part: Option<&str>,
        reason: &str,
    ) -> Option<(usize, usize)> {
        let members = match self.accounts.members(structure.finess).await {
            Ok(members) => members,
            Err(e) => {
                tracing::error!(error = %e, finess = %structure.finess, "members of a reopened structure unreadable");
                return None;
            }
        };
        let (mut sent, mut failed) = (0, 0);
        for (account, role) in members {
            let entitled = matches!(
                role,
                Role::Ape { .. }
                    | Role::Member {
                        profile: tdb_domain::rights::Profile::Gestionnaire,
                        ..
                    }
            );
            if !entitled || !account.is_active() {
                continue;
            }
            let email = mail::reopening(&account.email, &account.person, structure, part, reason);
            match self.mailer.send(&email).await {
                Ok(_) => sent += 1,
                Err(e) => {
                    failed += 1;
                    tracing::error!(error = %e, finess = %structure.finess, "reopening e-mail not sent");
                }
            }
        }
        Some((sent, failed))
    }

    /// Records a warning's acknowledgement (a comment saying why the value is right).
    pub(crate) async fn acknowledge(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
        request: AcknowledgementRequest,
    ) -> Result<Checks, ApiError> {
        let (year, definitions) = self.campaigns.year(year)?;
        let structure = self.recent.respondent(&self.accounts, finess).await?;
        let target = Target::Structure(structure.target());
        caller.authorize(Action::Consult, &target)?;
        let role = caller.granting(Action::Validate(DataScope::All), &target)?;
        let definition = definitions.for_kind(structure.kind);
        let rule = definition
            .rules()
            .iter()
            .find(|r| r.id == request.rule)
            .ok_or_else(|| ApiError::invalid("rule", "not a rule of this questionnaire"))?;
        if rule.mask & structure.kind.bit() == 0 {
            return Err(ApiError::invalid(
                "rule",
                "this rule does not apply to this structure's category",
            ));
        }
        if rule.severity != tdb_domain::questionnaire::Severity::Warning {
            return Err(ApiError::invalid(
                "rule",
                "only warnings are acknowledged: a blocking rule must pass",
            ));
        }
        let comment = text("comment", &request.comment)?;
        self.phase_allows(definition, Activity::Validate)?;
        let now = (self.clock)();
        for _ in 0..5 {
            let read = self.read(year, definition, &structure).await?;
            // The parts the rule reads must still be open.
            for item in &rule.items {
                if let Some(def) = definition.item(item)
                    && let Some(refusal) = read
                        .stored
                        .workflow
                        .write_refusal(&definition.part_of(def).id, false)
                {
                    return Err(ApiError::conflict(refusal.code(), refusal.message()));
                }
            }
            let kind = read.stored.respondent.kind;
            let answers = definition.carry_over(kind, &read.stored.answers);
            let evaluation = definition.evaluate(kind, &answers, read.previous.as_ref());
            let mut next = read.stored.clone();
            next.workflow.acknowledgements.insert(
                rule.id.clone(),
                Acknowledgement {
                    comment: comment.clone(),
                    by: caller.account.to_string(),
                    at: now,
                },
            );
            next.version += 1;
            next.updated_at = now;
            next.record(definition, &evaluation);
            let entry = AuditEntry {
                at: now * 1000,
                actor: caller.account.to_string(),
                action: "acknowledge".into(),
                detail: serde_json::json!({ "version": next.version, "rule": rule.id, "comment": comment }),
            };
            if !self
                .write(caller, role, &read.stored, &next, &entry)
                .await?
            {
                continue;
            }
            let after = Read {
                stored: next,
                ..read
            };
            return self.checks_after(year, definition, &after).await;
        }
        Err(ApiError::conflict(
            "concurrent_change",
            "the questionnaire kept changing; try again",
        ))
    }

    /// Closes a platform's campaign once its fiabilisation is over: records the final
    /// states and announces the closure to the restitute function.
    pub(crate) async fn close(
        &self,
        caller: &Caller,
        year: u16,
        request: ClosureRequest,
    ) -> Result<ClosureSummary, ApiError> {
        let caller = caller.clone().current(&self.accounts).await?;
        caller.authorize(Action::CloseCampaign, &Target::National)?;
        let (year, definitions) = self.campaigns.year(year)?;
        let platform = Platform::ALL
            .into_iter()
            .find(|p| p.key() == request.platform)
            .ok_or_else(|| ApiError::invalid("platform", "generic or sad"))?;
        let definition = definitions.platform(platform);
        let phase = definition.campaign().phase_on(self.today());
        if matches!(
            phase,
            Phase::Preparation | Phase::Collection | Phase::Fiabilisation
        ) {
            return Err(ApiError::conflict(
                "campaign_not_over",
                format!(
                    "the {} platform's campaign is in phase {phase:?}: it closes after fiabilisation",
                    platform.key()
                ),
            ));
        }
        let mut counts = Counts::default();
        for (key, c) in self
            .questionnaires
            .progress(year)
            .await
            .map_err(ApiError::from_store)?
        {
            if key.kind.platform() == platform {
                counts.add(c);
            }
        }
        let closure = Closure {
            by: caller.account.to_string(),
            at: (self.clock)(),
            counts,
        };
        let newly = self
            .questionnaires
            .close(year, platform, &closure)
            .await
            .map_err(ApiError::from_store)?;
        let closure = if newly {
            closure
        } else {
            self.questionnaires
                .closure(year, platform)
                .await
                .map_err(ApiError::from_store)?
                .ok_or_else(ApiError::internal)?
        };
        // The event the restitute function takes its snapshot from; written again if an
        // earlier request stopped before it.
        let key = closure_event_key(year, platform);
        if newly
            || self
                .lake
                .size(&key)
                .await
                .map_err(ApiError::from_store)?
                .is_none()
        {
            let event = serde_json::json!({
                "campaign": year.value(),
                "platform": platform.key(),
                "closed_at": closure.at,
                "counts": closure.counts,
            });
            self.lake
                .put(&key, event.to_string().into_bytes())
                .await
                .map_err(ApiError::from_store)?;
        }
        tracing::info!(campaign = %year, platform = platform.key(), newly, "campaign closed");
        Ok(ClosureSummary {
            platform: platform.key(),
            already_closed: !newly,
            closed_at: closure.at,
            counts: closure.counts,
        })
    }
}
