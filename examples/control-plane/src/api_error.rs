//! Errors as HTTP answers: a status from the Sandkit error kind, and a JSON body
//! `{"error": {"kind", "message", "retryable"}}` whose message says what to do next.
//!
//! | error kind | status |
//! |---|---|
//! | `invalid_input` (and malformed JSON, query or path) | 400 |
//! | `not_found` | 404 |
//! | `busy`, `conflict`, `already_exists`, `no_active_session`, `session_unavailable`, `snapshot_unavailable` | 409 |
//! | `unsupported` | 501 |
//! | `provider`, `rate_limited` (with `Retry-After`), `credentials`, `setup_failed` | 503 |
//! | `storage`, `corrupt`, anything else | 500 |

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sandkit_core::{Error, ErrorKind};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A Sandkit error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        ApiError(error)
    }
}

impl ApiError {
    /// A 400 answer for input the handler refused.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(Error::invalid_input(message))
    }
}

/// The HTTP status for an error kind.
pub fn status_for(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Busy
        | ErrorKind::Conflict
        | ErrorKind::AlreadyExists
        | ErrorKind::NoActiveSession
        | ErrorKind::SessionUnavailable
        | ErrorKind::SnapshotUnavailable => StatusCode::CONFLICT,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Provider { .. }
        | ErrorKind::RateLimited { .. }
        | ErrorKind::Credentials { .. }
        | ErrorKind::SetupFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = status_for(error.kind());
        if status.is_server_error() {
            tracing::warn!(kind = error.kind().name(), error = %error, "request failed");
        }
        let body = json!({
            "error": {
                "kind": error.kind().name(),
                "message": error.message(),
                "retryable": error.is_retryable(),
            }
        });
        let mut response = (status, Json(body)).into_response();
        if let ErrorKind::RateLimited {
            retry_after: Some(wait),
        } = error.kind()
        {
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// `axum::Json`, answering a malformed body with a 400 [`ApiError`].
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "invalid JSON body: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// `axum::extract::Query`, answering malformed parameters with a 400 [`ApiError`].
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "invalid query: {}",
                rejection.body_text()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn kinds_map_to_statuses() {
        let cases = [
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Busy, 409),
            (ErrorKind::NoActiveSession, 409),
            (ErrorKind::SessionUnavailable, 409),
            (ErrorKind::Unsupported, 501),
            (
                ErrorKind::Provider {
                    status: Some(502),
                    code: None,
                },
                503,
            ),
            (
                ErrorKind::Credentials {
                    service: "github".into(),
                    variable: Some("GITHUB_TOKEN".into()),
                },
                503,
            ),
            (ErrorKind::Storage, 500),
        ];
        for (kind, status) in cases {
            assert_eq!(status_for(&kind).as_u16(), status, "{kind:?}");
        }
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let error = Error::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
            "slow down",
        );
        let response = ApiError(error).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
