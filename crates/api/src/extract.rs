//! Request extractors whose refusals are the shared JSON error body naming the field, never
//! axum's plain-text rejections.

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON request body. A body that does not parse answers 400 naming the field
/// (`email`, `person.last_name`, or `body` when the JSON itself is broken); an empty body
/// reads as `{}` so that a missing field is named too.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(CONTENT_TYPE).cloned();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_refused)?;
        // A missing content type is accepted (curl without -H); another type is not JSON.
        if let Some(value) = content_type {
            let essence = value.to_str().unwrap_or_default();
            let essence = essence.split(';').next().unwrap_or_default().trim();
            let is_json = essence.eq_ignore_ascii_case("application/json")
                || (essence.starts_with("application/") && essence.ends_with("+json"));
            if !is_json {
                return Err(ApiError::unsupported_media_type());
            }
        }
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            field_error(&path, "body", &e.into_inner().to_string())
        })?;
        Ok(JsonBody(value))
    }
}

/// The raw bytes of an uploaded file, within the route's body limit; an empty file is
/// refused.
#[derive(Debug)]
pub struct FileBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for FileBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_refused)?;
        if bytes.is_empty() {
            return Err(ApiError::invalid("body", "the file is empty"));
        }
        Ok(FileBody(bytes))
    }
}

/// Query parameters; a bad one answers 400 naming it.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                field_error(&path, "query", &e.into_inner().to_string())
            })
    }
}

/// Path parameters (always present once a route matched); a segment that is not valid
/// percent-encoded UTF-8 answers 400.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

fn body_refused(e: BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large()
    } else {
        ApiError::invalid("body", "the request body could not be read")
    }
}

/// Turns a serde error at `path` into a 400 naming the field. serde names a missing or
/// unknown field only in its message, so the name is taken from there.
fn field_error(path: &str, whole: &str, message: &str) -> ApiError {
    let named = ["missing field `", "unknown field `"].iter().find_map(|p| {
        message
            .split(p)
            .nth(1)?
            .split('`')
            .next()
            .map(str::to_string)
    });
    let field = match (named, path) {
        (Some(name), "." | "" | "?") => name,
        (Some(name), path) if path.ends_with(&name) => path.to_string(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "" | "?") => whole.to_string(),
        (None, path) => path.to_string(),
    };
    let reason = message.split(" at line ").next().unwrap_or(message);
    ApiError::invalid(field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Person {
        email: String,
        age: Option<u8>,
    }

    async fn json_of(body: &str, content_type: Option<&str>) -> Result<Person, ApiError> {
        let mut request = axum::http::Request::builder().method("POST").uri("/");
        if let Some(t) = content_type {
            request = request.header(CONTENT_TYPE, t);
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        JsonBody::<Person>::from_request(request, &())
            .await
            .map(|j| j.0)
    }

    #[tokio::test]
    async fn json_refusals_name_the_field() {
        let field = |r: Result<Person, ApiError>| r.unwrap_err().field.unwrap();
        assert_eq!(field(json_of("", None).await), "email");
        assert_eq!(field(json_of(r#"{"email":"a","x":1}"#, None).await), "x");
        assert_eq!(
            field(json_of(r#"{"email":"a","age":300}"#, None).await),
            "age"
        );
        assert_eq!(field(json_of("{not json", None).await), "body");
        assert!(
            json_of(r#"{"email":"a"}"#, Some("application/json; charset=utf-8"))
                .await
                .is_ok()
        );
        assert_eq!(
            json_of(r#"{"email":"a"}"#, Some("text/plain"))
                .await
                .unwrap_err()
                .status,
            415
        );
    }

    #[tokio::test]
    async fn query_refusals_name_the_parameter() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Page {
            page: Option<u32>,
        }
        let mut parts = axum::http::Request::builder()
            .uri("/x?page=abc")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let e = QueryParams::<Page>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("page")));
    }
}
