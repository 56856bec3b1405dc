//! Restitutions read back from the lake (docs/lake.md): a structure's indicators next to
//! its peers', for the people its rights let see them, once its platform is closed.

use crate::lake::{self, Lake, LakeError, Manifest};
use crate::snapshot::{self, SnapshotKind};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tdb_api::{ApiError, Caller, Campaigns, Scope, Structures, TokenVerifier, TtlCache};
use tdb_domain::campaign::{CampaignYear, Platform};
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use tdb_domain::restitution::QUANTILES;
use tdb_domain::rights::{Action, Target};

/// The function behind the API.
pub struct App<Q, S> {
    pub(crate) questionnaires: Q,
    pub(crate) accounts: S,
    pub(crate) campaigns: Campaigns,
    pub(crate) lake: Lake,
    verifier: TokenVerifier,
    structures: Structures,
    /// One DataFusion session per cold start; each snapshot's tables registered once.
    session: SessionContext,
    /// A new snapshot shows within a minute on a warm instance.
    manifests: TtlCache<u16, Option<Manifest>>,
    clock: tdb_api::Clock,
}

impl<Q, S> tdb_api::HasVerifier for App<Q, S> {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// A group's statistics (absent for a group of fewer than five).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupStats {
    pub n: i64,
    pub mean: f64,
    pub min: f64,
    /// `d1`…`d9`, `q1`, `median`, `q3`.
    #[schema(value_type = Object)]
    pub quantiles: BTreeMap<&'static str, f64>,
    pub max: f64,
}

/// One indicator of a structure's restitution.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IndicatorRestitution {
    pub id: String,
    pub label: String,
    /// `ratio` (a fraction: 0.93 for 93 %), `days`, `euros`...
    pub unit: String,
    /// The structure's value (none when an input is missing or a denominator is zero).
    pub value: Option<f64>,
    /// Where it stands among its category's structures, nationally, from 0 (lowest) to 1
    /// (highest): SQL's `percent_rank`. None outside a group of five or more, or when the
    /// questionnaire was not validated.
    pub rank_national: Option<f64>,
    pub rank_region: Option<f64>,
    /// The category's statistics nationally, in the region, in the peer group.
    pub national: Option<GroupStats>,
    pub regional: Option<GroupStats>,
    pub peer_group: Option<GroupStats>,
    /// The previous campaign's value, if the structure had one.
    pub previous: Option<f64>,
    /// Every campaign's value in the lake, oldest first.
    pub series: Vec<SeriesPoint>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub campaign: u16,
    pub value: Option<f64>,
}

/// A structure's restitution of one campaign.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Restitution {
    pub campaign: u16,
    pub finess: String,
    pub name: String,
    pub category: String,
    pub peer_group: String,
    pub region: Option<String>,
    /// The snapshot it is read from, and whether it is the `final` one or a `preview`.
    pub snapshot: String,
    pub kind: String,
    pub indicators: Vec<IndicatorRestitution>,
}

/// The structure's own rows of a snapshot's indicators.
#[derive(Default)]
struct Own {
    /// By indicator: unit and value.
    values: BTreeMap<String, (String, Option<f64>)>,
    category: String,
    peer_group: String,
    region: Option<String>,
    name: Option<String>,
}

/// Which territory and platform an export is about.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// A region's code (`84`).
    pub region: Option<u8>,
    /// A département's code (`69`, `2A`).
    pub departement: Option<String>,
    /// `generic` (the default) or `sad`.
    pub platform: Option<String>,
}

/// How long an export's link works, at most (a link signed with temporary credentials
/// stops with them).
const EXPORT_LINK: Duration = Duration::from_secs(300);
/// The export format's version, in its files' keys: a new version writes new files.
const EXPORT_FORMAT: u32 = 1;

/// Where to download an export.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportReady {
    /// A link to the CSV file, without a token, working for at most `expires_in` seconds.
    pub url: String,
    pub expires_in: u64,
    /// The file's name (`-apercu` at the end for a preview).
    pub file: String,
    /// The snapshot it is read from, and whether it is the `final` one or a `preview`.
    pub snapshot: String,
    pub kind: String,
}

