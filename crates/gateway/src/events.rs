//! What S3 would invoke in a deployment, relayed locally: LocalStack delivers the bucket's
//! notifications to an SQS queue per function (see `tdb_aws::provision`), and the gateway
//! reads each queue and calls the function's handler with the same event document.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Starts a relay for every function S3 invokes in the template. `lookup` gives the
/// functions' environment, as for their routers.
pub fn spawn_event_relays(
    aws: &aws_config::SdkConfig,
    queues: &BTreeMap<String, String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<JoinHandle<()>>, accounts::ConfigError> {
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
                            let event: accounts::jobs::S3Event =
                                serde_json::from_str(&event).map_err(|e| e.to_string())?;
                            uploads
                                .process_s3_event(event)
                                .await
                                .map_err(|e| e.to_string())
                        }
                    },
                )));
            }
            other => tracing::warn!("{other}: S3 invokes it, but it is not built yet"),
        }
    }
    Ok(relays)
}

/// Reads the queue for ever and hands each message's body to `handle`: a handled message
/// is deleted; a failed one comes back after its visibility timeout, as a failed
/// asynchronous invocation is retried.
pub async fn relay<F, Fut>(sqs: aws_sdk_sqs::Client, queue: String, handle: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            // A national import may run for minutes: not delivered twice meanwhile.
            .visibility_timeout(900)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the S3 event queue failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        for message in messages {
            let body = message.body.unwrap_or_default();
            match handle(body).await {
                Ok(()) => {
                    let Some(receipt) = message.receipt_handle else {
                        continue;
                    };
                    let deleted = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(receipt)
                        .send()
                        .await;
                    if let Err(e) = deleted {
                        tracing::warn!(error = %e, "deleting a handled S3 event failed");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "an S3 event's handler failed; it will be retried")
                }
            }
        }
    }
}
