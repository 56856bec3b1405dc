//! A demo campaign's story: generated questionnaires taken through the workflow as
//! structures and their ARS would have, so that a person trying the platform finds every
//! state (not started, in progress with violations, validated, reopened, checked) with its
//! records, and last year's campaign closed behind it.

use crate::campaign::QuestionnaireStatus;
use crate::ports::StoredQuestionnaire;
use crate::questionnaire::{AnswerSet, Definition, Severity};
use crate::workflow::{Acknowledgement, Reopening, Stamp, Transition, ValidationRecord, obstacles};

/// Where a demo questionnaire is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    NotStarted,
    InProgress,
    Validated,
    Reopened,
    Checked,
}

impl Stage {
    /// The stage aimed at for the n-th questionnaire of a demo campaign, in turn: of every
    /// twenty, 2 not started, 6 in progress, 7 validated, 1 reopened and 4 checked. A
    /// questionnaire that cannot be validated stays in progress (see [`take_to`]).
    pub fn aimed_at(n: usize) -> Stage {
        match n % 20 {
            0 | 1 => Stage::NotStarted,
            2..=7 => Stage::InProgress,
            8..=14 => Stage::Validated,
            15 => Stage::Reopened,
            _ => Stage::Checked,
        }
    }

    pub fn status(self) -> QuestionnaireStatus {
        match self {
            Stage::NotStarted => QuestionnaireStatus::NotStarted,
            Stage::InProgress => QuestionnaireStatus::InProgress,
            Stage::Validated => QuestionnaireStatus::Validated,
            Stage::Reopened => QuestionnaireStatus::Reopened,
            Stage::Checked => QuestionnaireStatus::Checked,
        }
    }
}

/// Who took the steps, and when (Unix seconds): account ids, never names.
#[derive(Debug, Clone)]
pub struct Steps {
    /// The structure's account: validations and acknowledgements.
    pub structure: String,
    /// The ARS's account: reopenings and checks.
    pub territory: String,
    pub validated_at: i64,
    /// After `validated_at`: reopened, or checked.
    pub reviewed_at: i64,
}

/// Why the ARS reopens a demo questionnaire.
pub const REOPENING_REASON: &str =
    "Capacité installée à rapprocher de l'arrêté d'autorisation : merci de vérifier.";
/// How a demo structure acknowledges a warning.
pub const ACKNOWLEDGEMENT: &str = "Valeur vérifiée : elle correspond à notre activité.";