/// What asking for a snapshot did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotRequested {
    /// The lake key of the request: the snapshot function takes it from there.
    pub event: String,
}

fn lake_error(e: LakeError) -> ApiError {
    tracing::error!(error = %e, "lake");
    ApiError::unavailable()
}

impl<Q: QuestionnaireStore, S: AccountStore> App<Q, S> {
    pub fn new(
        questionnaires: Q,
        accounts: S,
        campaigns: Campaigns,
        lake: Lake,
        verifier: TokenVerifier,
        clock: tdb_api::Clock,
    ) -> Result<App<Q, S>, LakeError> {
        let session = lake.session()?;
        Ok(App {
            questionnaires,
            accounts,
            campaigns,
            lake,
            verifier,
            structures: Structures::default(),
            session,
            manifests: TtlCache::new(Duration::from_secs(60), 64),
            clock,
        })
    }

    /// A campaign's final manifest, trusted for a minute by a warm instance. The absence of
    /// one is trusted too for past campaigns only, and a preview is read each time: the
    /// closure's final snapshot shows at once.
    async fn manifest(&self, year: CampaignYear, past: bool) -> Result<Option<Manifest>, ApiError> {
        if let Some(manifest) = self.manifests.get(&year.value()) {
            return Ok(manifest);
        }
        let manifest = self.lake.manifest(year).await.map_err(lake_error)?;
        let last = match &manifest {
            Some(m) => m.kind == SnapshotKind::Final.key(),
            None => past,
        };
        if last {
            self.manifests.insert(year.value(), manifest.clone());
        }
        Ok(manifest)
    }

    /// The name a snapshot's table has in the session, registered the first time.
    async fn table(&self, manifest: &Manifest, table: &str) -> Result<Option<String>, ApiError> {
        let files = match manifest.tables.get(table) {
            Some(files) if !files.files.is_empty() => files,
            _ => return Ok(None),
        };
        let name = format!(
            "{table}_{}_{}",
            manifest.campaign,
            manifest.snapshot.replace(['-'], "_").to_lowercase()
        );
        if !self
            .session
            .table_exist(name.as_str())
            .map_err(|e| lake_error(e.into()))?
        {
            self.lake
                .register(&self.session, &name, &files.files)
                .await
                .map_err(lake_error)?;
        }
        Ok(Some(name))
    }

    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, ApiError> {
        let frame = self
            .session
            .sql(sql)
            .await
            .map_err(|e| lake_error(e.into()))?;
        frame.collect().await.map_err(|e| lake_error(e.into()))
    }

    /// The campaign's snapshot the caller may read for `platform`: the final one once the
    /// platform is closed; a national administrator also reads a preview before.
    async fn readable(
        &self,
        caller: &Caller,
        year: CampaignYear,
        platform: Platform,
    ) -> Result<Manifest, ApiError> {
        let closed = self
            .questionnaires
            .closure(year, platform)
            .await
            .map_err(ApiError::from_store)?
            .is_some();
        let national = caller
            .authorize(Action::CloseCampaign, &Target::National)
            .is_ok();
        match self.manifest(year, false).await? {
            Some(m) if national => Ok(m),
            Some(m) if closed && m.kind == SnapshotKind::Final.key() => Ok(m),
            // The snapshot function takes a minute or so after the closure's event; a
            // preview of the fiabilisation is not what structures are restituted.
            _ if closed => Err(ApiError::conflict(
                "snapshot_pending",
                "the campaign is closed and its snapshot is being taken: try again in a minute",
            )),
            _ => Err(ApiError::conflict(
                "not_closed",
                "restitutions open once the campaign is closed",
            )),
        }
    }

