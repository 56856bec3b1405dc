//! What S3 and SNS would invoke in a deployment, relayed locally: LocalStack delivers a
//! bucket's notifications and a topic's messages to an SQS queue per function (see
//! `tdb_aws::provision`), and the gateway reads each queue and calls the function's handler
//! with the same event document (for SNS, the message a Lambda finds in `Sns.Message`).

use std::collections::BTreeMap;
use tdb_aws::relay::relay;
use tokio::task::JoinHandle;

/// Starts a relay for every function S3 or SNS invokes in the template. `lookup` gives the
/// functions' environment, as for their routers.
pub fn spawn_event_relays(
    aws: &aws_config::SdkConfig,
    queues: &BTreeMap<String, String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<JoinHandle<()>>, Box<dyn std::error::Error + Send + Sync>> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut relays = Vec::new();
    for (function, queue) in queues {
        match function.as_str() {
            "AccountsUploadsFunction" => {
                let uploads = accounts::UploadsConfig::from_lookup(&lookup)?.uploads(aws);
                let uploads = std::sync::Arc::new(uploads);
                relays.push(tokio::spawn(relay(
                    sqs.clone(),
                    queue.clone(),
                    move |event| {
                        let uploads = uploads.clone();
                        async move {
                            let event: tdb_aws::s3::S3Event =
                                serde_json::from_str(&event).map_err(|e| e.to_string())?;
                            uploads
                                .process_s3_event(event)
                                .await
                                .map_err(|e| e.to_string())
                        }
                    },
                )));
            }
            "RestituteSnapshotFunction" => {
                let config = restitute::SnapshotConfig::from_lookup(&lookup)?;
                let stores = std::sync::Arc::new(config.stores(aws));
                let campaigns = std::sync::Arc::new(restitute::Config::campaigns()?);
                let lake = restitute::Lake::from_env(&config.lake_bucket)?;
                relays.push(tokio::spawn(relay(
                    sqs.clone(),
                    queue.clone(),
                    move |event| {
                        let (stores, campaigns, lake) =
                            (stores.clone(), campaigns.clone(), lake.clone());
                        async move {
                            let event: tdb_aws::s3::S3Event =
                                serde_json::from_str(&event).map_err(|e| e.to_string())?;
                            for record in event.records {
                                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                                restitute::api::on_event(
                                    &stores.0,
                                    &stores.1,
                                    &campaigns,
                                    &lake,
                                    &record.s3.object.key,
                                    now,
                                )
                                .await
                                .map_err(|e| e.to_string())?;
                            }
                            Ok(())
                        }
                    },
                )));
            }
            "RemindFeedbackFunction" => {
                let table = lookup("ACCOUNTS_TABLE").ok_or("ACCOUNTS_TABLE is not set")?;
                let accounts = tdb_aws::accounts::AccountsTable::new(
                    aws_sdk_dynamodb::Client::new(aws),
                    table,
                );
                relays.push(tokio::spawn(relay(
                    sqs.clone(),
                    queue.clone(),
                    move |message| {
                        let accounts = accounts.clone();
                        async move {
                            let now = time::OffsetDateTime::now_utc().unix_timestamp();
                            remind::feedback::receive(&accounts, &message, now)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        }
                    },
                )));
            }
            other => tracing::warn!("{other}: an event invokes it, but it is not built yet"),
        }
    }
    Ok(relays)
}
