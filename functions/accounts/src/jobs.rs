//! Imports too large for a request: the national FINESS extract (about 100,000 lines) is
//! uploaded straight to the lake bucket through a presigned URL, then processed in the
//! background by the `accounts-uploads` Lambda, which S3 invokes when the object lands
//! (locally, the gateway relays LocalStack's S3 notifications). The administrator polls
//! the job for its status and summary.

use crate::import::{ReferentialWork, decode, parse_etalab};
use crate::{App, Clock, secrets, store_error};
use serde::Serialize;
use tdb_api::{ApiError, Caller};
use tdb_domain::accounts::{ImportJob, JobStatus};
use tdb_domain::ports::{AccountStore, Lake, Mailer, StoreError};
use tdb_domain::rights::{Action, Target};

/// Where uploaded referential files go in the lake bucket: `<prefix><job id>.csv`. The
/// upload function's S3 trigger filters on it.
pub const UPLOAD_PREFIX: &str = "imports/referential/";
/// How long an upload address works.
const UPLOAD_URL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// The largest file processed (the 2025 national extract is about 40 MB).
pub const MAX_UPLOAD: u64 = 256 * 1024 * 1024;
/// How long a queued job waits for another import to give the referential back. The
/// upload Lambda's timeout (15 minutes) leaves the rest for the import itself.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// A job queued or running for longer than this was abandoned (a crashed worker): the
/// next delivery of its event takes it over.
const JOB_LEASE: i64 = 15 * 60;

/// An import job as its creator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job's id, in the path of `GET /accounts/imports/jobs/{job}`.
    pub id: String,
    /// `awaiting_upload`, `queued`, `running`, `done` or `failed`.
    #[schema(value_type = String)]
    pub status: JobStatus,
    pub dry_run: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// What the import did, once done.
    #[schema(value_type = Option<crate::import::Summary>)]
    pub summary: Option<serde_json::Value>,
    /// Why it failed, once failed.
    pub error: Option<String>,
}

impl From<ImportJob> for JobView {
    fn from(job: ImportJob) -> JobView {
        JobView {
            id: job.id,
            status: job.status,
            dry_run: job.dry_run,
            created_at: job.created_at,
            updated_at: job.updated_at,
            summary: job.summary,
            error: job.error,
        }
    }
}

/// Where and how to send the file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadTarget {
    /// Always `PUT`, with the file as the body.
    pub method: &'static str,
    pub url: String,
    /// Unix seconds after which the address no longer works.
    pub expires_at: i64,
}

/// A new job and where to upload its file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadCreated {
    pub job: JobView,
    pub upload: UploadTarget,
}

pub use tdb_aws::s3::S3Event;

fn is_job_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The job an uploaded object belongs to, if its key is a job's.
fn job_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(UPLOAD_PREFIX)?
        .strip_suffix(".csv")
        .filter(|id| is_job_id(id))
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    /// Creates a job and the address its file is uploaded to.
    pub(crate) async fn create_upload(
        &self,
        caller: Caller,
        dry_run: bool,
    ) -> Result<UploadCreated, ApiError> {
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let caller = caller.current(&self.store).await?;
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let now = self.now();
        let job = ImportJob {
            id: secrets::random_bytes::<16>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            status: JobStatus::AwaitingUpload,
            dry_run,
            created_by: caller.account.clone(),
            created_at: now,
            updated_at: now,
            summary: None,
            error: None,
            version: 1,
        };
        self.store.create_job(&job).await.map_err(store_error)?;
        let url = self
            .lake
            .upload_url(&format!("{UPLOAD_PREFIX}{}.csv", job.id), UPLOAD_URL_TTL)
            .await
            .map_err(store_error)?;
        tracing::info!(job = %job.id, by = %caller.account, dry_run, "referential upload created");
        Ok(UploadCreated {
            job: job.into(),
            upload: UploadTarget {
                method: "PUT",
                url,
                expires_at: now + UPLOAD_URL_TTL.as_secs() as i64,
            },
        })
    }

    /// A job, for a national administrator.
    pub(crate) async fn import_job(&self, caller: &Caller, id: &str) -> Result<JobView, ApiError> {
        caller.authorize(Action::ImportReferential, &Target::National)?;
        if !is_job_id(id) {
            return Err(ApiError::invalid("job", "not a job id"));
        }
        let job = self
            .store
            .job(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found("job"))?;
        Ok(as_seen(job, self.now()))
    }
}