    /// `GET /restitutions/{campaign}/{finess}`.
    pub(crate) async fn restitution(
        &self,
        caller: &Caller,
        year: u16,
        finess: &str,
    ) -> Result<Restitution, ApiError> {
        let (year, definitions) = self.campaigns.year(year)?;
        // A read: the token's roles stand for its ten minutes.
        let structure = self.structures.respondent(&self.accounts, finess).await?;
        caller.authorize(
            Action::ViewRestitutions,
            &Target::Structure(structure.target()),
        )?;
        let manifest = self
            .readable(caller, year, structure.kind.platform())
            .await?;
        let finess = structure.finess.to_string();
        let Some(mut own) = self.own(&manifest, &finess).await? else {
            return Err(ApiError::conflict(
                "no_snapshot",
                "the campaign has no snapshot yet",
            ));
        };
        if own.values.is_empty() {
            match structure.kind {
                tdb_domain::category::RespondentKind::Esms(_) => {
                    return Err(ApiError::new(
                        404,
                        "not_in_snapshot",
                        "the structure had no questionnaire when the snapshot was taken",
                    ));
                }
                // An OG's own questionnaire has no indicator (its ESMS' restitutions are
                // theirs): it is named with its attributes, and no indicator.
                tdb_domain::category::RespondentKind::Og => {
                    own.category = structure.kind.key().to_string();
                    own.peer_group = tdb_domain::restitution::peer_group(structure.kind, None);
                    own.region = structure
                        .departement()
                        .region()
                        .map(|r| format!("{:02}", r.code()));
                }
            }
        }
        let mut ranks = self.ranks(&manifest, &finess).await?;
        let mut groups = self.groups(&manifest, &own).await?;
        let series = self.series(year, &finess).await?;
        let Own {
            mut values,
            category,
            peer_group,
            region,
            name,
        } = own;
        let definition = definitions.for_kind(structure.kind);
        let indicators = definition
            .indicators()
            .iter()
            .filter_map(|indicator| {
                let (unit, value) = values.remove(&indicator.id)?;
                let (rank_national, rank_region) =
                    ranks.remove(&indicator.id).unwrap_or((None, None));
                let mut take =
                    |scope: &str| groups.remove(&(indicator.id.clone(), scope.to_string()));
                let series: Vec<SeriesPoint> = series
                    .iter()
                    .map(|(campaign, values)| SeriesPoint {
                        campaign: *campaign,
                        value: if *campaign == year.value() {
                            value
                        } else {
                            values.get(&indicator.id).copied().flatten()
                        },
                    })
                    .collect();
                let previous = series
                    .iter()
                    .find(|p| p.campaign + 1 == year.value())
                    .and_then(|p| p.value);
                Some(IndicatorRestitution {
                    id: indicator.id.clone(),
                    label: indicator.label.clone(),
                    unit,
                    value,
                    rank_national,
                    rank_region,
                    national: take("national"),
                    regional: take("region"),
                    peer_group: take("peer_group"),
                    previous,
                    series,
                })
            })
            .collect();
        Ok(Restitution {
            campaign: year.value(),
            finess: structure.finess.display().to_string(),
            name: name.unwrap_or_else(|| structure.name.clone()),
            category,
            peer_group,
            region,
            snapshot: manifest.snapshot.clone(),
            kind: manifest.kind.clone(),
            indicators,
        })
    }

