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
    /// The password is right but an admin banned the account, until `until` (for good
    /// when `None`).
    #[error("the account is banned{}", ban_end(.until))]
    AccountBanned {
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
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
    /// A sensitive action, and the session did not authenticate within `auth.fresh_age`.
    #[error("this action needs a recent authentication: prove yourself again first")]
    ReauthenticationRequired,
    /// A sensitive action in a session an admin opened as the user (impersonation).
    #[error("an impersonated session cannot change credentials or account settings")]
    ImpersonatedSession,
    /// A second factor (TOTP or recovery code) that is wrong, or was used before.
    #[error("the code is wrong or was already used")]
    InvalidMfaCode,
    /// The account has two-factor authentication, and no code came with the password.
    #[error("this account needs a code from its authenticator app (or a recovery code)")]
    MfaCodeRequired,
    /// The thing does not exist, or is not the caller's to see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An upstream identity provider (`[[federation.providers]]`) failed, or answered
    /// something that cannot be trusted; the message names the step, never a secret.
    #[error("signing in with {provider} failed: {message}")]
    Upstream { provider: String, message: String },
    /// Too many failed logins for this address or from this IP: wait.
    #[error("too many failed logins; try again later")]
    TooManyAttempts { retry_after: Duration },
    /// Over a rate limit (`[rate_limit.<class>]`): the decision says which and until when.
    #[error("too many requests; try again in {} seconds", .0.retry_after.unwrap_or_default().as_secs().max(1))]
    RateLimited(Box<crate::rate_limit::decision::Decision>),
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

/// " until <RFC 3339 time>", or nothing for a ban without end.
fn ban_end(until: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    until
        .map(|u| {
            let end = u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            format!(" until {end}")
        })
        .unwrap_or_default()
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
        if database_unreachable(&e) {
            Self::Unavailable {
                reason: "database_unreachable",
                source: Some(Box::new(e)),
            }
        } else {
            Self::Internal(Box::new(e))
        }
    }
}

/// Whether a database error means "the database cannot be reached or cannot serve now"
/// (answered 503 with `Retry-After`, and over once it is back), not "this statement is
/// wrong" (a bug, 500). A pooled connection that the server dropped fails on its next
/// statement with an I/O error, not a connection error, so the statement errors are
/// looked into too.
pub fn database_unreachable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match error {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_unreachable(e),
        // sea-orm's own connection errors carry no sqlx error (e.g. a closed pool).
        DbErr::Conn(_) => true,
        _ => false,
    }
}

fn sqlx_unreachable(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    use sea_orm::sqlx::postgres::PgDatabaseError;
    use sea_orm::sqlx::sqlite::SqliteError;
    match error {
        // A protocol error is a connection that broke mid-conversation (a server that went
        // away between two messages): the next connection may well work.
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed => true,
        E::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                postgres_unavailable(pg.code())
            } else if db.try_downcast_ref::<SqliteError>().is_some() {
                db.code().is_some_and(|code| sqlite_unavailable(&code))
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs that mean the server cannot serve now: class 08 (connection
/// exception), 57P01-57P03 (admin or crash shutdown, cannot connect now: a server
/// stopping or starting), 53300 (too many connections).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300")
}

/// SQLite result codes that mean another writer held the database past the busy
/// timeout: 5 `SQLITE_BUSY` and 6 `SQLITE_LOCKED` (extended codes keep the primary one
/// in the low byte, e.g. 517 `SQLITE_BUSY_SNAPSHOT`).
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    use super::{postgres_unavailable, sqlite_unavailable};

    #[test]
    fn shutdown_and_connection_sqlstates_are_unavailable() {
        for code in [
            "08006", "08001", "08P01", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "42501", "22001"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn busy_and_locked_sqlite_codes_are_unavailable() {
        for code in ["5", "6", "517", "261", "262"] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "787", "11"] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }
}
