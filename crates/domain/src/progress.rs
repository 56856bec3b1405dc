//! How far a campaign has got: counters by département and kind of respondent (the
//! expected / actual / on-time reporting rates of DHIS2). Every write of a questionnaire
//! carries the difference it makes to its counter, in the same transaction, so the
//! counters always equal a [`recount`] of the questionnaires.

use crate::campaign::QuestionnaireStatus;
use crate::category::RespondentKind;
use crate::geo::Departement;
use crate::ports::StoredQuestionnaire;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The counter a questionnaire counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgressKey {
    pub departement: Departement,
    pub kind: RespondentKind,
}

impl ProgressKey {
    pub fn of(q: &StoredQuestionnaire) -> ProgressKey {
        ProgressKey {
            departement: q.departement,
            kind: q.respondent.kind,
        }
    }

    /// `<département>#<kind>` (`69#EHPAD`), as stored.
    pub fn encode(&self) -> String {
        format!("{}#{}", self.departement.insee_code(), self.kind.key())
    }

    pub fn decode(s: &str) -> Option<ProgressKey> {
        let (dep, kind) = s.split_once('#')?;
        Some(ProgressKey {
            departement: Departement::from_code(dep)?,
            kind: RespondentKind::from_key(kind)?,
        })
    }
}

/// Questionnaires counted by status, with those validated on time and the sum of fill
/// rates (in ten-thousandths, so that sums are exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub expected: i64,
    pub not_started: i64,
    pub in_progress: i64,
    pub reopened: i64,
    pub validated: i64,
    pub checked: i64,
    pub on_time: i64,
    pub fill_sum: i64,
}

/// A fill rate in the counters' unit.
pub fn fill_units(rate: f64) -> i64 {
    (rate.clamp(0.0, 1.0) * 10_000.0).round() as i64
}

impl Counts {
    /// What one questionnaire counts.
    pub fn of(q: &StoredQuestionnaire) -> Counts {
        let mut c = Counts {
            expected: 1,
            fill_sum: fill_units(q.fill_rate),
            ..Counts::default()
        };
        match q.status {
            QuestionnaireStatus::NotStarted => c.not_started = 1,
            QuestionnaireStatus::InProgress => c.in_progress = 1,
            QuestionnaireStatus::Reopened => c.reopened = 1,
            QuestionnaireStatus::Validated => c.validated = 1,
            QuestionnaireStatus::Checked => c.checked = 1,
            // Closure is the campaign's, never stored on a questionnaire.
            QuestionnaireStatus::Closed => {}
        }
        let fully_validated = matches!(
            q.status,
            QuestionnaireStatus::Validated | QuestionnaireStatus::Checked
        );
        let each_part_on_time = q
            .workflow
            .parts
            .values()
            .all(|p| p.validation.as_ref().is_some_and(|v| v.on_time));
        c.on_time = i64::from(fully_validated && each_part_on_time);
        c
    }

    fn fields(&mut self) -> [&mut i64; 8] {
        [
            &mut self.expected,
            &mut self.not_started,
            &mut self.in_progress,
            &mut self.reopened,
            &mut self.validated,
            &mut self.checked,
            &mut self.on_time,
            &mut self.fill_sum,
        ]
    }

    /// The names of the counters as stored, in the order of [`Counts::values`].
    pub const NAMES: [&'static str; 8] = [
        "expected",
        "not_started",
        "in_progress",
        "reopened",
        "validated",
        "checked",
        "on_time",
        "fill_sum",
    ];

    pub fn values(mut self) -> [i64; 8] {
        self.fields().map(|v| *v)
    }

    pub fn from_values(values: [i64; 8]) -> Counts {
        let mut c = Counts::default();
        for (field, v) in c.fields().into_iter().zip(values) {
            *field = v;
        }
        c
    }

    pub fn add(&mut self, mut other: Counts) {
        for (a, b) in self.fields().into_iter().zip(other.fields()) {
            *a += *b;
        }
    }

    /// `after - before`: what a write changes.
    pub fn change(before: Option<&StoredQuestionnaire>, after: &StoredQuestionnaire) -> Counts {
        let mut change = Counts::of(after);
        if let Some(before) = before {
            let mut old = Counts::of(before);
            for (a, b) in change.fields().into_iter().zip(old.fields()) {
                *a -= *b;
            }
        }
        change
    }

    pub fn is_zero(self) -> bool {
        self == Counts::default()
    }

    /// Questionnaires with at least one answer.
    pub fn started(&self) -> i64 {
        self.expected - self.not_started
    }

    /// Validated, checked included.
    pub fn all_validated(&self) -> i64 {
        self.validated + self.checked
    }

    /// `n` as a share of the expected questionnaires (0 when none is expected).
    pub fn share(&self, n: i64) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            n as f64 / self.expected as f64
        }
    }

    pub fn mean_fill_rate(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.fill_sum as f64 / 10_000.0 / self.expected as f64
        }
    }
}

/// Counters summed by the groups progress views show.
#[derive(Debug, Default)]
pub struct Summary {
    pub total: Counts,
    /// By kind of respondent (`EHPAD`, `OG`...).
    pub by_kind: BTreeMap<&'static str, Counts>,
    /// By département code.
    pub by_departement: BTreeMap<&'static str, Counts>,
    /// By region code.
    pub by_region: BTreeMap<u8, Counts>,
}

impl Summary {
    pub fn of<'a>(counters: impl IntoIterator<Item = &'a (ProgressKey, Counts)>) -> Summary {
        let mut summary = Summary::default();
        for (key, counts) in counters {
            summary.total.add(*counts);
            summary
                .by_kind
                .entry(key.kind.key())
                .or_default()
                .add(*counts);
            summary
                .by_departement
                .entry(key.departement.insee_code())
                .or_default()
                .add(*counts);
            if let Some(region) = key.departement.region() {
                summary
                    .by_region
                    .entry(region.code())
                    .or_default()
                    .add(*counts);
            }
        }
        summary
    }
}

/// The counters recomputed from the questionnaires themselves.
pub fn recount<'a>(
    questionnaires: impl IntoIterator<Item = &'a StoredQuestionnaire>,
) -> BTreeMap<ProgressKey, Counts> {
    let mut counts: BTreeMap<ProgressKey, Counts> = BTreeMap::new();
    for q in questionnaires {
        counts
            .entry(ProgressKey::of(q))
            .or_default()
            .add(Counts::of(q));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Category;

    #[test]
    fn keys_read_back() {
        for kind in [RespondentKind::Og, RespondentKind::Esms(Category::Ehpad)] {
            let key = ProgressKey {
                departement: Departement::from_code("2A").unwrap(),
                kind,
            };
            assert_eq!(ProgressKey::decode(&key.encode()), Some(key));
        }
        assert_eq!(ProgressKey::decode("69"), None);
    }
}
