//! The snapshot Lambda: S3 invokes it when an event lands under `events/` in the lake
//! bucket (a platform's closure, written by validate, or a preview asked through the API),
//! and it takes the campaign's snapshot (docs/lake.md). Its reserved concurrency of one
//! takes snapshots one after another.

use lambda_http::{Error, LambdaEvent, service_fn};
use tdb_aws::s3::S3Event;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = restitute::SnapshotConfig::from_lookup(|name| std::env::var(name).ok())?;
    let aws = tdb_aws::load_config().await;
    let (questionnaires, accounts) = &config.stores(&aws);
    let campaigns = &restitute::Config::campaigns()?;
    let lake = &restitute::Lake::from_env(&config.lake_bucket)?;
    lambda_http::lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| async move {
        // An error makes Lambda deliver the event again; the snapshot is taken anew.
        for record in event.payload.records {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            restitute::api::on_event(
                questionnaires,
                accounts,
                campaigns,
                lake,
                &record.s3.object.key,
                now,
            )
            .await?;
        }
        Ok::<(), Error>(())
    }))
    .await
}
