//! A campaign's snapshot (docs/lake.md): every questionnaire as a row of its platform's
//! table (attributes, states, answers, indicators), every indicator value as a row of the
//! `indicators` table, then the peer statistics and positions computed from it with SQL,
//! all written under a new snapshot id before the manifest names it.

use crate::lake::{self, Lake, LakeError, Manifest, TableFiles};
use crate::stats;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::{CampaignYear, Platform, QuestionnaireStatus};
use tdb_domain::category::RespondentKind;
use tdb_domain::finess::Finess;
use tdb_domain::ports::{AccountStore, QuestionnaireStore, StoredQuestionnaire};
use tdb_domain::questionnaire::{CampaignDefinitions, Definition, IndicatorValue, ItemType};
use tdb_domain::restitution::peer_group;

/// Whether a snapshot is the campaign's final one or a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Taken at closure: what restitutions show.
    Final,
    /// Asked by a national administrator during fiabilisation.
    Preview,
}

impl SnapshotKind {
    pub fn key(self) -> &'static str {
        match self {
            SnapshotKind::Final => "final",
            SnapshotKind::Preview => "preview",
        }
    }
}

/// The attributes every row of a questionnaire carries.
const ATTRIBUTES: [&str; 13] = [
    "finess",
    "name",
    "category",
    "peer_group",
    "region",
    "departement",
    "og",
    "legal_entity",
    "legal_name",
    "status",
    "counted",
    "places",
    "fill_rate",
];

/// Whether a questionnaire's values enter the peer statistics: validated (or checked).
fn counted(status: QuestionnaireStatus) -> bool {
    matches!(
        status,
        QuestionnaireStatus::Validated | QuestionnaireStatus::Checked
    )
}

/// Authorised places, every mode, from the capacity items (when the definition asks them).
fn places(answers: &serde_json::Map<String, Json>) -> Option<f64> {
    let total: f64 = ["cap_auth_perm", "cap_auth_temp", "cap_auth_aj"]
        .iter()
        .filter_map(|id| answers.get(*id).and_then(Json::as_f64))
        .sum();
    (total > 0.0).then_some(total)
}

/// One column of answers, by the item's type.
enum Column {
    Number(Float64Builder),
    Flag(BooleanBuilder),
    Text(StringBuilder),
}

impl Column {
    fn for_item(kind: &ItemType) -> Column {
        match kind {
            ItemType::Integer
            | ItemType::Decimal { .. }
            | ItemType::Money { .. }
            | ItemType::Percentage { .. } => Column::Number(Float64Builder::new()),
            ItemType::YesNo => Column::Flag(BooleanBuilder::new()),
            ItemType::Date
            | ItemType::Choice
            | ItemType::MultipleChoice
            | ItemType::Text { .. } => Column::Text(StringBuilder::new()),
        }
    }

