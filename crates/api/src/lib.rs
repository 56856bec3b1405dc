//! The HTTP edge every function shares. Each function is an `axum::Router` over its ports;
//! Lambda runs it with `lambda_http::run`, tests call it with `tower::ServiceExt::oneshot`,
//! and the local gateway serves it. What they all need is written once here:
//!
//! - [`Caller`]: the extractor that verifies the bearer access token (RS256, keys from the
//!   accounts function's JWKS) and yields the account and the roles it acts under;
//!   [`Caller::authorize`] applies the domain's rights decision (`tdb_domain::rights`).
//! - [`JsonBody`], [`QueryParams`], [`PathParams`], [`FileBody`]: extractors whose refusals
//!   are the shared error body naming the field.
//! - [`ApiError`]: the one error body, a machine code, a human message (English; French is
//!   for e-mails and pages) and, for bad input, the field.
//! - [`edge`]: the layers every router gets (JSON 404/405, body limit, security headers,
//!   panics turned into a logged 500).
//! - [`operation`]: mounts a handler on the path of its OpenAPI attribute.
//!
//! A handler that takes a [`Caller`] is unreachable without a valid token, even when the API
//! gateway's JWT authorizer is misconfigured.

mod cache;
pub mod csv;
mod environment;
mod error;
mod extract;
mod lookup;
mod openapi;
mod schema;
mod scope;
mod token;
pub mod views;

pub use cache::TtlCache;
pub use environment::{ConfigError, Environment, shipped_campaigns};
pub use error::{ApiError, ErrorBody, json, no_content};
pub use extract::{FileBody, JsonBody, PathParams, QueryParams};
pub use lookup::{Campaigns, STRUCTURE_TTL, Structures, not_opened, with_previous};
pub use openapi::{
    DryRunQuery, add_bearer, add_common_errors, operation, serve_description, with_file_limit,
};
pub use schema::{FinessSchema, RoleSchema};
pub use scope::Scope;
pub use token::{Caller, Claims, HasVerifier, TokenError, TokenVerifier};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest JSON body a route accepts unless it says otherwise.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest uploaded file: Lambda's synchronous payload limit is 6 MB, less room for the
/// rest of the event.
pub const MAX_FILE_BODY: usize = 6 * 1024 * 1024 - 64 * 1024;

/// The layers every function's router gets, outermost last:
/// - unknown paths answer a JSON 404, known paths with another method a JSON 405;
/// - bodies above [`MAX_JSON_BODY`] answer 413 (a route may allow more with its own
///   `DefaultBodyLimit`);
/// - `X-Content-Type-Options: nosniff` on every answer, and `Cache-Control: no-store` on
///   every answer that does not set its own (tokens, personal data and questionnaires must
///   never sit in a shared cache);
/// - a panic becomes a logged 500 with the error body instead of a dropped connection.
pub fn edge<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::internal().into_response()
        }))
}

/// `Cache-Control` for public documents that change only with a deployment or a key
/// rotation (key sets, discovery, OpenAPI): short enough for a rotation to spread quickly.
pub const PUBLIC_DOCUMENT: HeaderValue = HeaderValue::from_static("public, max-age=300");

/// The time, in Unix seconds. Functions take it as a parameter so tests can move it
/// (phases, link expiry, lockouts).
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Logs as a Lambda wants them: JSON lines, level from `RUST_LOG`, no timestamp (CloudWatch
/// stamps each line).
pub fn init_lambda_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
}
