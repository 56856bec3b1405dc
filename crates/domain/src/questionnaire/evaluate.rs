//! Evaluating a questionnaire: fill rate, coherence rules and indicators, in one pass that
//! allocates only its report.

use super::answer::{AnswerSet, Slot, Value};
use super::definition::{Definition, Missing, Severity, Unit};
use super::expr::Scope;
use crate::category::RespondentKind;
use serde::Serialize;
use time::Date;

/// Answered applicable items over applicable items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FillRate {
    pub answered: u32,
    pub applicable: u32,
}

impl FillRate {
    /// The rate as a fraction; a questionnaire with nothing applicable is complete.
    pub fn ratio(&self) -> f64 {
        if self.applicable == 0 {
            1.0
        } else {
            self.answered as f64 / self.applicable as f64
        }
    }
}

/// The fill rate of one part of the questionnaire, against the part's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartFill<'d> {
    pub part: &'d str,
    pub rate: FillRate,
    pub threshold: f64,
    #[serde(with = "crate::campaign::iso_date")]
    pub deadline: Date,
}

impl PartFill<'_> {
    pub fn is_satisfied(&self) -> bool {
        self.rate.ratio() >= self.threshold
    }

    /// Past the part's deadline without reaching its threshold (what reminders chase).
    pub fn is_late(&self, day: Date) -> bool {
        day > self.deadline && !self.is_satisfied()
    }
}

/// The fill rate overall, per part (each with its threshold) and per section. Computed
/// items are not counted: nobody enters them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillReport<'d> {
    pub overall: FillRate,
    pub parts: Vec<PartFill<'d>>,
    pub sections: Vec<(&'d str, FillRate)>,
}

/// A rule that does not hold, with the items it reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation<'d> {
    pub rule: &'d str,
    pub severity: Severity,
    pub message: &'d str,
    pub items: &'d [String],
    /// True when the rule fails because an input is missing (`missing = "violation"`).
    pub missing_input: bool,
}

/// Why an indicator has no value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotComputable<'d> {
    MissingInputs { items: Vec<&'d str> },
    ZeroDenominator,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorValue<'d> {
    Value(f64),
    NotComputable(NotComputable<'d>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorResult<'d> {
    pub indicator: &'d str,
    pub unit: Unit,
    pub value: IndicatorValue<'d>,
}

/// Everything the platform needs to know about a questionnaire's answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation<'d> {
    pub fill: FillReport<'d>,
    /// Required applicable items without an answer.
    pub missing_required: Vec<&'d str>,
    pub violations: Vec<Violation<'d>>,
    pub indicators: Vec<IndicatorResult<'d>>,
}

impl Evaluation<'_> {
    pub fn blocking_violations(&self) -> impl Iterator<Item = &Violation<'_>> {
        self.violations
            .iter()
            .filter(|v| v.severity == Severity::Blocking)
    }

    /// Whether one part (by id) has reached its threshold: the care data of a SPASAD may
    /// be complete by 30 June while its aid data still have until 31 July.
    pub fn part_satisfied(&self, part: &str) -> Option<bool> {
        self.fill
            .parts
            .iter()
            .find(|p| p.part == part)
            .map(PartFill::is_satisfied)
    }

    /// Validation needs every part's fill threshold, every required item and no blocking
    /// violation.
    pub fn can_validate(&self) -> bool {
        self.fill.parts.iter().all(PartFill::is_satisfied)
            && self.missing_required.is_empty()
            && self.blocking_violations().next().is_none()
    }
}

impl Definition {
    /// Whether an item is asked of this respondent, given its tarification option if answered.
    pub fn is_applicable(&self, item: usize, kind: RespondentKind, answers: &AnswerSet) -> bool {
        let def = &self.items()[item];
        if def.mask & kind.bit() == 0 {
            return false;
        }
        if def.tarification == 0 {
            return true;
        }
        let Some(t) = self.tarification() else {
            return true;
        };
        match answers.slot(t.item) {
            Slot::Value(Value::Choice(option)) => def.tarification & (1u64 << option) != 0,
            // Until the option is known the item is asked: better one question too many.
            _ => true,
        }
    }

