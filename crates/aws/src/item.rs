//! What every DynamoDB adapter shares: attribute helpers, page tokens, and the batch writer
//! that resends what `BatchWriteItem` leaves unprocessed.

use crate::backend;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use std::collections::HashMap;
use std::future::Future;
use tdb_domain::ports::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, key: &str) -> Result<&'a str, StoreError> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("missing string attribute {key}")))
}

pub(crate) fn opt_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Result<T, StoreError> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("missing number attribute {key}")))
}

pub(crate) fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Page tokens are DynamoDB's LastEvaluatedKey (string attributes only), as JSON.
pub(crate) fn encode_token(key: Option<&Item>) -> Option<String> {
    let key = key?;
    let flat: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    serde_json::to_string(&flat).ok()
}

/// A page token of a query on an index: exactly the table's and the index's keys, none
/// empty, in the partition being queried and within the sort keys it reads (`sort` names
/// the index's sort key and the prefix the query requires). Anything else is
/// `BadPageToken`, never a DynamoDB error.
pub(crate) fn decode_index_token(
    token: Option<String>,
    partition: (&str, &str),
    sort: (&str, &str),
) -> Result<Option<Item>, StoreError> {
    let Some(key) = decode_token(token)? else {
        return Ok(None);
    };
    let text = |name: &str| {
        key.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let names_ok = key.len() == 4
        && ["pk", "sk", partition.0, sort.0]
            .iter()
            .all(|name| text(name).is_some_and(|v| !v.is_empty()));
    let inside = text(partition.0) == Some(partition.1)
        && text(sort.0).is_some_and(|v| v.starts_with(sort.1));
    if names_ok && inside {
        Ok(Some(key))
    } else {
        Err(StoreError::BadPageToken)
    }
}

pub(crate) fn decode_token(token: Option<String>) -> Result<Option<Item>, StoreError> {
    let Some(token) = token else { return Ok(None) };
    let flat: HashMap<String, String> =
        serde_json::from_str(&token).map_err(|_| StoreError::BadPageToken)?;
    Ok(Some(flat.into_iter().map(|(k, v)| (k, s(v))).collect()))
}

/// DynamoDB's own limit for one BatchWriteItem call.
pub const BATCH: usize = 25;

/// How many times a batch's unprocessed rest is sent again before giving up.
pub(crate) const ATTEMPTS: u32 = 8;

/// Writes every request in batches of 25 through `send`, which performs one BatchWriteItem
/// call and returns the requests DynamoDB left unprocessed. BatchWriteItem is not atomic:
/// under throttling it accepts part of a batch, and the rest is sent again with a growing
/// pause until nothing is left, or the write fails loudly.
///
/// `send` is a parameter so that a test can make DynamoDB Local, which never throttles,
/// leave part of a batch unprocessed.
pub async fn write_all<F, Fut>(requests: Vec<WriteRequest>, mut send: F) -> Result<(), StoreError>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<WriteRequest>, StoreError>>,
{
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let mut pending: Vec<WriteRequest> = requests.by_ref().take(BATCH).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            pending = send(pending).await?;
            if !pending.is_empty() {
                attempt += 1;
                if attempt > ATTEMPTS {
                    // Throttling that outlasts the retries: the service is unavailable, the
                    // data are fine.
                    return Err(backend(Unprocessed(pending.len())));
                }
                backoff(attempt).await;
            }
        }
    }
    Ok(())
}

/// What a batch call still had unprocessed after every retry.
#[derive(Debug, thiserror::Error)]
#[error("{0} items still unprocessed after {ATTEMPTS} retries")]
pub struct Unprocessed(pub usize);

/// The pause before retry `attempt` (1-based) of a batch's unprocessed rest: 50 ms, doubling.
pub(crate) async fn backoff(attempt: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(10))).await;
}

/// One real BatchWriteItem call on `table`, returning what was left unprocessed.
pub async fn batch_write_once(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<Vec<WriteRequest>, StoreError> {
    let out = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(backend)?;
    Ok(out
        .unprocessed_items()
        .and_then(|u| u.get(table))
        .cloned()
        .unwrap_or_default())
}

pub(crate) fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    Ok(WriteRequest::builder()
        .put_request(
            aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(backend)?,
        )
        .build())
}

/// Every item a query matches, following `LastEvaluatedKey` from page to page.
pub(crate) async fn query_all(query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// What a failed transaction means when no caller-specific reading applies: a condition
/// refused or a concurrent transaction on the same items is a conflict (409, try again),
/// anything else the backend failing (503).
pub(crate) fn transaction_error(
    e: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> StoreError {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let conflicting = match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    };
    if conflicting {
        StoreError::Conflict { expected: 0 }
    } else {
        backend(e)
    }
}

/// Reads items by key, consistently, 100 at a time (BatchGetItem's limit), resending
/// unprocessed keys; only the attributes `projection` names, if given.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    mut keys: Vec<(String, &str)>,
    projection: Option<&str>,
) -> Result<Vec<Item>, StoreError> {
    // BatchGetItem refuses a request that names the same key twice.
    keys.sort_unstable();
    keys.dedup();
    let mut found = Vec::new();
    for chunk in keys.chunks(100) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk
                        .iter()
                        .map(|(pk, sk)| Item::from([("pk".into(), s(pk)), ("sk".into(), s(*sk))]))
                        .collect(),
                ))
                .consistent_read(true)
                .set_projection_expression(projection.map(str::to_string))
                .build()
                .map_err(backend)?,
        );
        let mut attempt = 0;
        while let Some(request) = pending.take() {
            if attempt > 0 {
                if attempt > ATTEMPTS {
                    return Err(backend(Unprocessed(request.keys().len())));
                }
                backoff(attempt).await;
            }
            attempt += 1;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(backend)?;
            if let Some(items) = out.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
    }
    Ok(found)
}

/// The outcome of a `PutItem` conditioned on the item being absent: `true` if this write
/// created it, `false` if it existed.
pub(crate) fn created<O>(
    result: Result<
        O,
        aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>,
    >,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(backend(e)),
    }
}
