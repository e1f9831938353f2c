//! What can go wrong in a business operation. The server maps each variant to one HTTP
//! status and one stable error code, in one place.

use std::time::Duration;

/// The result of a business operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed cause, kept for the log and never shown to clients.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Domain errors. Each variant means one thing a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not make sense, before any rule is applied.
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
    /// Wrong email or password; the same for both.
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// The password is right but the address was never confirmed.
    #[error("the email address is not verified yet")]
    EmailNotVerified,
    /// An administrator disabled the account.
    #[error("the account is disabled")]
    AccountDisabled,
    /// An email verification or password reset token that is unknown, used or expired.
    #[error("the link is invalid, already used or expired")]
    InvalidOneTimeToken,
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    /// No valid access token: missing, malformed, expired, or its session ended.
    #[error("a valid access token is required")]
    Unauthenticated,
    /// Authenticated, but not allowed.
    #[error("this action needs the admin role")]
    Forbidden,
    /// Client authentication failed (unknown client, wrong or missing secret).
    #[error("client authentication failed")]
    InvalidClient,
    /// The client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// An authorization code that is unknown, used, expired, or not this client's.
    #[error("{0}")]
    InvalidGrant(String),
    /// The access token lacks the scope this endpoint needs (`scope`, space-separated
    /// when any of several would do).
    #[error("{message}")]
    InsufficientScope {
        scope: &'static str,
        message: String,
    },
    /// A requested scope is not allowed.
    #[error("{0}")]
    InvalidScope(String),
    /// The current password given for a password change is wrong.
    #[error("the current password is wrong")]
    InvalidCurrentPassword,
    /// The thing does not exist, or is not the caller's to see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many failed logins for this address or from this IP: wait.
    #[error("too many failed logins; try again later")]
    TooManyAttempts { retry_after: Duration },
    /// Too much work queued: try again after the given delay.
    #[error("the server is busy; try again shortly")]
    Overloaded { retry_after: Duration },
    /// A dependency (the database) does not answer.
    #[error("a dependency is unavailable: {reason}")]
    Unavailable {
        reason: &'static str,
        #[source]
        source: Option<Cause>,
    },
    /// Anything unexpected. The cause goes to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl Error {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        match e {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => Self::Unavailable {
                reason: "database_unreachable",
                source: Some(Box::new(e)),
            },
            other => Self::Internal(Box::new(other)),
        }
    }
}
