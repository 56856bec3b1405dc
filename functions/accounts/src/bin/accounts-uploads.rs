//! The accounts upload Lambda: S3 invokes it when an import file lands under
//! `imports/referential/` in the lake bucket, and it runs that import job (`jobs.rs`). Its
//! reserved concurrency of one runs imports one after another; the referential lock holds
//! them apart anyway.

use accounts::jobs::S3Event;
use lambda_http::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = accounts::UploadsConfig::from_env()?;
    let aws = tdb_aws::load_config().await;
    let uploads = &config.uploads(&aws);
    lambda_http::lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| async move {
        // An error makes Lambda deliver the event again (storage unavailable); a bad file
        // fails its job and ends here.
        uploads
            .process_s3_event(event.payload)
            .await
            .map_err(|e| Error::from(e.to_string()))
    }))
    .await
}
