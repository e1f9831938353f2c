//! Sessions: one authenticated login of one user. A login opens one; the refresh token
//! family and every access token point at it; revoking it ends all of them at once.
//!
//! - [`login`]: the password login that opens a session (API and hosted pages).
//! - [`refresh`]: refresh-token rotation and reuse detection.
//! - [`live`]: the does-this-token's-session-still-stand check every request makes, from
//!   an in-process view of recently read sessions.
//! - [`revoke`]: ending sessions (logout, the user's and admins' revokes, password changes).
//! - [`impersonation`]: admins opening a short session as a user, marked as theirs.
//! - [`step_up`]: the recent authentication sensitive actions need, and proving it again.
//! - [`browser`]: the hosted pages' browser sessions, tied to a login.
//! - [`revocations`]: the revocation feed that tells app backends.
//! - [`backchannel`]: back-channel logout notices to the apps of an ended session.

pub mod backchannel;
pub mod browser;
pub mod impersonation;
pub mod live;
pub mod login;
pub mod refresh;
pub mod revocations;
pub mod revoke;
pub mod step_up;

pub(crate) use refresh::insert_refresh_token;
pub(crate) use revoke::{revoke_session, revoke_user_sessions};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::identity::types::Role;
use crate::platform::audit::{AuditEntry, AuditEvent};
use crate::tokens::api_scopes::{ADMIN_SCOPE, ApiAccess};
use crate::{Error, Gatehouse, Result};

/// What a successful login or refresh hands to the app.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A new ID token, when an app session with the `openid` scope is refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The user behind a valid access token of a live session.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The role as stored now, not as it was when the token was issued.
    pub role: Role,
    /// The parts of Gatehouse's API the token was issued for.
    pub access: ApiAccess,
    /// The admin acting as the user, in an impersonated session (the token's `act`).
    pub impersonator_id: Option<Uuid>,
}

impl Principal {
    /// An audit entry of what this principal did to their own account: the admin is
    /// its actor in an impersonated session.
    pub(crate) fn audit_entry(&self, event: AuditEvent) -> AuditEntry {
        AuditEntry::in_session(event, self.user_id, self.session_id, self.impersonator_id)
    }

    /// Admin rights: the admin role now, and a token issued for the admin API.
    pub(crate) fn require_admin(&self) -> Result<()> {
        if !self.access.admin {
            return Err(Error::InsufficientScope {
                scope: ADMIN_SCOPE,
                message: format!("the admin API needs a token with the `{ADMIN_SCOPE}` scope"),
            });
        }
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// A session as its owner or an admin sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the access token that asked.
    pub current: bool,
}

/// Why a session ended; stored on the row and shown in the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RevokeReason {
    Logout,
    RevokedByUser,
    RevokedByAdmin,
    PasswordReset,
    PasswordChanged,
    AccountDisabled,
    Banned,
    RefreshTokenReuse,
    TokenRevoked,
    ConsentWithdrawn,
    AuthorizationCodeReused,
    LoginEnded,
    MfaEnabled,
    ImpersonatorLostRights,
    EmailChangeUndone,
    AccountDeleted,
    IdentityUnlinked,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::RevokedByAdmin => "revoked_by_admin",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::AccountDisabled => "account_disabled",
            RevokeReason::Banned => "banned",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::TokenRevoked => "token_revoked",
            RevokeReason::ConsentWithdrawn => "consent_withdrawn",
            RevokeReason::AuthorizationCodeReused => "authorization_code_reused",
            RevokeReason::LoginEnded => "login_ended",
            RevokeReason::MfaEnabled => "mfa_enabled",
            RevokeReason::ImpersonatorLostRights => "impersonator_lost_rights",
            RevokeReason::EmailChangeUndone => "email_change_undone",
            RevokeReason::AccountDeleted => "account_deleted",
            RevokeReason::IdentityUnlinked => "identity_unlinked",
        }
    }
}

/// A login from the hosted pages: a session with no tokens yet.
#[derive(Debug, Clone, Copy)]
pub struct BrowserLogin {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl Gatehouse {
    /// When an access token issued at `now` expires.
    pub(crate) fn access_token_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.tokens.ttl()).unwrap_or(chrono::Duration::MAX)
    }
}