    /// The structure's row of each indicator in the snapshot, with its attributes; none when
    /// the snapshot has no indicators.
    async fn own(&self, manifest: &Manifest, finess: &str) -> Result<Option<Own>, ApiError> {
        let Some(indicators) = self.table(manifest, lake::INDICATORS).await? else {
            return Ok(None);
        };
        // The FINESS is checked (digits, 2A or 2B): it is safe in the text.
        let batches = self
            .query(&format!(
                "SELECT indicator, unit, value, category, peer_group, region, name FROM {indicators} \
                 WHERE finess = '{finess}'"
            ))
            .await?;
        let mut own = Own::default();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let text = |c: usize| text(batch, c, row);
                own.values.insert(
                    text(0).unwrap_or_default(),
                    (text(1).unwrap_or_default(), float(batch, 2, row)),
                );
                own.category = text(3).unwrap_or_default();
                own.peer_group = text(4).unwrap_or_default();
                own.region = text(5);
                own.name = text(6);
            }
        }
        Ok(Some(own))
    }

    /// The structure's percentile ranks by indicator: national, regional.
    async fn ranks(
        &self,
        manifest: &Manifest,
        finess: &str,
    ) -> Result<BTreeMap<String, (Option<f64>, Option<f64>)>, ApiError> {
        let mut ranks = BTreeMap::new();
        let Some(positions) = self.table(manifest, lake::POSITIONS).await? else {
            return Ok(ranks);
        };
        for batch in self
            .query(&format!(
                "SELECT indicator, rank_national, rank_region FROM {positions} WHERE finess = '{finess}'"
            ))
            .await?
        {
            for row in 0..batch.num_rows() {
                ranks.insert(
                    text(&batch, 0, row).unwrap_or_default(),
                    (float(&batch, 1, row), float(&batch, 2, row)),
                );
            }
        }
        Ok(ranks)
    }

    /// The statistics of the structure's category nationally, in its region and in its
    /// peer group, by (indicator, scope). Groups under five are not in the table.
    async fn groups(
        &self,
        manifest: &Manifest,
        own: &Own,
    ) -> Result<BTreeMap<(String, String), GroupStats>, ApiError> {
        let mut groups = BTreeMap::new();
        let Some(benchmarks) = self.table(manifest, lake::BENCHMARKS).await? else {
            return Ok(groups);
        };
        let quantiles: Vec<&str> = QUANTILES.iter().map(|(n, _)| *n).collect();
        let quote = |s: &str| s.replace('\'', "''");
        for batch in self
            .query(&format!(
                "SELECT indicator, scope, n, mean, min, {}, max FROM {benchmarks} \
                 WHERE category = '{}' AND (scope = 'national' OR (scope = 'region' AND code = '{}') \
                 OR (scope = 'peer_group' AND code = '{}'))",
                quantiles.join(", "),
                quote(&own.category),
                quote(own.region.as_deref().unwrap_or("")),
                quote(&own.peer_group),
            ))
            .await?
        {
            for row in 0..batch.num_rows() {
                let text = |c: usize| text(&batch, c, row).unwrap_or_default();
                let stats = GroupStats {
                    n: batch.column(2).as_primitive::<Int64Type>().value(row),
                    mean: float(&batch, 3, row).unwrap_or(f64::NAN),
                    min: float(&batch, 4, row).unwrap_or(f64::NAN),
                    quantiles: QUANTILES
                        .iter()
                        .enumerate()
                        .map(|(i, (q, _))| (*q, float(&batch, 5 + i, row).unwrap_or(f64::NAN)))
                        .collect(),
                    max: float(&batch, 5 + QUANTILES.len(), row).unwrap_or(f64::NAN),
                };
                groups.insert((text(0), text(1)), stats);
            }
        }
        Ok(groups)
    }

    /// `GET /restitutions/{campaign}/export`: a territory's structures of one platform, in
    /// the national export's format, written once per snapshot in the lake bucket and handed
    /// out as a short-lived link (a region's file is larger than a Lambda answer can be).
    pub(crate) async fn export(
        &self,
        caller: &Caller,
        year: u16,
        query: &ExportQuery,
    ) -> Result<ExportReady, ApiError> {
        let (year, definitions) = self.campaigns.year(year)?;
        let scope = Scope::of(query.region, query.departement.as_deref())?;
        if scope.national {
            return Err(ApiError::invalid(
                "region",
                "ask for a region or a département; the whole country is in the lake (docs/lake.md)",
            ));
        }
        caller.authorize(Action::Export, &scope.target)?;
        let platform = match query.platform.as_deref() {
            None | Some("generic") => Platform::Generic,
            Some("sad") => Platform::Sad,
            Some(_) => return Err(ApiError::invalid("platform", "generic or sad")),
        };
        let manifest = self.readable(caller, year, platform).await?;
        let Some(table) = self
            .table(&manifest, &format!("questionnaires_{}", platform.key()))
            .await?
        else {
            return Err(ApiError::conflict(
                "no_snapshot",
                "the campaign has no snapshot yet",
            ));
        };
        let file = format!(
            "export-tdbesms-{year}-{}-{}{}.csv",
            scope.name.replace(':', "-"),
            platform.key(),
            if manifest.kind == SnapshotKind::Final.key() {
                ""
            } else {
                "-apercu"
            }
        );
        // The snapshot is immutable; the format's version changes when the columns do.
        let key = format!(
            "exports/campaign={year}/snapshot={}/v{EXPORT_FORMAT}/{file}",
            manifest.snapshot
        );
        if !self.lake.exists(&key).await.map_err(lake_error)? {
            let body = self
                .export_csv(&table, &scope, definitions.platform(platform))
                .await?;
            self.lake
                .put_download(&key, body.into_bytes(), "text/csv; charset=utf-8", &file)
                .await
                .map_err(lake_error)?;
        }
        let url = self
            .lake
            .download_url(&key, EXPORT_LINK)
            .await
            .map_err(lake_error)?;
        Ok(ExportReady {
            url,
            expires_in: EXPORT_LINK.as_secs(),
            file,
            snapshot: manifest.snapshot,
            kind: manifest.kind,
        })
    }

    /// A territory's rows of a platform's table, as the national export writes them.
    async fn export_csv(
        &self,
        table: &str,
        scope: &Scope,
        definition: &tdb_domain::questionnaire::Definition,
    ) -> Result<String, ApiError> {
        // Département codes come from the referential: safe in the text.
        let departements: Vec<String> = scope
            .departements
            .iter()
            .map(|d| format!("'{d}'"))
            .collect();
        let batches = self
            .query(&format!(
                "SELECT * FROM {table} WHERE departement IN ({}) ORDER BY departement, finess",
                departements.join(", ")
            ))
            .await?;
        Ok(tdb_api::csv::csv(
            &crate::export::header(definition),
            crate::export::rows(definition, &batches),
        ))
    }

    /// The structure's indicator values in the campaigns of the lake, up to `year` and
    /// at most `SERIES` of them.
    async fn series(
        &self,
        year: CampaignYear,
        finess: &str,
    ) -> Result<BTreeMap<u16, BTreeMap<String, Option<f64>>>, ApiError> {
        const SERIES: u16 = 6;
        let mut series = BTreeMap::new();
        for campaign in year.value().saturating_sub(SERIES - 1)..=year.value() {
            let Ok(y) = CampaignYear::new(campaign) else {
                continue;
            };
            let Some(manifest) = self.manifest(y, y != year).await? else {
                continue;
            };
            let Some(table) = self.table(&manifest, lake::INDICATORS).await? else {
                continue;
            };
            let mut values = BTreeMap::new();
            for batch in self
                .query(&format!(
                    "SELECT indicator, value FROM {table} WHERE finess = '{finess}'"
                ))
                .await?
            {
                for row in 0..batch.num_rows() {
                    values.insert(
                        text(&batch, 0, row).unwrap_or_default(),
                        float(&batch, 1, row),
                    );
                }
            }
            series.insert(campaign, values);
        }
        Ok(series)
    }

    /// `POST /restitutions/{campaign}/snapshot`: a preview snapshot, asked by a national
    /// administrator; the snapshot function takes it from the lake's event.
    pub(crate) async fn request_snapshot(
        &self,
        caller: &Caller,
        year: u16,
    ) -> Result<SnapshotRequested, ApiError> {
        let (year, _) = self.campaigns.year(year)?;
        let caller = caller.clone().current(&self.accounts).await?;
        caller.authorize(Action::CloseCampaign, &Target::National)?;
        let key = snapshot_event_key(year);
        let event = serde_json::json!({
            "campaign": year.value(),
            "kind": SnapshotKind::Preview.key(),
            "asked_at": (self.clock)(),
        });
        self.lake
            .put(&key, event.to_string().into_bytes())
            .await
            .map_err(lake_error)?;
        Ok(SnapshotRequested { event: key })
    }
}

