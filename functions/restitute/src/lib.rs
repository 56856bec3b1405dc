//! The restitute function (docs/lake.md): a campaign's snapshot as Parquet in the S3 lake,
//! the peer statistics computed from it with DataFusion SQL, and the restitutions read
//! back from it. DataFusion is compiled here and nowhere else.

pub mod api;
pub mod chart;
mod config;
pub mod export;
mod http;
pub mod lake;
pub mod quantile;
pub mod snapshot;
pub mod stats;

pub use api::App;
pub use config::{Config, SnapshotConfig};
pub use http::{OPENAPI_PATH, router};
pub use lake::{Lake, LakeError, Manifest};
pub use snapshot::{SnapshotKind, SnapshotOutcome};
// For the tools that read the lake with the same DataFusion.
pub use datafusion;
