//! The financial prefill (domain §7): a national administrator imports the values of the
//! financial statements (ERRD / compte administratif) per FINESS. A prefilled value fills
//! an item nobody has entered; a structure's correction is never overwritten by a later
//! import, and the imported value stays visible next to it.

use crate::App;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use tdb_api::{ApiError, Caller};
use tdb_domain::Finess;
use tdb_domain::ports::{
    AccountStore, AuditEntry, AuditLog, AuditedWrite, IdempotencyStore, ItemMeta, Origin,
    QuestionnaireStore, StoreError,
};
use tdb_domain::rights::{Action, Target};

/// A line or value of the file that was not imported.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrefillRejection {
    pub line: usize,
    pub field: Option<String>,
    pub reason: String,
}

/// What a prefill import did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct PrefillSummary {
    pub dry_run: bool,
    /// Structures whose questionnaire received at least one value.
    pub structures: usize,
    /// Values written as answers (the item had no answer, or a previous prefill).
    pub values_set: usize,
    /// Values kept aside because the structure had corrected the item, or the
    /// questionnaire is validated or closed.
    pub corrections_kept: usize,
    /// Values identical to what was already imported.
    pub unchanged: usize,
    /// Cells of items that do not apply to the structure's category.
    pub not_applicable: usize,
    /// The first 1,000 rejections.
    pub rejected: Vec<PrefillRejection>,
    pub rejected_total: usize,
}

/// A line of the file: its number, its FINESS and its non-empty `(item, cell)` pairs.
type Row<'f> = (usize, Finess, Vec<(&'f str, &'f str)>);

/// `"12 345,67"` or `"12345.67"` as a JSON number.
fn number(cell: &str) -> Option<Json> {
    let cleaned: String = cell
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    let value: f64 = cleaned.parse().ok()?;
    if cleaned.contains('.') {
        serde_json::Number::from_f64(value).map(Json::Number)
    } else {
        cleaned.parse::<i64>().ok().map(Json::from)
    }
}

