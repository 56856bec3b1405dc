//! What the integration tests of several crates need from the local stack: a check that the
//! environment points at it (never at a real account), names unique to a test, and the
//! messages LocalStack's SES kept (`GET /_aws/ses`).

use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};

/// The local stack's endpoint; panics, with the way to start it, when the environment does
/// not point at this machine.
pub fn local_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "AWS_ENDPOINT_URL must point at the local stack (got `{endpoint}`): run the tests with scripts/test.sh, which starts it"
    );
    endpoint
}

/// A name no other test of this run or of another process uses: `<prefix><nanos>-<n>-<pid>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}{nanos}-{}-{}",
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::process::id()
    )
}

/// Every message LocalStack's SES received, oldest first.
pub async fn ses_messages() -> Vec<Value> {
    let sent: Value = reqwest::get(format!("{}/_aws/ses", local_endpoint()))
        .await
        .expect("LocalStack answers /_aws/ses")
        .json()
        .await
        .expect("a JSON list of messages");
    sent["messages"].as_array().cloned().unwrap_or_default()
}

/// The messages sent to `to`, oldest first.
pub async fn messages_to(to: &str) -> Vec<Value> {
    ses_messages()
        .await
        .into_iter()
        .filter(|m| m["Destination"]["ToAddresses"][0] == to)
        .collect()
}

/// The password link (`.../mot-de-passe#jeton=...`) of the last message sent to `to`.
pub async fn last_link_to(to: &str) -> Option<String> {
    let message = messages_to(to).await.pop()?;
    message["Body"]["text_part"]
        .as_str()?
        .split_whitespace()
        .find(|word| word.contains("/mot-de-passe#jeton="))
        .map(str::to_string)
}
