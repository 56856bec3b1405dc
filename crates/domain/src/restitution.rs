//! What restitutions compare a structure with (docs/lake.md): its peer group, the
//! statistics shown for a group of peers, and the rule that keeps a small group's values
//! to itself. The lake computes the statistics with SQL; this module says what they are.

use crate::category::RespondentKind;

/// Groups of fewer structures show no statistics and no values, in every view: a value
/// of a group of two is nearly someone's own.
pub const MIN_GROUP: usize = 5;

/// The quantiles restitutions show, by name: deciles, with the quartiles and the median.
pub const QUANTILES: [(&str, f64); 11] = [
    ("d1", 0.1),
    ("d2", 0.2),
    ("q1", 0.25),
    ("d3", 0.3),
    ("d4", 0.4),
    ("median", 0.5),
    ("d6", 0.6),
    ("d7", 0.7),
    ("q3", 0.75),
    ("d8", 0.8),
    ("d9", 0.9),
];

/// Capacity bands of the peer groups (authorised places, every mode): the lower bounds.
const BANDS: [u32; 4] = [0, 40, 80, 120];

/// A structure's peer group ("groupe homogène"): its category, and for an establishment
/// with places its band of authorised capacity (`EHPAD, 40 à 79 places`). ATIH's exact
/// groups are not public; these are our choice, stable from one campaign to the next.
pub fn peer_group(kind: RespondentKind, places: Option<f64>) -> String {
    let category = match kind {
        RespondentKind::Esms(category) => category.key(),
        RespondentKind::Og => return "OG".to_string(),
    };
    let Some(places) = places.filter(|p| p.is_finite() && *p > 0.0) else {
        return format!("{category}, capacité non renseignée");
    };
    let places = places.round() as u32;
    let band = BANDS.iter().rposition(|&low| places >= low).unwrap_or(0);
    match BANDS.get(band + 1) {
        Some(next) if band == 0 => format!("{category}, moins de {next} places"),
        Some(next) => format!("{category}, {} à {} places", BANDS[band], next - 1),
        None => format!("{category}, {} places et plus", BANDS[band]),
    }
}

/// The quantile `p` of sorted values, linearly interpolated between the two nearest ranks:
/// `x[h] + (h - ⌊h⌋)(x[⌊h⌋+1] - x[⌊h⌋])` with `h = (n - 1) p`, the definition of DuckDB's
/// `quantile_cont` and DataFusion's `percentile_cont` (Hyndman and Fan's type 7).
pub fn quantile_cont(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    let low = h.floor() as usize;
    let high = (low + 1).min(last);
    Some(sorted[low] + (h - low as f64) * (sorted[high] - sorted[low]))
}

/// Where `value` stands among its peers' sorted values, from 0 (lowest) to 1 (highest):
/// `(rank - 1) / (n - 1)`, SQL's `percent_rank`, ties taking their lowest rank.
pub fn percent_rank(sorted: &[f64], value: f64) -> Option<f64> {
    match sorted.len() {
        0 => None,
        1 => Some(0.0),
        n => {
            let below = sorted.partition_point(|v| *v < value);
            Some(below as f64 / (n - 1) as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let values = [1.0, 2.0, 4.0, 8.0, 16.0];
        // h = 4 × 0.25 = 1: the second value exactly.
        assert_eq!(quantile_cont(&values, 0.25), Some(2.0));
        // h = 4 × 0.1 = 0.4: 1 + 0.4 × (2 - 1).
        assert!((quantile_cont(&values, 0.1).unwrap() - 1.4).abs() < 1e-12);
        // h = 4 × 0.9 = 3.6: 8 + 0.6 × (16 - 8).
        assert!((quantile_cont(&values, 0.9).unwrap() - 12.8).abs() < 1e-12);
        assert_eq!(quantile_cont(&values, 0.5), Some(4.0));
        assert_eq!(quantile_cont(&[3.0], 0.9), Some(3.0));
        assert_eq!(quantile_cont(&[], 0.5), None);
    }

    #[test]
    fn percent_rank_counts_the_peers_below() {
        let values = [1.0, 2.0, 2.0, 5.0, 9.0];
        assert_eq!(percent_rank(&values, 1.0), Some(0.0));
        assert_eq!(percent_rank(&values, 2.0), Some(0.25));
        assert_eq!(percent_rank(&values, 9.0), Some(1.0));
        assert_eq!(percent_rank(&[4.0], 4.0), Some(0.0));
    }

    #[test]
    fn peer_groups_band_the_capacity() {
        let ehpad = RespondentKind::Esms(Category::Ehpad);
        assert_eq!(peer_group(ehpad, Some(25.0)), "EHPAD, moins de 40 places");
        assert_eq!(peer_group(ehpad, Some(40.0)), "EHPAD, 40 à 79 places");
        assert_eq!(peer_group(ehpad, Some(119.0)), "EHPAD, 80 à 119 places");
        assert_eq!(peer_group(ehpad, Some(300.0)), "EHPAD, 120 places et plus");
        assert_eq!(peer_group(ehpad, None), "EHPAD, capacité non renseignée");
        assert_eq!(peer_group(RespondentKind::Og, Some(10.0)), "OG");
    }
}
