//! The error body every function returns, and JSON responses.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use tdb_domain::rights::Denied;

/// An error answer: `{"error": {"code", "message", "field"?}}`. Internal details never go
/// in it; they are logged by the caller with the request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input: names the field (or `line N` of an uploaded file) and the reason.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(400, "invalid_input", message)
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(401, code, message)
    }

    pub fn forbidden(denied: Denied) -> ApiError {
        let code = match denied {
            Denied::OutsideTerritory => "outside_territory",
            Denied::OutsideStructure => "outside_structure",
            Denied::ActionNotAllowed => "action_not_allowed",
        };
        ApiError::new(403, code, denied.to_string())
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "body_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "method_not_allowed",
            "method not allowed on this route",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(500, "internal", "internal error; it has been logged")
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            503,
            "unavailable",
            "a backend service is unavailable; retry later",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        json(self.status, &serde_json::json!({ "error": self }))
    }
}

impl From<ApiError> for Response<Body> {
    fn from(e: ApiError) -> Self {
        e.into_response()
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let (status, body) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (
            500,
            r#"{"error":{"code":"internal","message":"internal error"}}"#.into(),
        ),
    };
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// 204 No Content.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
