//! The Parquet lake in S3 (docs/lake.md): where each table's files of a snapshot live, the
//! manifest that names a campaign's current snapshot, and the DataFusion session reading
//! them through object_store.
//!
//! ```text
//! lake/<table>/campaign=<year>/snapshot=<id>/part-0.parquet
//! lake/_manifests/campaign=<year>.json
//! ```
//!
//! A snapshot's files are all written before the manifest names it; replacing the manifest
//! (one S3 PUT) switches readers from one whole snapshot to the next, and snapshots older
//! than the previous one are removed after the switch.

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tdb_domain::campaign::CampaignYear;

/// The tables of a snapshot.
pub const QUESTIONNAIRES_GENERIC: &str = "questionnaires_generic";
pub const QUESTIONNAIRES_SAD: &str = "questionnaires_sad";
pub const INDICATORS: &str = "indicators";
pub const BENCHMARKS: &str = "benchmarks";
pub const POSITIONS: &str = "positions";

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("a manifest that does not read: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("storage: {0}")]
    Storage(#[from] tdb_domain::ports::StoreError),
    #[error("{0}")]
    Config(String),
}

/// What a campaign's current snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub campaign: u16,
    /// The snapshot's id, its directory's `snapshot=` value: sorts by creation time.
    pub snapshot: String,
    /// `final` (taken at closure) or `preview` (asked during fiabilisation).
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Each table's files and rows.
    pub tables: BTreeMap<String, TableFiles>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFiles {
    pub files: Vec<String>,
    pub rows: usize,
}

/// The lake's bucket, through object_store.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// The same store, for signed URLs.
    s3: Arc<object_store::aws::AmazonS3>,
    bucket: String,
}

/// Where a table's files of a snapshot go.
pub fn snapshot_dir(table: &str, year: CampaignYear, snapshot: &str) -> String {
    format!("lake/{table}/campaign={year}/snapshot={snapshot}")
}

fn manifest_key(year: CampaignYear) -> String {
    format!("lake/_manifests/campaign={year}.json")
}

