//! `ApiError`: every HTTP error as `{"error": "..."}` with its status, mapped in one place.
//! Server-side failures get a generic message plus an `errorId` that is also logged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::dispatch::DispatchError;
use crate::plugin::{self, FaultKind, types::PluginError};
use crate::sessions::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not signed in")]
    Unauthorized,
    /// A sign-in that failed; which part was wrong is not said.
    #[error("wrong e-mail or password")]
    WrongCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts; try again later")]
    TooManyRequests(u64),
    /// An uploaded component was refused (does not compile, link, describe or pass checks).
    #[error("plugin refused: {0}")]
    UnprocessablePlugin(String),
    /// The plugin failed (trap, invalid output, its own internal error). The reason is in
    /// the plugin's journal under the error id, when it has one.
    #[error("plugin failure: {reason}")]
    PluginFailed { reason: String, error_id: Option<String> },
    /// The plugin is not available (e.g. isolated after repeated faults).
    #[error("plugin unavailable: {0}")]
    PluginUnavailable(String),
    #[error("plugin timed out: {reason}")]
    PluginTimeout { reason: String, error_id: String },
    /// The host itself failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::WrongCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnprocessablePlugin(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PluginFailed { .. } => StatusCode::BAD_GATEWAY,
            ApiError::PluginUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PluginTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = if status.is_server_error() {
            // A plugin's failure already has its id, under which its journal keeps the reason.
            let error_id = match &self {
                ApiError::PluginFailed { error_id: Some(id), .. } | ApiError::PluginTimeout { error_id: id, .. } => {
                    id.clone()
                }
                _ => uuid::Uuid::new_v4().to_string(),
            };
            tracing::error!(error_id, status = status.as_u16(), "{self}");
            let message = match &self {
                ApiError::PluginFailed { .. } => "the plugin failed",
                ApiError::PluginUnavailable(_) => "the plugin is unavailable",
                ApiError::PluginTimeout { .. } => "the plugin timed out",
                _ => "internal server error",
            };
            json!({ "error": message, "errorId": error_id })
        } else {
            json!({ "error": self.to_string() })
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests(seconds) = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthorized => ApiError::Unauthorized,
            AuthError::InvalidInput(m) => ApiError::BadRequest(m),
            AuthError::Conflict(m) => ApiError::Conflict(m),
            AuthError::NotFound(m) => ApiError::NotFound(m),
            AuthError::Db(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<plugin::Error> for ApiError {
    fn from(err: plugin::Error) -> Self {
        match err {
            plugin::Error::Guest(refusal) => match refusal {
                PluginError::InvalidInput(m) => ApiError::BadRequest(m),
                PluginError::Unauthorized(_) => ApiError::Unauthorized,
                PluginError::Forbidden(m) => ApiError::Forbidden(m),
                PluginError::NotFound(m) => ApiError::NotFound(m),
                PluginError::Conflict(m) => ApiError::Conflict(m),
                // The runtime turns these into `Error::Internal`, with an id.
                PluginError::Internal(m) => ApiError::PluginFailed { reason: m, error_id: None },
            },
            plugin::Error::Internal { plugin, message, error_id } => {
                ApiError::PluginFailed { reason: format!("{plugin}: {message}"), error_id: Some(error_id) }
            }
            plugin::Error::Fault { kind: FaultKind::Timeout, plugin, message, error_id } => {
                ApiError::PluginTimeout { reason: format!("{plugin}: {message}"), error_id }
            }
            plugin::Error::Fault { kind, plugin, message, error_id } => {
                ApiError::PluginFailed { reason: format!("{plugin} ({kind}): {message}"), error_id: Some(error_id) }
            }
            plugin::Error::Isolated { plugin, retry_after } => {
                ApiError::PluginUnavailable(format!("{plugin}: isolated for {retry_after:?}"))
            }
            plugin::Error::Host(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> Self {
        match err {
            DispatchError::Plugin(e) => e.into(),
            DispatchError::Conflict(m) => ApiError::Conflict(m),
            DispatchError::ValueTooLarge(m) => ApiError::BadRequest(m),
            DispatchError::Db(e) => ApiError::Internal(e.to_string()),
            DispatchError::Internal(m) => ApiError::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_outcomes_map_to_the_contract_statuses() {
        let fault =
            |kind| plugin::Error::Fault { plugin: "p".into(), kind, message: String::new(), error_id: "e".into() };
        let cases = [
            (plugin::Error::Guest(PluginError::InvalidInput(String::new())), 400),
            (plugin::Error::Guest(PluginError::Unauthorized(String::new())), 401),
            (plugin::Error::Guest(PluginError::Forbidden(String::new())), 403),
            (plugin::Error::Guest(PluginError::NotFound(String::new())), 404),
            (plugin::Error::Guest(PluginError::Conflict(String::new())), 409),
            (plugin::Error::Guest(PluginError::Internal(String::new())), 502),
            (fault(FaultKind::Trap), 502),
            (fault(FaultKind::InvalidOutput), 502),
            (fault(FaultKind::Resources), 502),
            (fault(FaultKind::Timeout), 504),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).status().as_u16(), status);
        }
    }
}
