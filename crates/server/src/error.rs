//! The one place where errors become HTTP: a status, a stable snake_case `error` code and
//! a sentence for humans. A 5xx never shows its cause; the cause chain goes to the log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use gatehouse_core::Error as CoreError;
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Malformed JSON, a missing or mistyped field, a bad query string.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no such resource")]
    NotFound,
}

/// The JSON body of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    /// The stable code clients match on (listed in the README).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound => "not_found",
            ApiError::Core(e) => match e {
                CoreError::InvalidInput { code, .. } | CoreError::Conflict { code, .. } => code,
                CoreError::InvalidCredentials => "invalid_credentials",
                CoreError::EmailNotVerified => "email_not_verified",
                CoreError::AccountDisabled => "account_disabled",
                CoreError::InvalidOneTimeToken => "invalid_token",
                CoreError::InvalidRefreshToken => "invalid_refresh_token",
                CoreError::Unauthenticated => "unauthenticated",
                CoreError::Forbidden => "forbidden",
                CoreError::InvalidCurrentPassword => "invalid_current_password",
                CoreError::NotFound(_) => "not_found",
                CoreError::Overloaded { .. } => "overloaded",
                CoreError::Unavailable { reason, .. } => reason,
                CoreError::Internal(_) => "internal_error",
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Core(e) => match e {
                CoreError::InvalidInput { .. }
                | CoreError::InvalidOneTimeToken
                | CoreError::InvalidCurrentPassword => StatusCode::BAD_REQUEST,
                CoreError::InvalidCredentials
                | CoreError::InvalidRefreshToken
                | CoreError::Unauthenticated => StatusCode::UNAUTHORIZED,
                CoreError::EmailNotVerified | CoreError::AccountDisabled | CoreError::Forbidden => {
                    StatusCode::FORBIDDEN
                }
                CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                CoreError::Conflict { .. } => StatusCode::CONFLICT,
                CoreError::Overloaded { .. } | CoreError::Unavailable { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status.is_server_error() {
            log_cause_chain(self);
            match self {
                ApiError::Core(CoreError::Overloaded { .. }) => self.to_string(),
                _ => "the server could not handle this request; try again later".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::Core(CoreError::Unauthenticated) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            ApiError::Core(CoreError::Overloaded { retry_after }) => {
                let seconds = retry_after.as_secs().max(1).to_string();
                if let Ok(value) = HeaderValue::from_str(&seconds) {
                    response.insert_header((header::RETRY_AFTER, value));
                }
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message,
        })
    }
}

fn log_cause_chain(error: &ApiError) {
    let mut chain = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    tracing::error!(code = error.code(), cause = %chain.join(": "), "request failed");
}
