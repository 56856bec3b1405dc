//! The peer statistics, as SQL over the `indicators` table (docs/lake.md). The same text
//! runs on DataFusion and on DuckDB: `quantile_cont` is exact with linear interpolation in
//! both (DataFusion's alias of `percentile_cont`), see `tdb_domain::restitution`.
//!
//! Only counted questionnaires (validated or checked) with a value enter; a group of fewer
//! than `MIN_GROUP` structures gets no row, and no structure gets a position in it.

use tdb_domain::restitution::{MIN_GROUP, QUANTILES};

/// The scopes of the statistics beyond the national one: the column that groups, which is
/// also the scope's name.
const SCOPES: [&str; 3] = ["region", "departement", "peer_group"];

/// Per indicator × category × scope (national, region, département, peer group): n, mean,
/// min, the deciles with the quartiles and the median, max.
///
/// One scan of the indicators with GROUPING SETS, one set per scope: `grouping(column)` is 0
/// in the set that groups by that column, which names the scope and its code. A structure
/// without a region (or département, or peer group) enters no group of that scope.
pub fn benchmarks_sql() -> String {
    // One list of quantiles per group, from one sort of its values.
    let fractions: Vec<String> = QUANTILES.iter().map(|(_, p)| p.to_string()).collect();
    let quantiles: Vec<String> = QUANTILES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("q[{}] AS {name}", i + 1))
        .collect();
    let scope: String = SCOPES
        .iter()
        .map(|column| format!("WHEN grouping({column}) = 0 THEN '{column}' "))
        .collect();
    let code: String = SCOPES
        .iter()
        .map(|column| format!("WHEN grouping({column}) = 0 THEN {column} "))
        .collect();
    let sets: Vec<String> = SCOPES
        .iter()
        .map(|column| format!("(indicator, category, {column})"))
        .collect();
    format!(
        "WITH grouped AS (\
         SELECT indicator, category, CASE {scope}ELSE 'national' END AS scope, \
         CASE {code}ELSE 'FR' END AS code, \
         count(value) AS n, avg(value) AS mean, min(value) AS min, \
         quantile_cont(value, [{}]) AS q, max(value) AS max \
         FROM indicators WHERE counted AND value IS NOT NULL \
         GROUP BY GROUPING SETS ((indicator, category), {})) \
         SELECT indicator, category, scope, code, n, mean, min, {}, max FROM grouped \
         WHERE n >= {MIN_GROUP} AND code IS NOT NULL \
         ORDER BY indicator, category, scope, code",
        fractions.join(", "),
        sets.join(", "),
        quantiles.join(", ")
    )
}

/// Each counted structure's place among its category's peers, nationally and in its
/// region: `percent_rank` (0 lowest, 1 highest) and the group's size, left empty in a
/// group of fewer than `MIN_GROUP`.
pub fn positions_sql() -> String {
    let position = |scope: &str, partition: &str| {
        format!(
            "CASE WHEN count(value) OVER (PARTITION BY {partition}) >= {MIN_GROUP} \
             THEN percent_rank() OVER (PARTITION BY {partition} ORDER BY value) END AS rank_{scope}, \
             CASE WHEN count(value) OVER (PARTITION BY {partition}) >= {MIN_GROUP} \
             THEN count(value) OVER (PARTITION BY {partition}) END AS n_{scope}"
        )
    };
    format!(
        "SELECT finess, indicator, category, region, value, {}, {} FROM indicators \
         WHERE counted AND value IS NOT NULL ORDER BY finess, indicator",
        position("national", "indicator, category"),
        position("region", "indicator, category, region"),
    )
}
