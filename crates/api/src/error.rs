//! The error body every function returns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tdb_domain::rights::Denied;
use utoipa::ToSchema;

/// An error answer: `{"error": {"code", "message", "field"?}}`. Internal details never go
/// in it; they are logged by the caller with the request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub status: u16,
    /// A stable machine code (`invalid_input`, `missing_token`, `outside_territory`...).
    #[schema(value_type = String)]
    pub code: &'static str,
    /// What went wrong, in English, for a person reading the answer.
    pub message: String,
    /// For bad input: the field (a JSON path such as `person.email`, a query or path
    /// parameter, or `line N` of an uploaded file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The JSON document of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input: names the field (or `line N` of an uploaded file) and the reason.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::invalid_as("invalid_input", field, message)
    }

    /// Bad input with a code of its own, for clients that explain the refusal in their
    /// language (the password page translates `password_too_short`...).
    pub fn invalid_as(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(400, code, message)
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

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "method_not_allowed",
            "method not allowed on this route",
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "body_too_large",
            "the request body exceeds this route's size limit",
        )
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            415,
            "unsupported_media_type",
            "this route takes a JSON body (Content-Type: application/json)",
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
}

impl ApiError {
    /// What a storage failure becomes for the caller; the details go to the log, never a
    /// stored value (it may be a name or an address).
    pub fn from_store(e: tdb_domain::ports::StoreError) -> ApiError {
        use tdb_domain::ports::StoreError;
        match e {
            StoreError::Duplicate(what) => {
                ApiError::conflict("duplicate", format!("{what} already exists"))
            }
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict { .. } => ApiError::conflict(
                "concurrent_change",
                "the record changed during the request; try again",
            ),
            StoreError::RoleWithdrawn => ApiError::new(
                403,
                "role_withdrawn",
                "your rights on this structure changed since you signed in: sign in again",
            ),
            StoreError::BadPageToken => ApiError::invalid("page", "invalid page token"),
            e @ StoreError::Backend(_) => {
                // Display only: a backend's debug output may quote keys, which hold addresses.
                tracing::error!(error = %e, "storage backend failed");
                ApiError::unavailable()
            }
            StoreError::Corrupt(_) => {
                tracing::error!("stored data could not be read");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Codes and statuses only: bodies and fields may hold personal data.
        tracing::info!(status = self.status, code = self.code, "refused");
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(ErrorBody { error: self })).into_response()
    }
}

/// A JSON response with a status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
