//! The audit log: one row per security-relevant event, written in the same transaction
//! as the change it records.

use chrono::{DateTime, Utc};
use gatehouse_entity::audit_events;
use sea_orm::{ActiveModelTrait, ConnectionTrait, NotSet, Set};
use serde::Serialize;
use uuid::Uuid;

use crate::Result;

/// Where a request came from, as far as the server can tell.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// Metadata of an operation started from the command line.
    pub fn command_line() -> Self {
        Self {
            ip: None,
            user_agent: Some("gatehouse-cli".to_owned()),
        }
    }

    /// The user agent, cut to what the database keeps.
    pub(crate) fn user_agent_stored(&self) -> Option<String> {
        self.user_agent
            .as_ref()
            .map(|ua| ua.chars().take(512).collect())
    }
}

/// Every kind of audited event. The names are stable: operators filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    Signup,
    SignupExistingEmail,
    EmailVerified,
    VerificationEmailRequested,
    LoginSucceeded,
    LoginFailed,
    Logout,
    SessionRevoked,
    RefreshTokenReused,
    PasswordResetRequested,
    PasswordResetCompleted,
    PasswordChanged,
    Reauthenticated,
    MfaChallenged,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodesRegenerated,
    ImpersonationStarted,
    IdentityLinked,
    IdentityUnlinked,
    RoleChanged,
    UserDisabled,
    UserEnabled,
    /// An admin banned an account or changed its ban (details: reason, until).
    UserBanned,
    /// An admin lifted an account's ban.
    UserUnbanned,
    UserCreated,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    AuthorizationCodeExchanged,
    AuthorizationCodeReused,
    ConsentGranted,
    ConsentWithdrawn,
    BackchannelLogoutDelivered,
    BackchannelLogoutFailed,
    /// Failed logins locked an address for clients without a trusted device token.
    LoginLocked,
    /// An admin ended an account's login lock.
    LoginLockCleared,
    /// The periodic purge ran (on one instance of several; details: rows removed).
    ExpiredRowsPurged,
    /// A queued mail was given up (details: mail id, kind, attempts, last error).
    MailDead,
    /// An admin put a dead mail back in the queue.
    MailRetried,
    /// A user asked to change their address (details: whether a link went out).
    EmailChangeRequested,
    /// A user confirmed a new address (details: the old and new domains, never addresses).
    EmailChanged,
    /// The old address undid a change (details: sessions ended).
    EmailChangeUndone,
    /// A user deleted their account (the entries about it keep its id, not its data).
    AccountDeleted,
}

impl AuditEvent {
    /// The stable name stored and shown in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Signup => "signup",
            AuditEvent::SignupExistingEmail => "signup_existing_email",
            AuditEvent::EmailVerified => "email_verified",
            AuditEvent::VerificationEmailRequested => "verification_email_requested",
            AuditEvent::LoginSucceeded => "login_succeeded",
            AuditEvent::LoginFailed => "login_failed",
            AuditEvent::Logout => "logout",
            AuditEvent::SessionRevoked => "session_revoked",
            AuditEvent::RefreshTokenReused => "refresh_token_reused",
            AuditEvent::PasswordResetRequested => "password_reset_requested",
            AuditEvent::PasswordResetCompleted => "password_reset_completed",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::Reauthenticated => "reauthenticated",
            AuditEvent::MfaChallenged => "mfa_challenged",
            AuditEvent::MfaEnabled => "mfa_enabled",
            AuditEvent::MfaDisabled => "mfa_disabled",
            AuditEvent::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditEvent::ImpersonationStarted => "impersonation_started",
            AuditEvent::IdentityLinked => "identity_linked",
            AuditEvent::IdentityUnlinked => "identity_unlinked",
            AuditEvent::RoleChanged => "role_changed",
            AuditEvent::UserDisabled => "user_disabled",
            AuditEvent::UserEnabled => "user_enabled",
            AuditEvent::UserBanned => "user_banned",
            AuditEvent::UserUnbanned => "user_unbanned",
            AuditEvent::UserCreated => "user_created",
            AuditEvent::ClientCreated => "client_created",
            AuditEvent::ClientUpdated => "client_updated",
            AuditEvent::ClientDeleted => "client_deleted",
            AuditEvent::ClientSecretRotated => "client_secret_rotated",
            AuditEvent::AuthorizationCodeExchanged => "authorization_code_exchanged",
            AuditEvent::AuthorizationCodeReused => "authorization_code_reused",
            AuditEvent::ConsentGranted => "consent_granted",
            AuditEvent::ConsentWithdrawn => "consent_withdrawn",
            AuditEvent::BackchannelLogoutDelivered => "backchannel_logout_delivered",
            AuditEvent::BackchannelLogoutFailed => "backchannel_logout_failed",
            AuditEvent::LoginLocked => "login_locked",
            AuditEvent::LoginLockCleared => "login_lock_cleared",
            AuditEvent::ExpiredRowsPurged => "expired_rows_purged",
            AuditEvent::MailDead => "mail_dead",
            AuditEvent::MailRetried => "mail_retried",
            AuditEvent::EmailChangeRequested => "email_change_requested",
            AuditEvent::EmailChanged => "email_changed",
            AuditEvent::EmailChangeUndone => "email_change_undone",
            AuditEvent::AccountDeleted => "account_deleted",
        }
    }
}

/// One event about to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    pub event: AuditEvent,
    pub actor: Option<Uuid>,
    pub subject: Option<Uuid>,
    pub session: Option<Uuid>,
    pub details: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An event that a user did to their own account.
    pub fn by_user(event: AuditEvent, user: Uuid) -> Self {
        Self {
            event,
            actor: Some(user),
            subject: Some(user),
            session: None,
            details: None,
        }
    }

    /// An event a user did to their own account in `session`, or that an admin did as
    /// them (`impersonator`, in an impersonated session): the admin is the actor.
    pub fn in_session(
        event: AuditEvent,
        user: Uuid,
        session: Uuid,
        impersonator: Option<Uuid>,
    ) -> Self {
        Self {
            event,
            actor: Some(impersonator.unwrap_or(user)),
            subject: Some(user),
            session: Some(session),
            details: None,
        }
    }

    pub fn session(mut self, session: Uuid) -> Self {
        self.session = Some(session);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

pub(crate) async fn record(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    meta: &RequestMeta,
    entry: AuditEntry,
) -> Result<()> {
    audit_events::ActiveModel {
        id: NotSet,
        occurred_at: Set(now),
        event: Set(entry.event.as_str().to_owned()),
        actor_user_id: Set(entry.actor),
        subject_user_id: Set(entry.subject),
        session_id: Set(entry.session),
        ip: Set(meta.ip.clone()),
        user_agent: Set(meta.user_agent_stored()),
        details: Set(entry.details.map(|d| d.to_string())),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// An audit event as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub event: String,
    pub actor_user_id: Option<Uuid>,
    pub subject_user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<serde_json::Value>,
}

impl From<audit_events::Model> for AuditRecord {
    fn from(m: audit_events::Model) -> Self {
        Self {
            id: m.id,
            occurred_at: m.occurred_at,
            event: m.event,
            actor_user_id: m.actor_user_id,
            subject_user_id: m.subject_user_id,
            session_id: m.session_id,
            ip: m.ip,
            user_agent: m.user_agent,
            details: m.details.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}
