//! The validation workflow (domain §8, docs/workflow.md): each part of a questionnaire
//! (the generic platform has one, the SAD platform care and aid) moves
//!
//! ```text
//! not started ─save─▶ in progress ─validate─▶ validated ─check─▶ checked
//!                        ▲    ▲                 │  │               │
//!                        │    └──unvalidate─────┘  └─reopen─┐ ┌────┘ reopen
//!                        │                                  ▼ ▼
//!                        └───────────(save keeps it)──── reopened ─validate─▶ validated
//! ```
//!
//! and closes with its platform's campaign. Whether a validation is deserved (fill rate,
//! required items, blocking rules, acknowledged warnings) is [`obstacles`]; who may ask
//! is `rights`; when is the campaign's phase. Every function that writes a questionnaire
//! goes through [`Workflow`]: collect for saves, validate for the rest.

use crate::campaign::QuestionnaireStatus;
use crate::category::RespondentKind;
use crate::questionnaire::{Definition, Evaluation, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A change of a part's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Answers saved in the part.
    Save,
    /// The structure validates the part.
    Validate,
    /// The structure withdraws its validation (before any check).
    Unvalidate,
    /// The ARS or the CD reopens the part, with a reason.
    Reopen,
    /// The ARS or the CD marks the validated part as checked.
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a part that is {status:?} cannot take the transition {transition:?}")]
pub struct TransitionRefused {
    pub status: QuestionnaireStatus,
    pub transition: Transition,
}

/// The state machine: the status after `transition`, or the refusal. A closed part takes
/// none.
pub fn next(
    status: QuestionnaireStatus,
    transition: Transition,
) -> Result<QuestionnaireStatus, TransitionRefused> {
    use QuestionnaireStatus::*;
    use Transition as T;
    match (status, transition) {
        (NotStarted | InProgress, T::Save) => Ok(InProgress),
        // A reopened part stays reopened until validated again: the ARS sees it is pending.
        (Reopened, T::Save) => Ok(Reopened),
        (InProgress | Reopened, T::Validate) => Ok(Validated),
        (Validated, T::Unvalidate) => Ok(InProgress),
        (Validated | Checked, T::Reopen) => Ok(Reopened),
        (Validated, T::Check) => Ok(Checked),
        _ => Err(TransitionRefused { status, transition }),
    }
}

/// Who did something, and when (Unix seconds). `by` is an account id, never a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: i64,
}

/// A validation as recorded: who, when, the part's fill rate, and whether it came by the
/// part's deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    pub by: String,
    pub at: i64,
    pub fill_rate: f64,
    pub on_time: bool,
}

/// A reopening, with the reason the ARS or the CD gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reopening {
    pub by: String,
    pub at: i64,
    pub reason: String,
}

/// A warning the structure acknowledged, with its comment (shown to the ARS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub comment: String,
    pub by: String,
    pub at: i64,
}

/// Where one part stands, with the last of each record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartState {
    pub status: QuestionnaireStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopening: Option<Reopening>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Stamp>,
}

/// The workflow state stored with a questionnaire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// By part id; a part absent is not started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, PartState>,
    /// Acknowledged warnings, by rule id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acknowledgements: BTreeMap<String, Acknowledgement>,
    /// The OG's validation of the subsidiarity items it entered for this ESMS: they are
    /// read-only while it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsidiarity: Option<Stamp>,
}

impl Workflow {
    pub fn part_status(&self, part: &str) -> QuestionnaireStatus {
        self.parts
            .get(part)
            .map_or(QuestionnaireStatus::NotStarted, |p| p.status)
    }

    /// Applies `transition` to `part`; the records are the caller's to set.
    pub fn apply(&mut self, part: &str, transition: Transition) -> Result<(), TransitionRefused> {
        let status = next(self.part_status(part), transition)?;
        let state = self.parts.entry(part.to_string()).or_insert(PartState {
            status,
            validation: None,
            reopening: None,
            check: None,
        });
        state.status = status;
        Ok(())
    }

    /// The questionnaire's status: not started while every part asked of it is, otherwise
    /// its least advanced part's (a SPASAD is validated when both its parts are), with a
    /// part not started counting as in progress.
    pub fn status(&self, definition: &Definition, kind: RespondentKind) -> QuestionnaireStatus {
        use QuestionnaireStatus::*;
        let statuses: Vec<_> = definition
            .parts_for(kind)
            .map(|p| self.part_status(&p.id))
            .collect();
        if statuses.iter().all(|s| *s == NotStarted) {
            return NotStarted;
        }
        let rank = |s: &QuestionnaireStatus| match s {
            NotStarted | InProgress => 0,
            Reopened => 1,
            Validated => 2,
            Checked => 3,
            Closed => 4,
        };
        statuses
            .into_iter()
            .map(|s| if s == NotStarted { InProgress } else { s })
            .min_by_key(rank)
            .unwrap_or(NotStarted)
    }