/// Where a preview's request lands in the lake.
pub fn snapshot_event_key(year: CampaignYear) -> String {
    format!("events/snapshot/{year}.json")
}

/// A text cell, whichever string layout the reader chose (Parquet reads as views).
fn text(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    let c = batch.column(column);
    if c.is_null(row) {
        return None;
    }
    match c.data_type() {
        DataType::Utf8View => Some(c.as_string_view().value(row).to_string()),
        DataType::LargeUtf8 => Some(c.as_string::<i64>().value(row).to_string()),
        DataType::Utf8 => Some(c.as_string::<i32>().value(row).to_string()),
        _ => None,
    }
}

fn float(batch: &RecordBatch, column: usize, row: usize) -> Option<f64> {
    let c = batch.column(column).as_primitive::<Float64Type>();
    (!c.is_null(row)).then(|| c.value(row))
}

/// Takes the snapshot an event of the lake asks for: a platform's closure
/// (`events/closure/<year>-<platform>.json`, final) or a preview
/// (`events/snapshot/<year>.json`). Other keys are ignored.
pub async fn on_event<Q: QuestionnaireStore, S: AccountStore>(
    questionnaires: &Q,
    accounts: &S,
    campaigns: &Campaigns,
    lake: &Lake,
    key: &str,
    now: i64,
) -> Result<Option<Manifest>, LakeError> {
    let (kind, rest) = if let Some(rest) = key.strip_prefix("events/closure/") {
        (SnapshotKind::Final, rest)
    } else if let Some(rest) = key.strip_prefix("events/snapshot/") {
        (SnapshotKind::Preview, rest)
    } else {
        return Ok(None);
    };
    let Some(year) = rest
        .get(..4)
        .and_then(|y| y.parse::<u16>().ok())
        .and_then(|y| CampaignYear::new(y).ok())
    else {
        return Ok(None);
    };
    let Ok((year, definitions)) = campaigns.year(year.value()) else {
        return Ok(None);
    };
    // A preview never replaces a final snapshot.
    if kind == SnapshotKind::Preview
        && lake
            .manifest(year)
            .await?
            .is_some_and(|m| m.kind == SnapshotKind::Final.key())
    {
        return Ok(None);
    }
    let outcome =
        snapshot::take(questionnaires, accounts, definitions, lake, year, kind, now).await?;
    Ok(Some(outcome.manifest))
}

