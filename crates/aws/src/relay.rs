//! Stands in, locally, for AWS invoking a function asynchronously: the local stack delivers
//! the events to an SQS queue (see `provision`), read here for ever.

use std::time::Duration;

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
                tracing::warn!(error = %e, "reading an event queue failed; retrying");
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
                        tracing::warn!(error = %e, "deleting a handled event failed");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "an event's handler failed; it will be retried")
                }
            }
        }
    }
}