    /// Forgets the acknowledgements of the rules that read a changed item: a comment was
    /// about the values it saw, and a new value needs a new look.
    pub fn forget_acknowledgements<'a>(
        &mut self,
        definition: &Definition,
        changed: impl IntoIterator<Item = &'a str>,
    ) {
        if self.acknowledgements.is_empty() {
            return;
        }
        let changed: std::collections::BTreeSet<&str> = changed.into_iter().collect();
        for rule in definition.rules() {
            if rule.items.iter().any(|i| changed.contains(i.as_str())) {
                self.acknowledgements.remove(&rule.id);
            }
        }
    }

    /// Why the item `id` of `definition` may not be written now, if it may not (an unknown
    /// item is the caller's to refuse).
    pub fn item_refusal(&self, definition: &Definition, id: &str) -> Option<WriteRefusal> {
        let item = definition.item(id)?;
        self.write_refusal(&definition.part_of(item).id, item.subsidiarity)
    }

    /// Why an item may not be written now, if it may not: its part is validated or
    /// checked, or it is a subsidiarity item the OG has validated.
    pub fn write_refusal(&self, part: &str, subsidiarity_item: bool) -> Option<WriteRefusal> {
        match self.part_status(part) {
            QuestionnaireStatus::Validated | QuestionnaireStatus::Checked => {
                Some(WriteRefusal::PartValidated)
            }
            QuestionnaireStatus::Closed => Some(WriteRefusal::Closed),
            _ if subsidiarity_item && self.subsidiarity.is_some() => {
                Some(WriteRefusal::SubsidiarityValidated)
            }
            _ => None,
        }
    }
}

/// A platform's campaign closed by the national administrator, with the final states of
/// its questionnaires by status (those that never validated stay counted as such).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closure {
    pub by: String,
    pub at: i64,
    pub counts: crate::progress::Counts,
}

/// Why a write is refused by the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefusal {
    PartValidated,
    SubsidiarityValidated,
    Closed,
}

impl WriteRefusal {
    pub fn code(self) -> &'static str {
        match self {
            WriteRefusal::PartValidated => "questionnaire_validated",
            WriteRefusal::SubsidiarityValidated => "subsidiarity_validated",
            WriteRefusal::Closed => "questionnaire_closed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            WriteRefusal::PartValidated => {
                "this part of the questionnaire is validated: it must be unvalidated or reopened before any change"
            }
            WriteRefusal::SubsidiarityValidated => {
                "the OG validated the items it enters for this structure: it must withdraw that validation first"
            }
            WriteRefusal::Closed => "the campaign is closed: nothing changes any more",
        }
    }
}

/// What stands between a part and its validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Obstacle {
    /// The part's fill rate is under its threshold.
    BelowThreshold { rate: f64, threshold: f64 },
    /// A required item of the part has no answer.
    MissingRequired { item: String },
    /// A blocking rule on the part's items fails.
    Blocking { rule: String, message: String },
    /// A warning on the part's items fails and has no acknowledgement.
    Unacknowledged { rule: String, message: String },
}

/// Why `part` cannot be validated now (empty when it can): its fill threshold, its
/// required items, and the rules on its items (blocking ones must pass, warnings be
/// acknowledged).
pub fn obstacles(
    definition: &Definition,
    evaluation: &Evaluation<'_>,
    workflow: &Workflow,
    part: &str,
) -> Vec<Obstacle> {
    let Some(index) = definition.parts().iter().position(|p| p.id == part) else {
        return vec![];
    };
    let in_part = |item: &str| {
        definition
            .item(item)
            .is_some_and(|i| definition.sections()[i.section as usize].part == index)
    };
    let mut found = Vec::new();
    if let Some(fill) = evaluation.fill.parts.iter().find(|p| p.part == part)
        && !fill.is_satisfied()
    {
        found.push(Obstacle::BelowThreshold {
            rate: fill.rate.ratio(),
            threshold: fill.threshold,
        });
    }
    for item in &evaluation.missing_required {
        if in_part(item) {
            found.push(Obstacle::MissingRequired {
                item: item.to_string(),
            });
        }
    }
    for v in &evaluation.violations {
        if !v.items.iter().any(|i| in_part(i)) {
            continue;
        }
        match v.severity {
            Severity::Blocking => found.push(Obstacle::Blocking {
                rule: v.rule.to_string(),
                message: v.message.to_string(),
            }),
            Severity::Warning if !workflow.acknowledgements.contains_key(v.rule) => {
                found.push(Obstacle::Unacknowledged {
                    rule: v.rule.to_string(),
                    message: v.message.to_string(),
                })
            }
            Severity::Warning => {}
        }
    }
    found
}

