//! Step-up: sensitive actions (changing the password, the two-factor settings, every
//! admin write) need the session to have authenticated within `auth.fresh_age`. A session
//! authenticated when it was opened (a login's `created_at`, an app session's
//! `auth_time`) and whenever its user proved themselves again
//! ([`Gatehouse::reauthenticate`]: the password, and a second factor when the account has
//! one). The check reads the session as stored now, inside the action's transaction, and
//! the clock is the injected one. An impersonated session never passes it.

use chrono::{DateTime, Utc};
use gatehouse_entity::{sessions, users};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use secrecy::SecretString;

use crate::identity::hashing::{has_password, stored_password};
use crate::identity::totp::{FirstFactor, amr_of};
use crate::identity::types::{Email, Password};
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::Principal;
use crate::{Error, Gatehouse, Result};

/// When a session last proved who its user is.
pub(crate) fn authenticated_at(session: &sessions::Model) -> DateTime<Utc> {
    let opened = session.auth_time.unwrap_or(session.created_at);
    session
        .reauthenticated_at
        .map_or(opened, |again| again.max(opened))
}

impl Gatehouse {
    /// Refuses with [`Error::ReauthenticationRequired`] unless `session` authenticated
    /// within `auth.fresh_age`.
    /// A session an admin opened as the user (impersonation) is never fresh: it cannot
    /// change credentials at all.
    pub(crate) fn require_fresh_session(&self, session: &sessions::Model) -> Result<()> {
        if session.impersonator_id.is_some() {
            return Err(Error::ImpersonatedSession);
        }
        let fresh_age =
            chrono::Duration::from_std(self.settings.auth.fresh_age).unwrap_or_default();
        if authenticated_at(session) + fresh_age > self.clock.now() {
            Ok(())
        } else {
            Err(Error::ReauthenticationRequired)
        }
    }

    /// [`Self::require_fresh_session`] for the session of `principal`, read in `conn` (the
    /// action's transaction).
    pub(crate) async fn require_fresh(
        &self,
        conn: &impl ConnectionTrait,
        principal: &Principal,
    ) -> Result<()> {
        let session = sessions::Entity::find_by_id(principal.session_id)
            .one(conn)
            .await?
            .filter(|s| s.user_id == principal.user_id && s.revoked_at.is_none())
            .ok_or(Error::Unauthenticated)?;
        self.require_fresh_session(&session)
    }

    /// Whether the session of `principal` may take a sensitive action now (pages ask for
    /// the password first when it may not).
    pub async fn session_is_fresh(&self, principal: &Principal) -> Result<bool> {
        match self.require_fresh(&self.db, principal).await {
            Ok(()) => Ok(true),
            Err(Error::ReauthenticationRequired) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks the caller's session freshly authenticated after checking the password (and
    /// `code`, a TOTP or recovery code, when the account has two-factor authentication).
    /// Wrong answers count as failed logins of the account, under its lockout.
    pub async fn reauthenticate(
        &self,
        principal: &Principal,
        password: SecretString,
        code: Option<SecretString>,
        meta: &RequestMeta,
    ) -> Result<()> {
        if principal.impersonator_id.is_some() {
            return Err(Error::ImpersonatedSession);
        }
        let user = users::Entity::find_by_id(principal.user_id)
            .one(&self.db)
            .await?
            .ok_or(Error::Unauthenticated)?;
        // An account made by a provider sign-in has no password to prove: it proves
        // itself by signing in there again (a new login is fresh). No failure counted.
        if !has_password(&user) {
            return Err(Error::invalid(
                "no_password",
                "password: this account has no password; sign in again with its provider",
            ));
        }
        let password = Password::presented(password, &self.settings.password, "password")?;
        if user.mfa_enabled_at.is_some() && code.is_none() {
            return Err(Error::MfaCodeRequired);
        }
        let email = Email::parse(&user.email)?;
        let attempt = self.reserve_login_attempt(&email, None).await?;
        let matches = match self.hasher.verify(&password, stored_password(&user)).await {
            Ok(verification) => verification.matches,
            Err(e) => {
                self.release_login_attempt(&self.writer, &attempt).await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        if !matches {
            self.record_failed_login(attempt, Some(&user), &email, meta)
                .await?;
            return Err(Error::InvalidCurrentPassword);
        }
        let txn = self.begin_revoking().await?;
        let factor = match (&code, user.mfa_enabled_at) {
            (Some(code), Some(_)) => {
                match self.use_second_factor(&txn, user.id, code, now).await? {
                    Some(factor) => Some(factor),
                    None => {
                        drop(txn);
                        self.record_failed_login(attempt, Some(&user), &email, meta)
                            .await?;
                        return Err(Error::InvalidMfaCode);
                    }
                }
            }
            _ => None,
        };
        let mut change = sessions::ActiveModel {
            id: Set(principal.session_id),
            reauthenticated_at: Set(Some(now)),
            ..Default::default()
        };
        if factor.is_some() {
            change.amr = Set(Some(amr_of(FirstFactor::Password, factor)));
        }
        change.update(&txn).await?;
        self.release_login_attempt(&txn, &attempt).await?;
        self.clear_login_failures(&txn, &attempt).await?;
        let mut entry =
            AuditEntry::by_user(AuditEvent::Reauthenticated, user.id).session(principal.session_id);
        if let Some(factor) = factor {
            entry = entry.details(serde_json::json!({ "second_factor": factor.as_str() }));
        }
        audit::record(&txn, now, meta, entry).await?;
        // The session row changed: the view of live sessions is emptied.
        self.commit_revoking(txn).await
    }
}
