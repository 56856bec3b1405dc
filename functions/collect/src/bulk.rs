//! Bulk entry: an OG (or any structure's Gestionnaire) uploads answers for several
//! structures at once, as CSV (`finess;<item>;<item>...`, one row per FINESS) or JSON
//! (`{"<finess>": {"<item>": value}}`). Each row goes through the same checks and rights
//! as a single save, and is saved whole or refused whole.

use crate::{App, SaveError, SaveMode, ViolationView};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tdb_api::{ApiError, Caller};
use tdb_domain::ports::{AccountStore, AuditLog, IdempotencyStore, QuestionnaireStore};
use tdb_domain::questionnaire::{Definition, ItemType};

/// What happened to one structure's row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkRow {
    pub finess: String,
    /// Line of the CSV file (absent for JSON).
    pub line: Option<usize>,
    /// `saved` (or `would_save` in a dry run), `unchanged` or `refused`.
    pub outcome: &'static str,
    /// Items written (or that would be).
    pub saved: Vec<String>,
    /// Values that failed their item (`[item, reason]`): the row is refused.
    pub rejected: Vec<(String, String)>,
    /// Why the whole row was refused otherwise (rights, phase, unknown FINESS...).
    pub error: Option<String>,
    /// Blocking rules that fail once the row is saved.
    pub blocking: Vec<ViolationView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkSummary {
    pub dry_run: bool,
    pub saved: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub rows: Vec<BulkRow>,
}

/// The most rows one upload may carry: rows are saved one after another within the
/// request's 29 seconds.
const MAX_ROWS: usize = 500;

/// A CSV cell as the JSON answer its item expects.
fn cell_value(definition: &Definition, id: &str, cell: &str) -> Json {
    let numeric = |c: &str| {
        let cleaned: String = c
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == ',' { '.' } else { c })
            .collect();
        match cleaned.parse::<i64>() {
            Ok(i) => Json::from(i),
            Err(_) => cleaned
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::String(c.to_string()), Json::Number),
        }
    };
    match definition.item(id).map(|i| &i.kind) {
        Some(
            ItemType::Integer
            | ItemType::Decimal { .. }
            | ItemType::Money { .. }
            | ItemType::Percentage { .. },
        ) => numeric(cell),
        Some(ItemType::YesNo) => match cell.to_lowercase().as_str() {
            "oui" | "true" | "1" | "o" => Json::Bool(true),
            "non" | "false" | "0" | "n" => Json::Bool(false),
            _ => Json::String(cell.to_string()),
        },
        Some(ItemType::MultipleChoice) => Json::Array(
            cell.split('|')
                .map(|c| Json::String(c.trim().to_string()))
                .collect(),
        ),
        _ => Json::String(cell.to_string()),
    }
}

