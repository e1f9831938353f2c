//! Changing the address of an account, in three steps, each one transaction:
//!
//! 1. **Request** ([`Gatehouse::request_email_change`], the signed-in user): a
//!    `change_email` token carrying the new address, mailed to the new address, and a
//!    notice to the current one. A new request uses up the older pending one. If the new
//!    address belongs to another account, the answer is the same, but nothing goes to that
//!    address (its owner is not bothered, and the requester learns nothing they could not
//!    learn by owning it): the current address still gets its notice.
//! 2. **Confirm** ([`Gatehouse::confirm_email_change`], whoever holds the link): the
//!    address must still be free (`409 email_taken`, nothing changes and the link stays
//!    usable); the account takes it, verified. Earlier reset links (mailed to the old
//!    address) stop working. The old address gets an `undo_email_change` link, valid
//!    `tokens.email_change_undo_ttl`.
//! 3. **Undo** ([`Gatehouse::undo_email_change`], whoever holds the old address's link):
//!    the account may have been taken over, so the old address comes back (if still
//!    free), every session ends, device tokens stop counting, pending changes are dropped,
//!    and the old address gets a password reset link.
//!
//! The audit log records domains only; no address goes into an audit entry or a log line.

use chrono::{DateTime, Utc};
use gatehouse_entity::{one_time_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::{
    Purpose, claim_one_time_token, decoy_one_time_token, insert_one_time_token,
    insert_token_with_email,
};
use crate::identity::types::Email;
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::login::MFA_LOGIN_PURPOSES;
use crate::sessions::{Principal, RevokeReason, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// Proof that an email change request was handled; it does not say whether a link went
/// out (the new address may belong to another account).
#[derive(Debug)]
pub struct EmailChangeReceipt(());

impl Gatehouse {
    /// Asks to move the caller's account to `new_email`: mails a confirmation link to the
    /// new address (if no other account has it) and a notice to the current one.
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        new_email: &str,
        meta: &RequestMeta,
    ) -> Result<EmailChangeReceipt> {
        let new_email = Email::parse(new_email)?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        // A sensitive action: a recent authentication, never an impersonated session.
        self.require_fresh(&txn, principal).await?;
        let user = users::Entity::find_by_id(principal.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if user.email == new_email.as_str() {
            return Err(Error::invalid(
                "email_unchanged",
                "email: this is already the address of your account",
            ));
        }
        let current = Email::parse(&user.email)?;
        let taken = address_taken(&txn, &new_email, user.id).await?;
        use_up_tokens(&txn, user.id, Purpose::ChangeEmail, now).await?;
        let ttl = self.settings.tokens.email_change_ttl;
        if taken {
            // The work of the other branch, without the token or the mail.
            let token = decoy_one_time_token(&txn).await?;
            let mail = Mail::ConfirmEmailChange {
                name: None,
                link: self.link("confirm-email", &token),
                valid_for: ttl,
            };
            self.enqueue_decoy_mail(&txn, mail).await?;
        } else {
            let token = insert_token_with_email(
                &txn,
                user.id,
                Purpose::ChangeEmail,
                Some(&new_email),
                ttl,
                now,
            )
            .await?;
            let mail = Mail::ConfirmEmailChange {
                name: user.name.clone(),
                link: self.link("confirm-email", &token),
                valid_for: ttl,
            };
            self.enqueue_mail(&txn, &new_email, mail).await?;
        }
        let notice = Mail::EmailChangeRequested {
            name: user.name.clone(),
            new_email: new_email.as_str().to_owned(),
        };
        self.enqueue_mail(&txn, &current, notice).await?;
        let entry = AuditEntry::by_user(AuditEvent::EmailChangeRequested, user.id)
            .session(principal.session_id)
            .details(serde_json::json!({
                "to_domain": domain(&new_email),
                "link_sent": !taken,
            }));
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(EmailChangeReceipt(()))
    }

    /// Confirms an email change with the link mailed to the new address: the account
    /// takes the address (verified), and the old address gets a link that undoes it.
    pub async fn confirm_email_change(&self, token: &str, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let claimed = claim_one_time_token(&txn, token, Purpose::ChangeEmail, now).await?;
        let new_email = Email::parse(claimed.email.as_deref().unwrap_or_default())
            .map_err(|_| Error::InvalidOneTimeToken)?;
        let user = users::Entity::find_by_id(claimed.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        let old_email = Email::parse(&user.email)?;
        set_address(&txn, &user, &new_email, now).await?;
        // Reset links went to the old address, which no longer holds the account.
        use_up_tokens(&txn, user.id, Purpose::ResetPassword, now).await?;
        use_up_tokens(&txn, user.id, Purpose::UndoEmailChange, now).await?;
        let ttl = self.settings.tokens.email_change_undo_ttl;
        let undo = insert_token_with_email(
            &txn,
            user.id,
            Purpose::UndoEmailChange,
            Some(&old_email),
            ttl,
            now,
        )
        .await?;
        let mail = Mail::EmailChanged {
            name: user.name.clone(),
            new_email: new_email.as_str().to_owned(),
            link: self.link("undo-email-change", &undo),
            valid_for: ttl,
        };
        self.enqueue_mail(&txn, &old_email, mail).await?;
        let entry =
            AuditEntry::by_user(AuditEvent::EmailChanged, user.id).details(serde_json::json!({
                "from_domain": domain(&old_email),
                "to_domain": domain(&new_email),
            }));
        audit::record(&txn, now, meta, entry).await?;
        // The live-session view holds the account's row (its address): emptied here.
        self.commit_revoking(txn).await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// Undoes an email change with the link mailed to the old address: the old address
    /// comes back, every session of the account ends, and a password reset link goes to
    /// the old address.
    pub async fn undo_email_change(&self, token: &str, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let claimed = claim_one_time_token(&txn, token, Purpose::UndoEmailChange, now).await?;
        let old_email = Email::parse(claimed.email.as_deref().unwrap_or_default())
            .map_err(|_| Error::InvalidOneTimeToken)?;
        let user = users::Entity::find_by_id(claimed.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        let replaced = Email::parse(&user.email)?;
        set_address(&txn, &user, &old_email, now).await?;
        // Whoever changed the address may hold sessions, device tokens, pending changes
        // or reset links: all of them end.
        let revoked =
            revoke_user_sessions(&txn, user.id, None, RevokeReason::EmailChangeUndone, now).await?;
        let devices = self.distrust_user_devices(&txn, user.id, now).await?;
        for purpose in [
            Purpose::ChangeEmail,
            Purpose::UndoEmailChange,
            Purpose::ResetPassword,
        ] {
            use_up_tokens(&txn, user.id, purpose, now).await?;
        }
        let ttl = self.settings.tokens.password_reset_ttl;
        let reset = insert_one_time_token(&txn, user.id, Purpose::ResetPassword, ttl, now).await?;
        let mail = Mail::EmailChangeUndone {
            name: user.name.clone(),
            link: self.link("reset-password", &reset),
            valid_for: ttl,
        };
        self.enqueue_mail(&txn, &old_email, mail).await?;
        let entry = AuditEntry::by_user(AuditEvent::EmailChangeUndone, user.id).details(
            serde_json::json!({
                "from_domain": domain(&replaced),
                "to_domain": domain(&old_email),
                "sessions_revoked": revoked,
                "device_tokens_ended": devices,
            }),
        );
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        self.wake_mail_worker();
        Ok(())
    }
}

/// Whether an account other than `user_id` has `email`.
async fn address_taken(conn: &impl ConnectionTrait, email: &Email, user_id: Uuid) -> Result<bool> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .filter(users::Column::Id.ne(user_id))
        .one(conn)
        .await?
        .is_some())
}

/// Gives the account `email`, verified (a link mailed to it proved it); `409 email_taken`
/// if another account has it, also when that account took it a moment ago (the unique
/// index decides).
async fn set_address(
    conn: &impl ConnectionTrait,
    user: &users::Model,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<()> {
    let taken = || Error::Conflict {
        code: "email_taken",
        message: "another account uses this email address now".to_owned(),
    };
    if address_taken(conn, email, user.id).await? {
        return Err(taken());
    }
    let updated = users::ActiveModel {
        id: Set(user.id),
        email: Set(email.as_str().to_owned()),
        email_verified_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(conn)
    .await;
    match updated {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(taken())
        }
        Err(e) => Err(e.into()),
    }
}

/// What a new password (reset or change) ends besides sessions: a pending email change
/// and logins waiting for their second factor. Either may be an intruder's, made with
/// the old password, and must not outlive it.
pub(super) async fn end_pending_changes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    use_up_tokens(conn, user_id, Purpose::ChangeEmail, now).await?;
    one_time_tokens::Entity::update_many()
        .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
        .filter(one_time_tokens::Column::UserId.eq(user_id))
        .filter(one_time_tokens::Column::Purpose.is_in(MFA_LOGIN_PURPOSES))
        .filter(one_time_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks every usable token of `purpose` of the account used.
async fn use_up_tokens(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<()> {
    one_time_tokens::Entity::update_many()
        .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
        .filter(one_time_tokens::Column::UserId.eq(user_id))
        .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(one_time_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// The domain of an address: what the audit log keeps of it.
fn domain(email: &Email) -> &str {
    email
        .as_str()
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain)
}
