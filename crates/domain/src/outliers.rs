//! Values far from the structure's peers (docs/outliers.md). For each kind of respondent
//! and numeric item, the previous campaign's answers give a median and a median absolute
//! deviation (MAD); a value's modified z-score is `0.6745 (x - median) / MAD` (Iglewicz and
//! Hoaglin), and beyond [`THRESHOLD`] the value is flagged. The MAD ignores the outliers
//! themselves, unlike a standard deviation. Items with fewer than [`MIN_PEERS`] answers, or
//! whose answers are almost all equal, are not judged. Large changes from the structure's
//! own previous value are the definition's year-on-year rules, not this.

use crate::category::RespondentKind;
use crate::questionnaire::Definition;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// Iglewicz and Hoaglin's cut-off for the modified z-score.
pub const THRESHOLD: f64 = 3.5;
/// Fewer peers than this say nothing reliable.
pub const MIN_PEERS: usize = 10;

/// One item's distribution among peers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    pub median: f64,
    /// The median absolute deviation, or, when it is zero (more than half the answers
    /// equal), 1.2533 × the mean absolute deviation, Iglewicz and Hoaglin's substitute.
    pub spread: f64,
    pub peers: usize,
}

impl PeerStats {
    /// The statistics of `values` (reordered), if there are enough of them and they vary.
    pub fn of(values: &mut [f64]) -> Option<PeerStats> {
        if values.len() < MIN_PEERS {
            return None;
        }
        let median = median_of(values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mad = median_of(&mut deviations);
        let spread = if mad > 0.0 {
            mad
        } else {
            let mean = deviations.iter().sum::<f64>() / deviations.len() as f64;
            // 0.6745 / 0.7979: the z-score's constant for the mean absolute deviation.
            mean * 1.2533
        };
        (spread > 0.0).then_some(PeerStats {
            median,
            spread,
            peers: values.len(),
        })
    }

    /// The modified z-score of `value`.
    pub fn score(&self, value: f64) -> f64 {
        0.6745 * (value - self.median) / self.spread
    }
}

/// The median, by selection (linear time) rather than a full sort.
fn median_of(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (_, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..n / 2]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// The peers' statistics of one campaign, by kind of respondent (its key) and item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReference {
    /// The campaign whose answers the statistics describe.
    pub campaign: u16,
    pub items: BTreeMap<String, BTreeMap<String, PeerStats>>,
}

/// A value flagged as far from its peers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlier {
    pub item: String,
    pub value: f64,
    pub median: f64,
    pub score: f64,
}

/// Collects the answers of many questionnaires, then gives their statistics.
#[derive(Default)]
pub struct PeerCollector {
    values: BTreeMap<(RespondentKind, String), Vec<f64>>,
}

impl PeerCollector {
    /// Adds one questionnaire's numeric answers (as stored) to its kind's samples.
    pub fn add(
        &mut self,
        definition: &Definition,
        kind: RespondentKind,
        answers: &Map<String, Json>,
    ) {
        for (id, value) in answers {
            let Some(item) = definition.item(id) else {
                continue;
            };
            if !item.kind.is_numeric() || item.computed {
                continue;
            }
            if let Some(v) = value.as_f64() {
                self.values.entry((kind, id.clone())).or_default().push(v);
            }
        }
    }

    pub fn finish(self, campaign: u16) -> PeerReference {
        let mut reference = PeerReference {
            campaign,
            items: BTreeMap::new(),
        };
        for ((kind, item), mut values) in self.values {
            if let Some(stats) = PeerStats::of(&mut values) {
                reference
                    .items
                    .entry(kind.key().to_string())
                    .or_default()
                    .insert(item, stats);
            }
        }
        reference
    }
}

impl PeerReference {
    /// The answers of one questionnaire that are far from its peers, largest score first.
    pub fn outliers(&self, kind: RespondentKind, answers: &Map<String, Json>) -> Vec<Outlier> {
        let Some(items) = self.items.get(kind.key()) else {
            return vec![];
        };
        let mut found: Vec<Outlier> = answers
            .iter()
            .filter_map(|(id, value)| {
                let stats = items.get(id)?;
                let value = value.as_f64()?;
                let score = stats.score(value);
                (score.abs() > THRESHOLD).then(|| Outlier {
                    item: id.clone(),
                    value,
                    median: stats.median,
                    score,
                })
            })
            .collect();
        found.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_absolute_deviation_ignores_the_outlier_it_must_catch() {
        let mut values: Vec<f64> = (0..20).map(|n| 80.0 + f64::from(n % 5)).collect();
        values.push(10_000.0);
        let stats = PeerStats::of(&mut values).unwrap();
        assert_eq!(stats.median, 82.0);
        assert_eq!(stats.spread, 1.0);
        assert!(stats.score(10_000.0) > THRESHOLD);
        assert!(stats.score(84.0).abs() < THRESHOLD);
    }

    #[test]
    fn few_or_identical_values_say_nothing() {
        assert_eq!(PeerStats::of(&mut [1.0; 5]), None);
        assert_eq!(PeerStats::of(&mut [3.0; 30]), None);
        // More than half equal: the mean absolute deviation takes over.
        let mut mostly: Vec<f64> = vec![50.0; 20];
        mostly.extend([40.0, 60.0, 55.0]);
        let stats = PeerStats::of(&mut mostly).unwrap();
        assert!(stats.spread > 0.0 && stats.score(500.0) > THRESHOLD);
    }

    #[test]
    fn medians_of_even_and_odd_samples() {
        assert_eq!(median_of(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_of(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