    /// The fill rate of a questionnaire, overall and per section. Not-applicable answers
    /// count as answered (the structure has looked at the item); "unknown" does not.
    pub fn fill_rate(&self, kind: RespondentKind, answers: &AnswerSet) -> FillReport<'_> {
        let mut overall = FillRate::default();
        let mut parts: Vec<PartFill> = self
            .parts()
            .iter()
            .map(|p| PartFill {
                part: &p.id,
                rate: FillRate::default(),
                threshold: p.fill_threshold,
                deadline: p.deadline,
            })
            .collect();
        let mut sections = Vec::with_capacity(self.sections().len());
        for section in self.sections() {
            let mut rate = FillRate::default();
            for i in section.items.clone() {
                if !self.items()[i].computed && self.is_applicable(i, kind, answers) {
                    rate.applicable += 1;
                    if matches!(answers.slot(i), Slot::Value(_) | Slot::NotApplicable) {
                        rate.answered += 1;
                    }
                }
            }
            if rate.applicable > 0 {
                sections.push((section.id.as_str(), rate));
            }
            overall.answered += rate.answered;
            overall.applicable += rate.applicable;
            let part = &mut parts[section.part].rate;
            part.answered += rate.answered;
            part.applicable += rate.applicable;
        }
        // A part with nothing for this respondent is not reported.
        parts.retain(|p| p.rate.applicable > 0);
        FillReport {
            overall,
            parts,
            sections,
        }
    }

    /// The value of a computed item for these answers (`None` while an input is missing).
    pub fn computed_value(
        &self,
        item: usize,
        kind: RespondentKind,
        answers: &AnswerSet,
    ) -> Option<f64> {
        if self.items().get(item)?.mask & kind.bit() == 0 {
            return None;
        }
        let formula = self.formula(item)?;
        Scope {
            items: self.items(),
            answers,
            respondent_bit: kind.bit(),
            missing_as_zero: false,
            year_end: self.campaign().year.data_year_end().to_julian_day() as f64,
            previous: None,
        }
        .eval(&formula.node)
    }

    /// Fill rate, coherence rules and indicators of one questionnaire. `previous` is the
    /// same structure's answers of the previous campaign, read through this campaign's items
    /// (see `carry_over`), for the year-on-year rules; they are skipped without it, and
    /// when it was made for another definition.
    pub fn evaluate(
        &self,
        kind: RespondentKind,
        answers: &AnswerSet,
        previous: Option<&AnswerSet>,
    ) -> Evaluation<'_> {
        let bit = kind.bit();
        let mut scope = Scope {
            items: self.items(),
            answers,
            respondent_bit: bit,
            missing_as_zero: false,
            year_end: self.campaign().year.data_year_end().to_julian_day() as f64,
            previous: previous.filter(|p| p.len() == self.items().len()),
        };

        let mut violations = Vec::new();
        for rule in self.rules().iter().filter(|r| r.mask & bit != 0) {
            scope.missing_as_zero = rule.missing == Missing::Zero;
            let applies = rule.when.as_ref().map_or(Some(1.0), |w| scope.eval(w));
            if applies.is_none_or(|v| v == 0.0) {
                continue;
            }
            let outcome = scope.eval(&rule.check);
            let (violated, missing_input) = match outcome {
                Some(v) => (v == 0.0, false),
                None => (rule.missing == Missing::Violation, true),
            };
            if violated {
                violations.push(Violation {
                    rule: &rule.id,
                    severity: rule.severity,
                    message: &rule.message,
                    items: &rule.items,
                    missing_input,
                });
            }
        }

        let mut indicators = Vec::new();
        for indicator in self.indicators().iter().filter(|i| i.mask & bit != 0) {
            scope.missing_as_zero = indicator.missing == Missing::Zero;
            let numerator = scope.eval(&indicator.numerator);
            let denominator = indicator
                .denominator
                .as_ref()
                .map_or(Some(1.0), |d| scope.eval(d));
            let value = match (numerator, denominator) {
                (Some(_), Some(0.0)) => {
                    IndicatorValue::NotComputable(NotComputable::ZeroDenominator)
                }
                (Some(n), Some(d)) => IndicatorValue::Value(n / d),
                _ => {
                    // Slow path, only when something is missing: name what is.
                    let items = indicator
                        .item_indices
                        .iter()
                        .filter(|&&i| {
                            self.items()[i as usize].mask & bit != 0
                                && !self.items()[i as usize].computed
                                && matches!(
                                    scope.answers.slot(i as usize),
                                    Slot::Missing | Slot::Unknown
                                )
                        })
                        .map(|&i| self.items()[i as usize].id.as_str())
                        .collect::<Vec<_>>();
                    if items.is_empty() {
                        // Every input is there: an inner division by zero made the value unknown.
                        IndicatorValue::NotComputable(NotComputable::ZeroDenominator)
                    } else {
                        IndicatorValue::NotComputable(NotComputable::MissingInputs { items })
                    }
                }
            };
            indicators.push(IndicatorResult {
                indicator: &indicator.id,
                unit: indicator.unit,
                value,
            });
        }

        let missing_required = self
            .items()
            .iter()
            .enumerate()
            .filter(|(i, def)| {
                def.required
                    && matches!(answers.slot(*i), Slot::Missing)
                    && self.is_applicable(*i, kind, answers)
            })
            .map(|(_, def)| def.id.as_str())
            .collect();

        Evaluation {
            fill: self.fill_rate(kind, answers),
            missing_required,
            violations,
            indicators,
        }
    }
}