/// A restitution as CSV for French spreadsheets: one line per indicator, the snapshot and
/// its kind (`final` or `preview`), the structure's value, previous value and ranks, then
/// each group's statistics (empty for a group of fewer than five). Values are exact, in the
/// indicator's unit, fractions for ratios.
pub fn restitution_csv(restitution: &Restitution) -> String {
    const SCOPES: [&str; 3] = ["france", "region", "groupe"];
    let mut header: Vec<String> = [
        "campagne",
        "instantane",
        "nature",
        "finess",
        "indicateur",
        "libelle",
        "unite",
        "valeur",
        "valeur_precedente",
        "rang_national",
        "rang_regional",
    ]
    .map(String::from)
    .to_vec();
    for scope in SCOPES {
        header.push(format!("n_{scope}"));
        header.push(format!("moyenne_{scope}"));
        header.push(format!("min_{scope}"));
        header.extend(QUANTILES.iter().map(|(q, _)| format!("{q}_{scope}")));
        header.push(format!("max_{scope}"));
    }
    let number = |v: Option<f64>| v.map_or(String::new(), tdb_api::csv::number);
    let rows = restitution.indicators.iter().map(|i| {
        let mut row = vec![
            restitution.campaign.to_string(),
            restitution.snapshot.clone(),
            restitution.kind.clone(),
            restitution.finess.replace(' ', ""),
            i.id.clone(),
            i.label.clone(),
            i.unit.clone(),
            number(i.value),
            number(i.previous),
            number(i.rank_national),
            number(i.rank_region),
        ];
        for group in [&i.national, &i.regional, &i.peer_group] {
            match group {
                Some(g) => {
                    row.push(g.n.to_string());
                    row.push(number(Some(g.mean)));
                    row.push(number(Some(g.min)));
                    row.extend(
                        QUANTILES
                            .iter()
                            .map(|(q, _)| number(g.quantiles.get(q).copied())),
                    );
                    row.push(number(Some(g.max)));
                }
                None => row.extend((0..QUANTILES.len() + 4).map(|_| String::new())),
            }
        }
        row
    });
    tdb_api::csv::csv(&header, rows)
}