impl<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore> App<Q, A, S> {
    pub(crate) async fn prefill(
        &self,
        caller: &Caller,
        year: u16,
        file: &[u8],
        dry_run: bool,
    ) -> Result<PrefillSummary, ApiError> {
        let caller = &caller.clone().current(&self.structures).await?;
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let (year, definitions) = self.campaigns.year(year)?;
        // After closure the answers are frozen: restitutions are computed from them. Each
        // platform has its calendar; a line of a closed platform is refused below.
        let closed = |platform| {
            matches!(
                definitions
                    .platform(platform)
                    .campaign()
                    .phase_on(self.today()),
                tdb_domain::campaign::Phase::Closed | tdb_domain::campaign::Phase::Restitution
            )
        };
        if tdb_domain::campaign::Platform::ALL.into_iter().all(closed) {
            return Err(ApiError::conflict(
                "campaign_closed",
                "the campaign is closed: its answers are frozen",
            ));
        }
        let text = std::str::from_utf8(file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file))
            .map_err(|_| ApiError::invalid("body", "the file is not UTF-8 text"))?;
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
        let platforms = [
            definitions.platform(tdb_domain::campaign::Platform::Generic),
            definitions.platform(tdb_domain::campaign::Platform::Sad),
        ];
        if let Some(twice) = header[1..]
            .iter()
            .enumerate()
            .find(|(i, c)| header[1..*i + 1].contains(c))
            .map(|(_, c)| c)
        {
            return Err(ApiError::invalid(
                "line 1",
                format!("`{twice}` appears twice"),
            ));
        }
        for column in &header[1..] {
            let financial = platforms
                .iter()
                .any(|d| d.item(column).is_some_and(|i| i.financial && !i.computed));
            if !financial {
                return Err(ApiError::invalid(
                    "line 1",
                    format!("`{column}` is not a financial item of the {year} questionnaires"),
                ));
            }
        }
        let mut summary = PrefillSummary {
            dry_run,
            ..PrefillSummary::default()
        };
        let mut rows: Vec<Row> = Vec::new();
        for (n, line) in lines {
            let line_number = n + 1;
            if line.trim().is_empty() {
                continue;
            }
            let cells: Vec<&str> = line.split(';').map(str::trim).collect();
            if cells.len() != header.len() {
                summary.rejected.push(PrefillRejection {
                    line: line_number,
                    field: None,
                    reason: format!(
                        "{} fields where the header has {} (a `;` inside a value?)",
                        cells.len(),
                        header.len()
                    ),
                });
                continue;
            }
            match Finess::parse(cells[0]) {
                Err(e) => summary.rejected.push(PrefillRejection {
                    line: line_number,
                    field: Some("finess".into()),
                    reason: e.to_string(),
                }),
                Ok(finess) => rows.push((
                    line_number,
                    finess,
                    header[1..]
                        .iter()
                        .zip(cells.iter().skip(1))
                        .filter(|(_, cell)| !cell.is_empty())
                        .map(|(column, cell)| (*column, *cell))
                        .collect(),
                )),
            }
        }
        let finess: Vec<Finess> = rows.iter().map(|(_, f, _)| *f).collect();
        let known: HashMap<Finess, _> = self
            .structures
            .structures(&finess)
            .await
            .map_err(ApiError::from_store)?
            .into_iter()
            .map(|s| (s.finess, s))
            .collect();
        for (line, finess, cells) in rows {
            let reject = |reason: String| PrefillRejection {
                line,
                field: Some("finess".into()),
                reason,
            };
            let Some(structure) = known.get(&finess) else {
                summary
                    .rejected
                    .push(reject("not in the referential".into()));
                continue;
            };
            if let Some(principal) = structure.principal {
                summary.rejected.push(reject(format!(
                    "a secondary FINESS: import it under its principal {principal}"
                )));
                continue;
            }
            if closed(structure.kind.platform()) {
                summary.rejected.push(reject(
                    "the campaign of its platform is closed: its answers are frozen".into(),
                ));
                continue;
            }
            let definition = definitions.for_kind(structure.kind);
            let mut values = Map::new();
            for (column, cell) in cells {
                let Some(item) = definition.item(column) else {
                    summary.not_applicable += 1;
                    continue;
                };
                if item.mask & structure.kind.bit() == 0 {
                    summary.not_applicable += 1;
                    continue;
                }
                let value = number(cell).ok_or_else(|| "not a number".to_string());
                let checked = value.and_then(|v| {
                    let mut scratch = definition.empty_answers();
                    definition
                        .set_answer(&mut scratch, structure.kind, column, &v)
                        .map(|()| v)
                        .map_err(|e| e.reason.to_string())
                });
                match checked {
                    Ok(v) => {
                        values.insert(column.to_string(), v);
                    }
                    Err(reason) => summary.rejected.push(PrefillRejection {
                        line,
                        field: Some(column.to_string()),
                        reason,
                    }),
                }
            }
            if values.is_empty() {
                continue;
            }
            match self
                .apply_prefill(
                    caller,
                    year,
                    finess,
                    definition,
                    values,
                    dry_run,
                    &mut summary,
                )
                .await
            {
                Ok(()) => summary.structures += 1,
                // Not opened, or kept busy by saves: that line only; the rest goes on.
                Err(e) if e.status == 404 || e.status == 409 => {
                    summary.rejected.push(reject(e.message))
                }
                Err(e) => return Err(e),
            }
        }
        summary.rejected.sort_by_key(|r| r.line);
        summary.rejected_total = summary.rejected.len();
        summary.rejected.truncate(1000);
        tracing::info!(campaign = %year, dry_run, structures = summary.structures,
            values_set = summary.values_set, corrections_kept = summary.corrections_kept,
            rejected = summary.rejected_total, "financial prefill");
        Ok(summary)
    }

    /// Writes one structure's prefilled values, on its version, again if a save landed
    /// meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn apply_prefill(
        &self,
        caller: &Caller,
        year: tdb_domain::CampaignYear,
        finess: Finess,
        definition: &tdb_domain::questionnaire::Definition,
        values: Map<String, Json>,
        dry_run: bool,
        summary: &mut PrefillSummary,
    ) -> Result<(), ApiError> {
        for _ in 0..5 {
            let previous = self.questionnaires.get_with_previous(year, finess).await;
            let previous = previous.map_err(ApiError::from_store)?;
            let stored = previous.current.ok_or_else(tdb_api::not_opened)?;
            let last_year = previous
                .previous
                .map(|q| definition.carry_over(stored.respondent.kind, &q.answers));
            let version = stored.version + 1;
            let mut next = stored.clone();
            let (mut set, mut kept, mut same) = (0, 0, 0);
            let mut changes = Map::new();
            for (id, value) in &values {
                if stored.prefilled.get(id) == Some(value) {
                    same += 1;
                    continue;
                }
                next.prefilled.insert(id.clone(), value.clone());
                // An answer not known to come from a prefill is the structure's.
                let corrected = stored.answers.contains_key(id)
                    && stored
                        .items
                        .get(id)
                        .is_none_or(|m| m.origin != Origin::Prefill);
                // Validated parts and validated subsidiarity items keep their answers.
                let frozen = stored.workflow.item_refusal(definition, id).is_some();
                if corrected || frozen {
                    kept += 1;
                    continue;
                }
                set += 1;
                changes.insert(
                    id.clone(),
                    serde_json::json!({ "old": stored.answers.get(id).cloned().unwrap_or(Json::Null), "new": value }),
                );
                next.answers.insert(id.clone(), value.clone());
                next.items.insert(
                    id.clone(),
                    ItemMeta {
                        version,
                        origin: Origin::Prefill,
                        by: Some(caller.account.to_string()),
                    },
                );
            }
            if set + kept == 0 {
                summary.unchanged += same;
                return Ok(());
            }
            if dry_run {
                summary.values_set += set;
                summary.corrections_kept += kept;
                summary.unchanged += same;
                return Ok(());
            }
            let answers = definition.carry_over(stored.respondent.kind, &next.answers);
            let evaluation =
                definition.evaluate(stored.respondent.kind, &answers, last_year.as_ref());
            next.workflow
                .forget_acknowledgements(definition, changes.keys().map(String::as_str));
            next.record(definition, &evaluation);
            next.version = version;
            next.updated_at = (self.clock)();
            let entry = AuditEntry {
                at: (self.clock)() * 1000,
                actor: caller.account.to_string(),
                action: "prefill".into(),
                detail: serde_json::json!({
                    "version": version,
                    "origin": Origin::Prefill,
                    "changes": changes,
                    // Imported values kept beside a correction or a frozen questionnaire.
                    "kept_aside": kept,
                }),
            };
            let write = AuditedWrite {
                before: &stored,
                after: &next,
                entry: &entry,
                held: None,
            };
            match self.questionnaires.put_audited(write).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e)),
            }
            summary.values_set += set;
            summary.corrections_kept += kept;
            summary.unchanged += same;
            return Ok(());
        }
        Err(ApiError::conflict(
            "concurrent_change",
            "a questionnaire kept changing during the import; import again (it is idempotent)",
        ))
    }
}