/// Why the OG cannot validate the subsidiarity items of an ESMS now: a required one
/// without an answer, or a blocking rule on subsidiarity items only.
pub fn subsidiarity_obstacles(
    definition: &Definition,
    evaluation: &Evaluation<'_>,
) -> Vec<Obstacle> {
    let subsidiarity = |item: &str| definition.item(item).is_some_and(|i| i.subsidiarity);
    let mut found: Vec<Obstacle> = evaluation
        .missing_required
        .iter()
        .filter(|i| subsidiarity(i))
        .map(|i| Obstacle::MissingRequired {
            item: i.to_string(),
        })
        .collect();
    found.extend(
        evaluation
            .blocking_violations()
            .filter(|v| !v.items.is_empty() && v.items.iter().all(|i| subsidiarity(i)))
            .map(|v| Obstacle::Blocking {
                rule: v.rule.to_string(),
                message: v.message.to_string(),
            }),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuestionnaireStatus::*;
    use Transition as T;

    #[test]
    fn every_transition_of_every_status() {
        let statuses = [NotStarted, InProgress, Validated, Reopened, Checked, Closed];
        let transitions = [T::Save, T::Validate, T::Unvalidate, T::Reopen, T::Check];
        // Rows: statuses; columns: transitions; None is a refusal.
        let expected: [[Option<QuestionnaireStatus>; 5]; 6] = [
            [Some(InProgress), None, None, None, None],
            [Some(InProgress), Some(Validated), None, None, None],
            [None, None, Some(InProgress), Some(Reopened), Some(Checked)],
            [Some(Reopened), Some(Validated), None, None, None],
            [None, None, None, Some(Reopened), None],
            [None, None, None, None, None],
        ];
        for (status, row) in statuses.iter().zip(expected) {
            for (transition, want) in transitions.iter().zip(row) {
                assert_eq!(
                    next(*status, *transition).ok(),
                    want,
                    "{status:?} {transition:?}"
                );
            }
        }
    }

    fn sad() -> Definition {
        crate::questionnaire::builtin::load(2025)
            .unwrap()
            .unwrap()
            .platform(crate::campaign::Platform::Sad)
            .clone()
    }

    #[test]
    fn a_questionnaire_is_as_advanced_as_its_least_advanced_part() {
        let definition = sad();
        let spasad = RespondentKind::Esms(crate::Category::Spasad);
        let mut w = Workflow::default();
        assert_eq!(w.status(&definition, spasad), NotStarted);
        w.apply("soins", T::Save).unwrap();
        assert_eq!(
            w.status(&definition, spasad),
            InProgress,
            "aid not started yet"
        );
        w.apply("soins", T::Validate).unwrap();
        assert_eq!(w.status(&definition, spasad), InProgress);
        w.apply("aide", T::Save).unwrap();
        w.apply("aide", T::Validate).unwrap();
        assert_eq!(w.status(&definition, spasad), Validated);
        w.apply("aide", T::Reopen).unwrap();
        assert_eq!(w.status(&definition, spasad), Reopened);
        assert_eq!(w.part_status("soins"), Validated, "parts are separate");
        // An SAA gives no care: its aid part is all it validates.
        let saa = RespondentKind::Esms(crate::Category::Saa);
        let parts: Vec<_> = definition.parts_for(saa).map(|p| p.id.as_str()).collect();
        assert_eq!(parts, ["aide"]);
        let mut w = Workflow::default();
        w.apply("aide", T::Save).unwrap();
        w.apply("aide", T::Validate).unwrap();
        assert_eq!(w.status(&definition, saa), Validated);
    }

    #[test]
    fn validated_parts_and_validated_subsidiarity_items_refuse_writes() {
        let mut w = Workflow::default();
        assert_eq!(w.write_refusal("soins", false), None);
        w.apply("soins", T::Save).unwrap();
        w.apply("soins", T::Validate).unwrap();
        assert_eq!(
            w.write_refusal("soins", false),
            Some(WriteRefusal::PartValidated)
        );
        assert_eq!(w.write_refusal("aide", false), None);
        w.subsidiarity = Some(Stamp {
            by: "og".into(),
            at: 1,
        });
        assert_eq!(
            w.write_refusal("aide", true),
            Some(WriteRefusal::SubsidiarityValidated)
        );
        assert_eq!(w.write_refusal("aide", false), None);
    }
}
