//! The server's one error type. Every failure becomes an HTTP status plus a JSON body
//! `{code, message}`; internal details are logged (without secrets) and never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use optovault_shared::wire::ApiErrorBody;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Log in to continue.",
        )
    }
    /// A failure that is ours, not the caller's; the cause is logged where it happened.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on the server; nothing was changed.",
        )
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn login_failed() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "Wrong username or password.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Client {
                status,
                code,
                message,
            } => (status, code.to_string(), message),
            ApiError::Store(StoreError::VersionConflict { record_id, current }) => (
                StatusCode::CONFLICT,
                "version_conflict".into(),
                format!(
                    "Record {record_id} is at version {current}; reload it and try again. Nothing was written."
                ),
            ),
            ApiError::Store(StoreError::Conflict(what)) => (
                StatusCode::CONFLICT,
                "conflict".into(),
                format!("{what} already exists."),
            ),
            ApiError::Store(StoreError::Unavailable(cause)) => {
                tracing::error!(
                    %cause,
                    "STORAGE UNAVAILABLE: the server cannot write to its data directory (disk full \
                     or read-only?); answering 503 until it can"
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable".into(),
                    "The server cannot write to its disk right now (it may be full or read-only), \
                     so nothing was saved. Try again in a few minutes."
                        .into(),
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_failure".into(),
                    "The server could not complete the request; nothing was changed.".into(),
                )
            }
        };
        let mut response = (status, Json(ApiErrorBody { code, message })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