/// Takes `q`, as loaded (each answered part in progress), to `stage` as the validate
/// function would: each part asked of it validated with its warnings acknowledged, then
/// reopened or checked; `NotStarted` clears its answers. A part that cannot be validated
/// (fill rate, a required item, a blocking rule) leaves the questionnaire in progress with
/// its violations. `previous` is last campaign's answers, for the year-on-year rules.
/// Returns the stage reached.
pub fn take_to(
    q: &mut StoredQuestionnaire,
    definition: &Definition,
    previous: Option<&AnswerSet>,
    stage: Stage,
    steps: &Steps,
) -> Stage {
    let kind = q.respondent.kind;
    if stage == Stage::NotStarted {
        q.answers.clear();
        q.items.clear();
        q.workflow = Default::default();
    }
    let answers = definition.carry_over(kind, &q.answers);
    let evaluation = definition.evaluate(kind, &answers, previous);
    let reached = match stage {
        Stage::NotStarted | Stage::InProgress => stage,
        Stage::Validated | Stage::Reopened | Stage::Checked => {
            let by = |who: &str, at: i64| Stamp {
                by: who.to_string(),
                at,
            };
            for v in &evaluation.violations {
                if v.severity == Severity::Warning {
                    q.workflow.acknowledgements.insert(
                        v.rule.to_string(),
                        Acknowledgement {
                            comment: ACKNOWLEDGEMENT.to_string(),
                            by: steps.structure.clone(),
                            at: steps.validated_at,
                        },
                    );
                }
            }
            let parts: Vec<_> = definition.parts_for(kind).collect();
            let validable = parts
                .iter()
                .all(|part| obstacles(definition, &evaluation, &q.workflow, &part.id).is_empty());
            if !validable {
                q.workflow.acknowledgements.clear();
                Stage::InProgress
            } else {
                for part in parts {
                    let fill_rate = evaluation
                        .fill
                        .parts
                        .iter()
                        .find(|f| f.part == part.id)
                        .map_or(0.0, |f| f.rate.ratio());
                    let on_time = time::OffsetDateTime::from_unix_timestamp(steps.validated_at)
                        .is_ok_and(|t| t.date() <= part.deadline);
                    let mut step = |transition| {
                        q.workflow
                            .apply(&part.id, transition)
                            .expect("the demo's steps follow the workflow")
                    };
                    step(Transition::Save);
                    step(Transition::Validate);
                    match stage {
                        Stage::Reopened => step(Transition::Reopen),
                        Stage::Checked => step(Transition::Check),
                        _ => {}
                    }
                    let state = q.workflow.parts.get_mut(&part.id).expect("just applied");
                    state.validation = Some(ValidationRecord {
                        by: steps.structure.clone(),
                        at: steps.validated_at,
                        fill_rate,
                        on_time,
                    });
                    match stage {
                        Stage::Reopened => {
                            state.reopening = Some(Reopening {
                                by: steps.territory.clone(),
                                at: steps.reviewed_at,
                                reason: REOPENING_REASON.to_string(),
                            })
                        }
                        Stage::Checked => {
                            state.check = Some(by(&steps.territory, steps.reviewed_at))
                        }
                        _ => {}
                    }
                }
                stage
            }
        }
    };
    q.updated_at = match reached {
        Stage::NotStarted | Stage::InProgress => q.updated_at,
        Stage::Validated => steps.validated_at,
        Stage::Reopened | Stage::Checked => steps.reviewed_at,
    };
    q.record(definition, &evaluation);
    reached
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CampaignYear;
    use crate::generator::{GeneratorConfig, answer, generate};
    use crate::questionnaire::builtin;
    use std::collections::HashMap;

    fn steps() -> Steps {
        Steps {
            structure: "structure-account".into(),
            territory: "ars-account".into(),
            // 20 and 25 June 2025.
            validated_at: 1_750_420_800,
            reviewed_at: 1_750_852_800,
        }
    }

    #[test]
    fn a_demo_campaign_holds_every_state_with_its_records_and_only_deserved_validations() {
        let definitions = builtin::load(2025).unwrap().unwrap();
        let config = GeneratorConfig {
            establishments: 400,
            ..Default::default()
        };
        let campaign = generate(&definitions, &config, |_, _| {});
        let last_year = answer(
            &definitions,
            &campaign.referential,
            &GeneratorConfig {
                seed: 2024,
                incomplete_share: 0.0,
                incoherent_share: 0.0,
                ..config
            },
        );
        let previous: HashMap<_, _> = last_year
            .iter()
            .map(|q| (q.respondent.finess, &q.answers))
            .collect();
        let stored = campaign.stored(&definitions, CampaignYear::new(2025).unwrap(), |_| None);
        let mut reached: HashMap<Stage, usize> = HashMap::new();
        let (mut with_violations, mut acknowledged) = (0, 0);
        for (n, mut q) in stored.into_iter().enumerate() {
            let definition = definitions.for_kind(q.respondent.kind);
            let aimed = Stage::aimed_at(n);
            let last = previous.get(&q.respondent.finess).copied();
            let stage = take_to(&mut q, definition, last, aimed, &steps());
            *reached.entry(stage).or_default() += 1;
            with_violations += usize::from(stage == Stage::InProgress && q.blocking > 0);
            acknowledged += q.acknowledged as usize;
            assert_eq!(q.status, stage.status(), "{}", q.respondent.finess);
            assert!(stage == aimed || stage == Stage::InProgress);
            let kind = q.respondent.kind;
            let answers = definition.carry_over(kind, &q.answers);
            let evaluation = definition.evaluate(kind, &answers, last);
            for part in definition.parts_for(kind) {
                let state = q.workflow.parts.get(&part.id);
                match stage {
                    Stage::NotStarted => {
                        assert!(q.answers.is_empty() && state.is_none());
                        assert_eq!(q.fill_rate, 0.0);
                    }
                    Stage::InProgress => assert!(state.is_none_or(|s| s.validation.is_none())),
                    Stage::Validated | Stage::Reopened | Stage::Checked => {
                        let state = state.unwrap();
                        assert!(
                            obstacles(definition, &evaluation, &q.workflow, &part.id).is_empty(),
                            "a validated part has no obstacle"
                        );
                        let validation = state.validation.as_ref().unwrap();
                        assert!(validation.on_time, "validated on 20 June");
                        assert_eq!(
                            state.reopening.as_ref().map(|r| r.reason.as_str()),
                            (stage == Stage::Reopened).then_some(REOPENING_REASON)
                        );
                        assert_eq!(state.check.is_some(), stage == Stage::Checked);
                    }
                }
            }
        }
        // Every state, and violations among those in progress.
        for stage in [
            Stage::NotStarted,
            Stage::InProgress,
            Stage::Validated,
            Stage::Reopened,
            Stage::Checked,
        ] {
            assert!(reached.get(&stage).copied().unwrap_or(0) > 5, "{reached:?}");
        }
        assert!(
            with_violations > 5 && acknowledged > 5,
            "{with_violations} {acknowledged}"
        );
    }
}