impl<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore> App<Q, A, S> {
    pub(crate) async fn bulk(
        &self,
        caller: &Caller,
        year: u16,
        file: &[u8],
        dry_run: bool,
    ) -> Result<BulkSummary, ApiError> {
        let (_, definitions) = self.campaigns.year(year)?;
        let file = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
        let text = std::str::from_utf8(file)
            .map_err(|_| ApiError::invalid("body", "the file is not UTF-8 text"))?;
        // Rows as (FINESS, line, raw cells or JSON values).
        let mut rows: Vec<(String, Option<usize>, Map<String, Json>)> = Vec::new();
        if text.trim_start().starts_with('{') {
            let json: Map<String, Json> = serde_json::from_str(text)
                .map_err(|e| ApiError::invalid("body", format!("not a JSON object: {e}")))?;
            for (finess, values) in json {
                let Json::Object(values) = values else {
                    return Err(ApiError::invalid(
                        finess,
                        "expected an object of item ids and values",
                    ));
                };
                rows.push((finess, None, values));
            }
        } else {
            let mut lines = text.lines().enumerate();
            let header: Vec<&str> = lines
                .next()
                .map(|(_, l)| l.split(';').map(str::trim).collect())
                .unwrap_or_default();
            if header.first() != Some(&"finess") || header.len() < 2 {
                return Err(ApiError::invalid(
                    "line 1",
                    "the first line must be finess;<item id>;<item id>...",
                ));
            }
            if let Some((_, twice)) = header[1..]
                .iter()
                .enumerate()
                .find(|(i, c)| header[1..*i + 1].contains(c))
            {
                return Err(ApiError::invalid(
                    "line 1",
                    format!("`{twice}` appears twice"),
                ));
            }
            for (n, line) in lines {
                if line.trim().is_empty() {
                    continue;
                }
                let cells: Vec<&str> = line.split(';').map(str::trim).collect();
                if cells.len() != header.len() {
                    return Err(ApiError::invalid(
                        format!("line {}", n + 1),
                        format!(
                            "{} fields where the header has {} (a `;` inside a value?): nothing was saved",
                            cells.len(),
                            header.len()
                        ),
                    ));
                }
                let raw: Map<String, Json> = header[1..]
                    .iter()
                    .zip(cells.iter().skip(1))
                    .filter(|(_, c)| !c.is_empty())
                    .map(|(h, c)| (h.to_string(), Json::String(c.to_string())))
                    .collect();
                rows.push((cells[0].to_string(), Some(n + 1), raw));
            }
        }
        if rows.len() > MAX_ROWS {
            return Err(ApiError::invalid(
                "body",
                format!("at most {MAX_ROWS} structures per upload"),
            ));
        }
        let mut summary = BulkSummary {
            dry_run,
            saved: 0,
            unchanged: 0,
            refused: 0,
            rows: Vec::with_capacity(rows.len()),
        };
        let mode = SaveMode {
            whole: true,
            dry_run,
            bulk: true,
        };
        for (finess, line, values) in rows {
            let mut row = BulkRow {
                finess: finess.clone(),
                line,
                outcome: "refused",
                saved: vec![],
                rejected: vec![],
                error: None,
                blocking: vec![],
            };
            // CSV cells become typed answers once the structure's questionnaire is known.
            let values = match (
                line,
                self.recent.respondent(&self.structures, &finess).await,
            ) {
                (_, Err(e)) => {
                    row.error = Some(e.message);
                    summary.refused += 1;
                    summary.rows.push(row);
                    continue;
                }
                (None, Ok(_)) => values,
                (Some(_), Ok(structure)) => {
                    let definition = definitions.for_kind(structure.kind);
                    values
                        .into_iter()
                        .map(|(id, cell)| {
                            let value =
                                cell_value(definition, &id, cell.as_str().unwrap_or_default());
                            (id, value)
                        })
                        .collect()
                }
            };
            match self
                .save(caller.clone(), year, &finess, None, values, mode)
                .await
            {
                Ok(result) if !result.rejected.is_empty() => {
                    row.rejected = result
                        .rejected
                        .into_iter()
                        .map(|r| (r.item, r.reason))
                        .collect();
                    summary.refused += 1;
                }
                Ok(result) if result.saved.is_empty() => {
                    row.outcome = "unchanged";
                    summary.unchanged += 1;
                }
                Ok(result) => {
                    row.outcome = if dry_run { "would_save" } else { "saved" };
                    row.saved = result.saved;
                    row.blocking = result
                        .violations
                        .into_iter()
                        .filter(|v| v.severity == "blocking")
                        .collect();
                    summary.saved += 1;
                }
                Err(SaveError::Api(e)) => {
                    row.error = Some(match e.field {
                        Some(field) => format!("{field}: {}", e.message),
                        None => e.message,
                    });
                    summary.refused += 1;
                }
                Err(SaveError::Stale(stale)) => {
                    row.error = Some(stale.message);
                    summary.refused += 1;
                }
            }
            summary.rows.push(row);
        }
        tracing::info!(
            dry_run,
            saved = summary.saved,
            refused = summary.refused,
            "bulk entry"
        );
        Ok(summary)
    }
}
