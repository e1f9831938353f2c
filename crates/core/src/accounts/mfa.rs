//! Two-factor authentication settings of an account: enrolling an authenticator app
//! (TOTP), confirming it with a first code, removing it, and the recovery codes. Every
//! change is a sensitive action (a recent authentication, see
//! [`crate::sessions::step_up`]) and is audited; turning it on or off mails the owner.

use gatehouse_entity::{recovery_codes, totp_credentials, users};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::ExposeSecret;
use serde::Serialize;
use uuid::Uuid;

use crate::identity::totp::{FirstFactor, SecondFactor, amr_of, new_enrolment, new_recovery_codes};
use crate::identity::types::Email;
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::{Principal, RevokeReason, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// A started enrolment, as the user's authenticator app takes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpEnrolmentView {
    /// The secret in base32, to type into an app.
    pub secret: String,
    /// The `otpauth://totp/...` URI (what the QR code holds).
    pub otpauth_uri: String,
    /// The QR code of the URI, an SVG document drawn by the server.
    pub qr_svg: String,
}

/// A new set of recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodesView {
    /// Ten single-use codes; each replaces a TOTP code once.
    pub recovery_codes: Vec<String>,
}

fn conflict(code: &'static str, message: &str) -> Error {
    Error::Conflict {
        code,
        message: message.to_owned(),
    }
}