/// A job as its creator should read it: one queued or running past its lease was abandoned
/// by a worker that crashed, and nothing will finish it.
fn as_seen(job: ImportJob, now: i64) -> JobView {
    let abandoned = matches!(job.status, JobStatus::Queued | JobStatus::Running)
        && now >= job.updated_at + JOB_LEASE;
    if abandoned {
        JobView {
            status: JobStatus::Failed,
            error: Some("the import was interrupted: upload the file again".into()),
            ..JobView::from(job)
        }
    } else {
        JobView::from(job)
    }
}

/// The background side of upload jobs: what the `accounts-uploads` Lambda runs when S3
/// announces an upload. It needs the accounts table and the lake bucket, nothing else (no
/// signing key, no mail).
pub struct Uploads<S, L> {
    store: S,
    lake: L,
    clock: Clock,
}

impl<S: AccountStore, L: Lake> Uploads<S, L> {
    pub fn new(store: S, lake: L, clock: Clock) -> Uploads<S, L> {
        Uploads { store, lake, clock }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn referential(&self) -> ReferentialWork<'_, S, L> {
        ReferentialWork {
            store: &self.store,
            lake: &self.lake,
            clock: &self.clock,
        }
    }

    /// Processes the uploads an S3 event announces. An error is a failure worth a retry
    /// (the storage did not answer); a bad file fails its job instead.
    pub async fn process_s3_event(&self, event: S3Event) -> Result<(), StoreError> {
        for record in event.records {
            self.process_upload(&record.s3.object.key).await?;
        }
        Ok(())
    }