impl Lake {
    /// The bucket through the same AWS environment as the SDK clients: credentials, region
    /// and `AWS_ENDPOINT_URL` (the local stack, over plain HTTP, path-style).
    pub fn from_env(bucket: &str) -> Result<Lake, LakeError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) =
            std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var("AWS_REGION").is_err()
            && let Ok(region) = std::env::var("AWS_DEFAULT_REGION")
        {
            builder = builder.with_region(region);
        }
        let s3 = Arc::new(builder.build()?);
        Ok(Lake {
            store: s3.clone(),
            s3,
            bucket: bucket.to_string(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A DataFusion session that reads this bucket as `s3://<bucket>/`.
    pub fn session(&self) -> Result<SessionContext, LakeError> {
        let context = SessionContext::new_with_config(
            SessionConfig::new()
                .with_target_partitions(2)
                .with_information_schema(true),
        );
        let url = url::Url::parse(&format!("s3://{}", self.bucket))
            .map_err(|e| LakeError::Config(e.to_string()))?;
        context.register_object_store(&url, self.store.clone());
        // DuckDB's exact quantile, in place of DataFusion's rounded one.
        context.register_udaf(crate::quantile::quantile_cont());
        Ok(context)
    }

    /// The manifest of a campaign's current snapshot, if it has one.
    pub async fn manifest(&self, year: CampaignYear) -> Result<Option<Manifest>, LakeError> {
        match self.store.get(&Path::from(manifest_key(year))).await {
            Ok(got) => Ok(Some(serde_json::from_slice(&got.bytes().await?)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Names `manifest` the campaign's current snapshot: one PUT, all or nothing.
    pub async fn switch(&self, manifest: &Manifest) -> Result<(), LakeError> {
        let year =
            CampaignYear::new(manifest.campaign).map_err(|e| LakeError::Config(e.to_string()))?;
        self.store
            .put(
                &Path::from(manifest_key(year)),
                PutPayload::from(serde_json::to_vec_pretty(manifest)?),
            )
            .await?;
        Ok(())
    }

    /// Writes one object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Writes a file to be downloaded: its type, and the name a browser saves it under.
    pub async fn put_download(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        file_name: &str,
    ) -> Result<(), LakeError> {
        let mut attributes = object_store::Attributes::new();
        attributes.insert(
            object_store::Attribute::ContentType,
            content_type.to_string().into(),
        );
        // A territory's data: no shared or browser cache keeps it.
        attributes.insert(
            object_store::Attribute::CacheControl,
            "private, no-store".into(),
        );
        attributes.insert(
            object_store::Attribute::ContentDisposition,
            format!("attachment; filename=\"{file_name}\"").into(),
        );
        let options = object_store::PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(&Path::from(key), PutPayload::from(bytes), options)
            .await?;
        Ok(())
    }

    /// Whether an object is there.
    pub async fn exists(&self, key: &str) -> Result<bool, LakeError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A URL that lets its holder read one object for `ttl`, and nothing else.
    pub async fn download_url(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<String, LakeError> {
        use object_store::signer::Signer;
        let url = self
            .s3
            .signed_url(axum::http::Method::GET, &Path::from(key), ttl)
            .await?;
        Ok(url.to_string())
    }

    /// Writes batches as one Parquet file (zstd, row groups of `row_group` rows: sorted
    /// files let a reader skip the groups its filter excludes).
    pub async fn write_parquet(
        &self,
        key: &str,
        batches: &[RecordBatch],
        row_group: usize,
    ) -> Result<usize, LakeError> {
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(row_group))
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, first.schema(), Some(properties))?;
        let mut rows = 0;
        for batch in batches {
            rows += batch.num_rows();
            writer.write(batch)?;
        }
        writer.close()?;
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await?;
        Ok(rows)
    }

    /// Removes a campaign's snapshots other than `keep` (the current and the previous one:
    /// a reader that read the manifest just before a switch still finds its files).
    pub async fn remove_snapshots_except(
        &self,
        year: CampaignYear,
        keep: &[&str],
    ) -> Result<usize, LakeError> {
        let mut removed = 0;
        for table in [
            QUESTIONNAIRES_GENERIC,
            QUESTIONNAIRES_SAD,
            INDICATORS,
            BENCHMARKS,
            POSITIONS,
        ] {
            let prefix = Path::from(format!("lake/{table}/campaign={year}"));
            let mut listed = self.store.list(Some(&prefix));
            let mut doomed = Vec::new();
            while let Some(meta) = listed.next().await {
                let meta = meta?;
                let kept = keep
                    .iter()
                    .any(|id| meta.location.as_ref().contains(&format!("/snapshot={id}/")));
                if !kept {
                    doomed.push(meta.location);
                }
            }
            for location in doomed {
                self.store.delete(&location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every campaign's manifest, by campaign.
    pub async fn manifests(&self) -> Result<Vec<Manifest>, LakeError> {
        let mut listed = self.store.list(Some(&Path::from("lake/_manifests")));
        let mut manifests = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            let bytes = self.store.get(&meta.location).await?.bytes().await?;
            manifests.push(serde_json::from_slice::<Manifest>(&bytes)?);
        }
        manifests.sort_by_key(|m| m.campaign);
        Ok(manifests)
    }

    /// Makes every table of every campaign's current snapshot a view of `context`, as
    /// analysts read the lake (`tdb lake sql`, and DuckDB through `lake/duckdb_lake.py`):
    /// `<table>` holds every campaign, with a `campaign` column, the columns of campaigns
    /// whose tables differ put together by name; `<table>_<year>` holds one campaign's.
    pub async fn attach(&self, context: &SessionContext) -> Result<Vec<Manifest>, LakeError> {
        let manifests = self.manifests().await?;
        let mut by_table: BTreeMap<&str, Vec<(u16, String)>> = BTreeMap::new();
        for manifest in &manifests {
            for (table, files) in &manifest.tables {
                if files.files.is_empty() {
                    continue;
                }
                let name = format!("{table}_{}", manifest.campaign);
                self.register(context, &name, &files.files).await?;
                by_table
                    .entry(table)
                    .or_default()
                    .push((manifest.campaign, name));
            }
        }
        for (table, parts) in by_table {
            // The union of the campaigns' columns, in their first order.
            let mut columns: Vec<(String, datafusion::arrow::datatypes::DataType)> = Vec::new();
            let mut schemas = Vec::new();
            for (_, name) in &parts {
                let schema = context.table_provider(name.as_str()).await?.schema();
                for field in schema.fields() {
                    if !columns.iter().any(|(c, _)| c == field.name()) {
                        columns.push((field.name().clone(), field.data_type().clone()));
                    }
                }
                schemas.push(schema);
            }
            let selects: Vec<String> = parts
                .iter()
                .zip(&schemas)
                .map(|((campaign, name), schema)| {
                    let list: Vec<String> = columns
                        .iter()
                        .map(|(column, data_type)| {
                            if schema.field_with_name(column).is_ok() {
                                format!("\"{column}\"")
                            } else {
                                format!("CAST(NULL AS {}) AS \"{column}\"", sql_type(data_type))
                            }
                        })
                        .collect();
                    format!(
                        "SELECT {}, CAST({campaign} AS BIGINT) AS campaign FROM {name}",
                        list.join(", ")
                    )
                })
                .collect();
            context
                .sql(&format!(
                    "CREATE VIEW {table} AS {}",
                    selects.join(" UNION ALL ")
                ))
                .await?;
        }
        Ok(manifests)
    }

    /// Registers a table of the snapshot a manifest names in `context`, under `name`.
    pub async fn register(
        &self,
        context: &SessionContext,
        name: &str,
        files: &[String],
    ) -> Result<(), LakeError> {
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(format!("s3://{}/{f}", self.bucket)))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&context.state())
            .await?;
        context.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
        Ok(())
    }
}

/// The SQL name of a column type the lake writes.
fn sql_type(data_type: &datafusion::arrow::datatypes::DataType) -> &'static str {
    use datafusion::arrow::datatypes::DataType;
    match data_type {
        DataType::Boolean => "BOOLEAN",
        DataType::Int64 | DataType::Int32 => "BIGINT",
        DataType::Float64 | DataType::Float32 => "DOUBLE",
        _ => "VARCHAR",
    }
}