    /// Appends an answer as stored; `not_applicable` and `unknown` read as null.
    fn push(&mut self, value: Option<&Json>) {
        match self {
            Column::Number(b) => b.append_option(value.and_then(Json::as_f64)),
            Column::Flag(b) => b.append_option(value.and_then(Json::as_bool)),
            Column::Text(b) => b.append_option(value.and_then(|v| {
                match v {
                    Json::String(s) => Some(s.clone()),
                    Json::Array(codes) => Some(
                        codes
                            .iter()
                            .filter_map(Json::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    _ => None,
                }
            })),
        }
    }

    fn field(&self, name: &str) -> Field {
        let data_type = match self {
            Column::Number(_) => DataType::Float64,
            Column::Flag(_) => DataType::Boolean,
            Column::Text(_) => DataType::Utf8,
        };
        Field::new(name, data_type, true)
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Number(b) => Arc::new(b.finish()),
            Column::Flag(b) => Arc::new(b.finish()),
            Column::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// A structure's attributes, as every table writes them.
struct Attributes {
    finess: String,
    name: String,
    category: String,
    peer_group: String,
    region: Option<String>,
    departement: String,
    og: Option<String>,
    legal_entity: Option<String>,
    legal_name: Option<String>,
    status: &'static str,
    counted: bool,
    places: Option<f64>,
    fill_rate: f64,
}

impl Attributes {
    fn of(
        stored: &StoredQuestionnaire,
        record: Option<&StructureRecord>,
        legal_name: Option<&str>,
    ) -> Attributes {
        let kind = stored.respondent.kind;
        let places = places(&stored.answers);
        Attributes {
            finess: stored.respondent.finess.to_string(),
            name: record.map(|r| r.name.clone()).unwrap_or_default(),
            category: kind.key().to_string(),
            peer_group: peer_group(kind, places),
            region: stored
                .departement
                .region()
                .map(|r| format!("{:02}", r.code())),
            departement: stored.departement.to_string(),
            og: stored.og.map(|og| og.to_string()),
            legal_entity: record.map(|r| r.legal_entity.to_string()),
            legal_name: legal_name.map(str::to_string),
            status: stored.status.key(),
            counted: counted(stored.status),
            places,
            fill_rate: stored.fill_rate,
        }
    }
}

/// The columns of the attributes.
#[derive(Default)]
struct AttributeColumns {
    text: [StringBuilder; 10],
    counted: BooleanBuilder,
    places: Float64Builder,
    fill_rate: Float64Builder,
}

impl AttributeColumns {
    fn push(&mut self, a: &Attributes) {
        let texts: [Option<&str>; 10] = [
            Some(&a.finess),
            Some(&a.name),
            Some(&a.category),
            Some(&a.peer_group),
            a.region.as_deref(),
            Some(&a.departement),
            a.og.as_deref(),
            a.legal_entity.as_deref(),
            a.legal_name.as_deref(),
            Some(a.status),
        ];
        for (builder, value) in self.text.iter_mut().zip(texts) {
            builder.append_option(value);
        }
        self.counted.append_value(a.counted);
        self.places.append_option(a.places);
        self.fill_rate.append_value(a.fill_rate);
    }

    fn fields() -> Vec<Field> {
        ATTRIBUTES
            .iter()
            .map(|name| {
                let data_type = match *name {
                    "counted" => DataType::Boolean,
                    "places" | "fill_rate" => DataType::Float64,
                    _ => DataType::Utf8,
                };
                let nullable = matches!(
                    *name,
                    "region" | "og" | "legal_entity" | "legal_name" | "places"
                );
                Field::new(*name, data_type, nullable)
            })
            .collect()
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = self
            .text
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(self.counted.finish()));
        columns.push(Arc::new(self.places.finish()));
        columns.push(Arc::new(self.fill_rate.finish()));
        columns
    }
}

/// One platform's table: the attributes, each item's answers, each indicator's value.
struct Wide<'d> {
    definition: &'d Definition,
    attributes: AttributeColumns,
    items: Vec<Column>,
    indicators: Vec<Float64Builder>,
    rows: usize,
}

impl<'d> Wide<'d> {
    fn new(definition: &'d Definition) -> Wide<'d> {
        Wide {
            definition,
            attributes: AttributeColumns::default(),
            items: definition
                .items()
                .iter()
                .map(|i| Column::for_item(&i.kind))
                .collect(),
            indicators: definition
                .indicators()
                .iter()
                .map(|_| Float64Builder::new())
                .collect(),
            rows: 0,
        }
    }

    fn batch(&mut self) -> Result<RecordBatch, LakeError> {
        let mut fields = AttributeColumns::fields();
        fields.extend(
            self.definition
                .items()
                .iter()
                .zip(&self.items)
                .map(|(item, column)| column.field(&item.id)),
        );
        fields.extend(
            self.definition
                .indicators()
                .iter()
                .map(|i| Field::new(format!("indicator_{}", i.id), DataType::Float64, true)),
        );
        let mut columns = self.attributes.finish();
        columns.extend(self.items.iter_mut().map(Column::finish));
        columns.extend(
            self.indicators
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(datafusion::error::DataFusionError::from)?)
    }
}

/// The `indicators` table: one row per structure and indicator asked of it.
#[derive(Default)]
struct Long {
    attributes: AttributeColumns,
    indicator: StringBuilder,
    unit: StringBuilder,
    value: Float64Builder,
    rows: usize,
}

impl Long {
    fn batch(&mut self) -> Result<RecordBatch, LakeError> {
        let mut fields = AttributeColumns::fields();
        fields.push(Field::new("indicator", DataType::Utf8, false));
        fields.push(Field::new("unit", DataType::Utf8, false));
        fields.push(Field::new("value", DataType::Float64, true));
        let mut columns = self.attributes.finish();
        columns.push(Arc::new(self.indicator.finish()));
        columns.push(Arc::new(self.unit.finish()));
        columns.push(Arc::new(self.value.finish()));
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(datafusion::error::DataFusionError::from)?)
    }
}

fn unit_key(unit: tdb_domain::questionnaire::Unit) -> String {
    serde_json::to_value(unit)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What a snapshot wrote.
#[derive(Debug)]
pub struct SnapshotOutcome {
    pub manifest: Manifest,
    /// Files of older snapshots removed after the switch.
    pub removed: usize,
}

/// Takes a snapshot of campaign `year` and makes it the current one.
pub async fn take<Q: QuestionnaireStore, S: AccountStore>(
    questionnaires: &Q,
    accounts: &S,
    definitions: &CampaignDefinitions,
    lake: &Lake,
    year: CampaignYear,
    kind: SnapshotKind,
    now: i64,
) -> Result<SnapshotOutcome, LakeError> {
    let snapshot = snapshot_id(now);
    let mut wide: BTreeMap<Platform, Wide> = Platform::ALL
        .iter()
        .map(|p| (*p, Wide::new(definitions.platform(*p))))
        .collect();
    let mut long = Long::default();
    let mut legal_names: HashMap<Finess, Option<String>> = HashMap::new();
    // Each page is read while the previous one is evaluated.
    let mut listed = questionnaires.scan(year, None).await?;
    loop {
        let next = listed.next.clone();
        let fetch = async {
            match next {
                Some(page) => questionnaires.scan(year, Some(page)).await.map(Some),
                None => Ok(None),
            }
        };
        let work = async {
            let finess: Vec<_> = listed.items.iter().map(|q| q.respondent.finess).collect();
            let names: HashMap<_, StructureRecord> = accounts
                .structures(&finess)
                .await?
                .into_iter()
                .map(|r| (r.finess, r))
                .collect();
            // The legal entities' names: the account platform holds those of the OGs.
            let unknown: Vec<_> = names
                .values()
                .map(|r| r.legal_entity)
                .filter(|f| !legal_names.contains_key(f))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !unknown.is_empty() {
                let found = accounts.structures(&unknown).await?;
                for f in unknown {
                    legal_names.insert(
                        f,
                        found.iter().find(|r| r.finess == f).map(|r| r.name.clone()),
                    );
                }
            }
            for stored in &listed.items {
                let record = names.get(&stored.respondent.finess);
                let legal_name = record
                    .and_then(|r| legal_names.get(&r.legal_entity))
                    .and_then(Option::as_deref);
                add(
                    &mut wide,
                    &mut long,
                    definitions,
                    stored,
                    record,
                    legal_name,
                );
            }
            Ok::<_, LakeError>(())
        };
        let (fetched, worked) = tokio::join!(fetch, work);
        worked?;
        match fetched? {
            Some(page) => listed = page,
            None => break,
        }
    }
    let mut tables = BTreeMap::new();
    for (platform, mut table) in wide {
        let name = format!("questionnaires_{}", platform.key());
        let key = format!(
            "{}/part-0.parquet",
            lake::snapshot_dir(&name, year, &snapshot)
        );
        let rows = lake
            .write_parquet(&key, &[by_finess(table.batch()?)?], 8192)
            .await?;
        tables.insert(
            name,
            TableFiles {
                files: vec![key],
                rows,
            },
        );
    }
    let key = format!(
        "{}/part-0.parquet",
        lake::snapshot_dir(lake::INDICATORS, year, &snapshot)
    );
    // Sorted by FINESS, so that a reader of one structure skips most row groups.
    let rows = lake
        .write_parquet(&key, &[by_finess(long.batch()?)?], 16_384)
        .await?;
    tables.insert(
        lake::INDICATORS.to_string(),
        TableFiles {
            files: vec![key.clone()],
            rows,
        },
    );
    // The statistics, with SQL over the indicators just written.
    let context = lake.session()?;
    lake.register(&context, lake::INDICATORS, &[key]).await?;
    for (table, sql, row_group) in [
        (lake::BENCHMARKS, stats::benchmarks_sql(), 4096),
        (lake::POSITIONS, stats::positions_sql(), 16_384),
    ] {
        let batches = context.sql(&sql).await?.collect().await?;
        let key = format!(
            "{}/part-0.parquet",
            lake::snapshot_dir(table, year, &snapshot)
        );
        let rows = lake.write_parquet(&key, &batches, row_group).await?;
        tables.insert(
            table.to_string(),
            TableFiles {
                files: if rows > 0 { vec![key] } else { vec![] },
                rows,
            },
        );
    }
    let previous = lake.manifest(year).await?;
    let manifest = Manifest {
        campaign: year.value(),
        snapshot: snapshot.clone(),
        kind: kind.key().to_string(),
        created_at: now,
        tables,
    };
    lake.switch(&manifest).await?;
    let mut keep = vec![snapshot.as_str()];
    if let Some(previous) = &previous {
        keep.push(&previous.snapshot);
    }
    let removed = lake.remove_snapshots_except(year, &keep).await?;
    tracing::info!(campaign = %year, snapshot = %snapshot, kind = kind.key(), removed, "snapshot taken");
    Ok(SnapshotOutcome { manifest, removed })
}

/// One questionnaire's row in its platform's table, and its indicators' rows.
fn add(
    wide: &mut BTreeMap<Platform, Wide>,
    long: &mut Long,
    definitions: &CampaignDefinitions,
    stored: &StoredQuestionnaire,
    record: Option<&StructureRecord>,
    legal_name: Option<&str>,
) {
    let kind: RespondentKind = stored.respondent.kind;
    let definition = definitions.for_kind(kind);
    let attributes = Attributes::of(stored, record, legal_name);
    let answers = definition.carry_over(kind, &stored.answers);
    let evaluation = definition.evaluate(kind, &answers, None);
    let values: HashMap<&str, Option<f64>> = evaluation
        .indicators
        .iter()
        .map(|r| {
            let value = match r.value {
                IndicatorValue::Value(v) if v.is_finite() => Some(v),
                _ => None,
            };
            (r.indicator, value)
        })
        .collect();
    let table = wide.get_mut(&kind.platform()).expect("every platform");
    table.attributes.push(&attributes);
    for (item, column) in definition.items().iter().zip(table.items.iter_mut()) {
        column.push(stored.answers.get(&item.id));
    }
    for (indicator, builder) in definition
        .indicators()
        .iter()
        .zip(table.indicators.iter_mut())
    {
        builder.append_option(values.get(indicator.id.as_str()).copied().flatten());
    }
    table.rows += 1;
    for indicator in definition.indicators() {
        let Some(value) = values.get(indicator.id.as_str()) else {
            continue;
        };
        long.attributes.push(&attributes);
        long.indicator.append_value(&indicator.id);
        long.unit.append_value(unit_key(indicator.unit));
        long.value.append_option(*value);
        long.rows += 1;
    }
}

/// The rows sorted by FINESS (stable: a structure's indicators keep their order).
fn by_finess(batch: RecordBatch) -> Result<RecordBatch, LakeError> {
    use datafusion::arrow::compute::{SortOptions, sort_to_indices, take_record_batch};
    let finess = batch.column(0);
    let order = sort_to_indices(finess, Some(SortOptions::default()), None)
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(take_record_batch(&batch, &order).map_err(datafusion::error::DataFusionError::from)?)
}

/// `YYYYMMDDTHHMMSSZ-xxxx`: sorts by time, and two snapshots of one second differ.
fn snapshot_id(now: i64) -> String {
    let at =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:08x}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        nanos
    )
}