impl Gatehouse {
    /// Starts (or restarts) an enrolment: a new secret, pending until
    /// [`Self::confirm_totp`]. `409 mfa_already_enabled` while one is confirmed.
    pub async fn start_totp_enrolment(&self, principal: &Principal) -> Result<TotpEnrolmentView> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        self.require_fresh(&txn, principal).await?;
        let user = self.user_in(&txn, principal).await?;
        if user.mfa_enabled_at.is_some() {
            return Err(conflict(
                "mfa_already_enabled",
                "two-factor authentication is already on; remove it first to enrol again",
            ));
        }
        let enrolment = new_enrolment(
            &self.mfa_key,
            user.id,
            &self.settings.auth.totp_issuer,
            &user.email,
        )?;
        totp_credentials::Entity::insert(totp_credentials::ActiveModel {
            user_id: Set(user.id),
            secret_sealed: Set(enrolment.sealed.clone()),
            created_at: Set(now),
            confirmed_at: Set(None),
            last_used_step: Set(None),
        })
        .on_conflict(
            OnConflict::column(totp_credentials::Column::UserId)
                .update_columns([
                    totp_credentials::Column::SecretSealed,
                    totp_credentials::Column::CreatedAt,
                    totp_credentials::Column::ConfirmedAt,
                    totp_credentials::Column::LastUsedStep,
                ])
                .to_owned(),
        )
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(TotpEnrolmentView {
            secret: enrolment.secret.expose_secret().to_owned(),
            otpauth_uri: enrolment.otpauth_uri.expose_secret().to_owned(),
            qr_svg: enrolment.qr_svg,
        })
    }

    /// Finishes an enrolment with a first code of the app: two-factor authentication is
    /// on from now, and the answer holds the recovery codes, shown this once. The session
    /// that confirmed counts as authenticated with both factors (its freshness does not
    /// change); every other session of the account ends.
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<RecoveryCodesView> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_fresh(&txn, principal).await?;
        let user = self.user_in(&txn, principal).await?;
        if user.mfa_enabled_at.is_some() {
            return Err(conflict(
                "mfa_already_enabled",
                "two-factor authentication is already on",
            ));
        }
        let pending = totp_credentials::Entity::find_by_id(user.id)
            .filter(totp_credentials::Column::ConfirmedAt.is_null())
            .one(&txn)
            .await?;
        if pending.is_none() {
            return Err(conflict(
                "mfa_enrolment_not_started",
                "start an enrolment first (POST /api/v1/mfa/totp)",
            ));
        }
        if !self.use_totp_code(&txn, user.id, code, now, false).await? {
            return Err(Error::InvalidMfaCode);
        }
        totp_credentials::ActiveModel {
            user_id: Set(user.id),
            confirmed_at: Set(Some(now)),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        users::ActiveModel {
            id: Set(user.id),
            mfa_enabled_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        // The confirming session proved both factors; its freshness stays what it was
        // (confirming again and again must not keep a session fresh for ever). Its first
        // factor stays what its login was: a password, or an upstream provider.
        let session = gatehouse_entity::sessions::Entity::find_by_id(principal.session_id)
            .one(&txn)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let first = FirstFactor::of_amr(session.amr.as_deref());
        gatehouse_entity::sessions::ActiveModel {
            id: Set(principal.session_id),
            amr: Set(Some(amr_of(first, Some(SecondFactor::Totp)))),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        // Every other session logged in with the password alone, perhaps an intruder's:
        // they end, as after a password change.
        let revoked = revoke_user_sessions(
            &txn,
            user.id,
            Some(principal.session_id),
            RevokeReason::MfaEnabled,
            now,
        )
        .await?;
        let codes = self.replace_recovery_codes(&txn, user.id, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::MfaEnabled, user.id)
            .session(principal.session_id)
            .details(serde_json::json!({ "method": "totp", "sessions_revoked": revoked }));
        audit::record(&txn, now, meta, entry).await?;
        let notice = Mail::MfaEnabled { name: user.name };
        self.enqueue_mail(&txn, &Email::parse(&user.email)?, notice)
            .await?;
        self.commit_revoking(txn).await?;
        self.wake_mail_worker();
        Ok(codes)
    }

    /// Turns two-factor authentication off: the credential and the recovery codes go.
    /// `409 mfa_not_enabled` when there is none (a pending enrolment is dropped too).
    pub async fn remove_totp(&self, principal: &Principal, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_fresh(&txn, principal).await?;
        let user = self.user_in(&txn, principal).await?;
        if !clear_second_factors(&txn, &user, now).await? {
            txn.commit().await?;
            return Err(conflict(
                "mfa_not_enabled",
                "two-factor authentication is not on",
            ));
        }
        let entry = AuditEntry::by_user(AuditEvent::MfaDisabled, user.id)
            .session(principal.session_id)
            .details(serde_json::json!({ "method": "totp" }));
        audit::record(&txn, now, meta, entry).await?;
        let notice = Mail::MfaDisabled { name: user.name };
        self.enqueue_mail(&txn, &Email::parse(&user.email)?, notice)
            .await?;
        self.commit_revoking(txn).await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// An admin turns a user's two-factor authentication off (a lost phone without its
    /// recovery codes, or a second factor an intruder set up with a stolen password):
    /// the credential and codes go, every session of the account ends, and the owner is
    /// mailed. An admin write (step-up); not for the admin's own account.
    pub async fn admin_remove_mfa(
        &self,
        admin: &Principal,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        admin.require_admin()?;
        if user_id == admin.user_id {
            return Err(conflict(
                "cannot_modify_self",
                "use DELETE /api/v1/mfa/totp for your own account",
            ));
        }
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if !clear_second_factors(&txn, &user, now).await? {
            return Err(conflict(
                "mfa_not_enabled",
                "two-factor authentication is not on for this account",
            ));
        }
        let revoked =
            revoke_user_sessions(&txn, user.id, None, RevokeReason::RevokedByAdmin, now).await?;
        let entry = AuditEntry {
            event: AuditEvent::MfaDisabled,
            actor: Some(admin.user_id),
            subject: Some(user.id),
            session: None,
            details: Some(serde_json::json!({ "method": "totp", "sessions_revoked": revoked })),
        };
        audit::record(&txn, now, meta, entry).await?;
        let notice = Mail::MfaDisabled { name: user.name };
        self.enqueue_mail(&txn, &Email::parse(&user.email)?, notice)
            .await?;
        self.commit_revoking(txn).await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// A new set of recovery codes; the old ones stop working.
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<RecoveryCodesView> {
        let now = self.clock.now();
        // Serialised with every other change of the factors (confirm, remove, another
        // regeneration): two at once cannot leave both new sets valid.
        let txn = self.begin_revoking().await?;
        self.require_fresh(&txn, principal).await?;
        let user = self.user_in(&txn, principal).await?;
        if user.mfa_enabled_at.is_none() {
            return Err(conflict(
                "mfa_not_enabled",
                "two-factor authentication is not on",
            ));
        }
        let codes = self.replace_recovery_codes(&txn, user.id, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::RecoveryCodesRegenerated, user.id)
            .session(principal.session_id);
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(codes)
    }

    async fn user_in(
        &self,
        conn: &impl ConnectionTrait,
        principal: &Principal,
    ) -> Result<users::Model> {
        users::Entity::find_by_id(principal.user_id)
            .one(conn)
            .await?
            .ok_or(Error::Unauthenticated)
    }

    async fn replace_recovery_codes(
        &self,
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RecoveryCodesView> {
        recovery_codes::Entity::delete_many()
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .exec(conn)
            .await?;
        let (shown, hashes) = new_recovery_codes(&self.keyed, user_id)?;
        let rows = hashes.into_iter().map(|hash| recovery_codes::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            code_hash: Set(hash),
            created_at: Set(now),
            used_at: Set(None),
        });
        recovery_codes::Entity::insert_many(rows).exec(conn).await?;
        Ok(RecoveryCodesView {
            recovery_codes: shown
                .iter()
                .map(|code| code.expose_secret().to_owned())
                .collect(),
        })
    }
}

/// Removes the account's TOTP credential (confirmed or pending) and recovery codes, and
/// marks two-factor authentication off; whether it was on.
async fn clear_second_factors(
    conn: &impl ConnectionTrait,
    user: &users::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    totp_credentials::Entity::delete_by_id(user.id)
        .exec(conn)
        .await?;
    recovery_codes::Entity::delete_many()
        .filter(recovery_codes::Column::UserId.eq(user.id))
        .exec(conn)
        .await?;
    if user.mfa_enabled_at.is_none() {
        return Ok(false);
    }
    users::ActiveModel {
        id: Set(user.id),
        mfa_enabled_at: Set(None),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(true)
}