    /// Imports the file uploaded at `key` for its job. Safe to call again for the same key
    /// (S3 delivers an event at least once): a job is claimed once, and a finished job is
    /// left as it is.
    pub async fn process_upload(&self, key: &str) -> Result<(), StoreError> {
        let Some(id) = job_of_key(key) else {
            tracing::warn!(key, "object outside the import jobs: ignored");
            return Ok(());
        };
        let Some(job) = self.store.job(id).await? else {
            tracing::warn!(job = id, "upload without a job: ignored");
            return Ok(());
        };
        let now = self.now();
        let busy = matches!(job.status, JobStatus::Queued | JobStatus::Running)
            && now < job.updated_at + JOB_LEASE;
        if job.status.is_final() || busy {
            tracing::info!(job = id, status = ?job.status, "upload event repeated: nothing to do");
            return Ok(());
        }
        let Some(job) = self.move_job(job, JobStatus::Queued, |_| {}).await? else {
            return Ok(());
        };
        let owner = job.id.clone();
        let result = match self
            .referential()
            .with_lock(&owner, QUEUE_WAIT, self.run_job(job.clone(), key))
            .await
        {
            Ok(Some(result)) => result,
            Ok(None) => Err(Failure::Permanent(
                "another import held the referential too long: upload the file again".into(),
            )),
            Err(e) => Err(Failure::Retry(e)),
        };
        // The job as run_job left it, to write its end on the right version.
        let job = self.store.job(id).await?.unwrap_or(job);
        if job.status.is_final() {
            // Done (or failed) before what went wrong after it, such as giving the lock
            // back, which then expires by itself.
            return Ok(());
        }
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Permanent(reason)) => {
                tracing::info!(job = id, "referential import failed: {reason}");
                self.move_job(job, JobStatus::Failed, |j| j.error = Some(reason))
                    .await?;
                Ok(())
            }
            Err(Failure::Retry(e)) => {
                tracing::error!(job = id, code = e.code, "referential import interrupted");
                // Back to waiting for its upload: the retried event takes it again.
                self.move_job(job, JobStatus::AwaitingUpload, |_| {})
                    .await?;
                Err(StoreError::Backend(e.message.into()))
            }
        }
    }

    async fn run_job(&self, job: ImportJob, key: &str) -> Result<(), Failure> {
        let job = self
            .move_job(job, JobStatus::Running, |_| {})
            .await
            .map_err(|e| Failure::Retry(store_error(e)))?
            .ok_or_else(|| Failure::Permanent("the job was taken over".into()))?;
        match self
            .lake
            .size(key)
            .await
            .map_err(|e| Failure::Retry(store_error(e)))?
        {
            None => return Err(Failure::Permanent("the uploaded file is missing".into())),
            Some(size) if size > MAX_UPLOAD => {
                return Err(Failure::Permanent(format!(
                    "the file has {size} bytes; the largest accepted is {MAX_UPLOAD}"
                )));
            }
            Some(_) => {}
        }
        let bytes = self
            .lake
            .get(key)
            .await
            .map_err(|e| Failure::Retry(store_error(e)))?
            .ok_or_else(|| Failure::Permanent("the uploaded file is missing".into()))?;
        let extract = parse_etalab(&decode(&bytes)).map_err(|e| {
            Failure::Permanent(match &e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message,
            })
        })?;
        let summary = self
            .referential()
            .apply(extract, job.dry_run)
            .await
            .map_err(Failure::Retry)?;
        tracing::info!(job = %job.id, dry_run = job.dry_run, created = summary.created,
            updated = summary.updated, unchanged = summary.unchanged,
            rejected = summary.rejected_total, "referential import done");
        let summary =
            serde_json::to_value(&summary).map_err(|_| Failure::Retry(ApiError::internal()))?;
        self.move_job(job, JobStatus::Done, |j| j.summary = Some(summary))
            .await
            .map_err(|e| Failure::Retry(store_error(e)))?;
        Ok(())
    }

    /// Saves `job` in a new status (and whatever `change` sets) on its version; `None` when
    /// another worker changed it first.
    async fn move_job(
        &self,
        job: ImportJob,
        status: JobStatus,
        change: impl FnOnce(&mut ImportJob),
    ) -> Result<Option<ImportJob>, StoreError> {
        let mut next = ImportJob {
            status,
            updated_at: self.now(),
            version: job.version + 1,
            ..job
        };
        change(&mut next);
        match self.store.save_job(&next).await {
            Ok(()) => Ok(Some(next)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How a job's run ended badly.
enum Failure {
    /// The file cannot be imported: the job fails with this reason.
    Permanent(String),
    /// The platform failed: the event is delivered again.
    Retry(ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_keys_are_processed() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            job_of_key(&format!("imports/referential/{id}.csv")),
            Some(id)
        );
        assert_eq!(job_of_key(&format!("imports/referential/{id}.txt")), None);
        assert_eq!(job_of_key("imports/referential/../x.csv"), None);
        assert_eq!(job_of_key(&format!("referential/{id}.csv")), None);
        assert_eq!(
            job_of_key("imports/referential/0123456789ABCDEF0123456789ABCDEF.csv"),
            None
        );
    }

    #[test]
    fn a_job_abandoned_by_its_worker_reads_as_failed() {
        let job = ImportJob {
            id: "0123456789abcdef0123456789abcdef".into(),
            status: JobStatus::Running,
            dry_run: false,
            created_by: tdb_domain::accounts::AccountId::from_random([1; 16]),
            created_at: 1000,
            updated_at: 1000,
            summary: None,
            error: None,
            version: 3,
        };
        assert_eq!(
            as_seen(job.clone(), 1000 + JOB_LEASE - 1).status,
            JobStatus::Running
        );
        let seen = as_seen(job, 1000 + JOB_LEASE);
        assert_eq!(seen.status, JobStatus::Failed);
        assert!(seen.error.unwrap().contains("upload the file again"));
    }

    #[test]
    fn s3_test_events_hold_no_record() {
        let test: S3Event =
            serde_json::from_str(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).unwrap();
        assert!(test.records.is_empty());
        let event: S3Event = serde_json::from_str(
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},
                "object":{"key":"imports/referential/x.csv","size":3}}}]}"#,
        )
        .unwrap();
        assert_eq!(event.records[0].s3.object.key, "imports/referential/x.csv");
    }
}
