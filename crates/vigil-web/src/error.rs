//! One error type for every route: `{"error": {"code", "message"}}`.
//!
//! 5xx bodies are generic and the cause is logged; nothing from the database
//! or about a patient leaks into a body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed for your role")]
    Forbidden,
    /// Not allowed, for a reason the message gives (e.g. your own account).
    #[error("{0}")]
    ForbiddenBecause(String),
    #[error("missing or wrong CSRF token (send the x-csrf-token header from /api/v1/me)")]
    Csrf,
    #[error("too many failed sign-ins; try again later")]
    Throttled,
    #[error("password sign-in is off here: sign in through single sign-on")]
    PasswordOff,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {} bytes", crate::MAX_BODY_BYTES)]
    TooLarge,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            ApiError::Throttled => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ApiError::PasswordOff => (StatusCode::FORBIDDEN, "password_off"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "request failed");
        }
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ApiError::NotFound("resource"),
            StoreError::Conflict(_) => {
                ApiError::Conflict("conflicts with an existing record".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A JSON body that failed to parse is a 422 in our error shape, not axum's text.
/// A body over [`crate::MAX_BODY_BYTES`] is a 413.
pub fn bad_json(e: axum::extract::rejection::JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge;
    }
    ApiError::Invalid(e.body_text())
}

/// An integer id from the path. One that is not an integer names no
/// resource: a 404 in our error shape, not axum's plain-text 400.
pub struct Id(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<i64>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(_) => Err(ApiError::NotFound("resource")),
        }
    }
}

/// Two integer ids from the path (a patient's and one of theirs), as [`Id`].
pub struct Ids(pub i64, pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(i64, i64)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((a, b))) => Ok(Ids(a, b)),
            Err(_) => Err(ApiError::NotFound("resource")),
        }
    }
}
