//! Accounts: sign-up, email verification, password reset and change, and the account's
//! own view of itself. One-time tokens (verification, reset, email change and its undo)
//! are 256 random bits of which only a SHA-256 is stored; each is single use and expires.
//! Changing the address is in `email_change.rs`, deleting the account in `deletion.rs`.

pub mod admin;
pub mod bans;
mod deletion;
mod email_change;

pub use email_change::EmailChangeReceipt;
mod mail_admin;
pub(crate) mod mail_cooldown;
pub mod mfa;

use std::time::Duration;

use chrono::{DateTime, Utc};
use gatehouse_entity::{one_time_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, SqlErr,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::accounts::mail_cooldown::MailPurpose;
use crate::identity::hashing::NO_PASSWORD;
use crate::identity::types::{Email, Password, Role};
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::metrics::SignupOutcome;
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::live::account_usable;
use crate::sessions::{Principal, RevokeReason, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// Longest display name accepted.
const MAX_NAME_LENGTH: usize = 200;

/// Proof that a sign-up request was handled. It says nothing about whether the address
/// already had an account, so callers cannot leak that either.
#[derive(Debug)]
pub struct SignupReceipt(());

/// An account as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Whether logins need a second factor (an authenticator app, or a recovery code).
    pub mfa_enabled: bool,
    /// The admin acting as the user, when this is an impersonated session.
    pub impersonated_by: Option<Uuid>,
}

impl From<users::Model> for MeView {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            email_verified: u.email_verified_at.is_some(),
            name: u.name,
            role: Role::from_stored(&u.role),
            created_at: u.created_at,
            mfa_enabled: u.mfa_enabled_at.is_some(),
            impersonated_by: None,
        }
    }
}

/// What a one-time token proves.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// Confirms a new address (the token carries it).
    ChangeEmail,
    /// Restores the address a change replaced (the token carries it).
    UndoEmailChange,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
            Purpose::UndoEmailChange => "undo_email_change",
        }
    }
}

/// The fields of a new account, before hashing.
struct NewAccount {
    email: Email,
    name: Option<String>,
    role: Role,
    verified: bool,
}

impl Gatehouse {
    /// The password rules, for forms that show them.
    pub fn password_rules(&self) -> &crate::settings::PasswordSettings {
        &self.settings.password
    }

    /// Creates an account and mails a verification link. If the address already has an
    /// account, that address gets a notice instead, and the caller cannot tell.
    pub async fn sign_up(
        &self,
        email: &str,
        password: SecretString,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SignupReceipt> {
        let email = Email::parse(email)?;
        let password = Password::new_choice(password, &self.settings.password, "password")?;
        let name = parse_name(name)?;
        // Hash before looking anything up, so both outcomes cost the same.
        let hash = self.hasher.hash(&password).await?;
        let account = NewAccount {
            email: email.clone(),
            name,
            role: Role::User,
            verified: false,
        };
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        match insert_account(&txn, account, hash, now).await {
            Ok(user) => {
                audit::record(
                    &txn,
                    now,
                    meta,
                    AuditEntry::by_user(AuditEvent::Signup, user.id),
                )
                .await?;
                let token = self.prepare_verification(&txn, &user, now).await?;
                self.start_mail_cooldown(&txn, MailPurpose::VerifyEmail, &email, now)
                    .await?;
                self.enqueue_verification(&txn, &user, &token).await?;
                txn.commit().await?;
                self.wake_mail_worker();
                self.metrics.signup(SignupOutcome::Created);
            }
            Err(Error::Conflict { .. }) => {
                txn.rollback().await?;
                let existing = self.find_by_email(&email).await?;
                let txn = self.begin_write().await?;
                // The owner hears of it once per cooldown, however often it is tried.
                let notify = self
                    .claim_mail_slot(&txn, MailPurpose::AccountExists, &email, now)
                    .await?;
                let entry = AuditEntry {
                    event: AuditEvent::SignupExistingEmail,
                    actor: None,
                    subject: existing.map(|u| u.id),
                    session: None,
                    details: Some(serde_json::json!({ "notice_sent": notify })),
                };
                audit::record(&txn, now, meta, entry).await?;
                if notify {
                    self.enqueue_mail(&txn, &email, Mail::AccountExists).await?;
                } else {
                    self.enqueue_decoy_mail(&txn, Mail::AccountExists).await?;
                }
                txn.commit().await?;
                self.wake_mail_worker();
                self.metrics.signup(SignupOutcome::ExistingAddress);
            }
            Err(other) => return Err(other),
        }
        Ok(SignupReceipt(()))
    }

    /// Creates an account from the command line (the first admin, imported users).
    pub async fn create_user(
        &self,
        email: &str,
        password: SecretString,
        role: Role,
        verified: bool,
    ) -> Result<MeView> {
        let email = Email::parse(email)?;
        let password = Password::new_choice(password, &self.settings.password, "password")?;
        let hash = self.hasher.hash(&password).await?;
        let account = NewAccount {
            email,
            name: None,
            role,
            verified,
        };
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let user = insert_account(&txn, account, hash, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::UserCreated, user.id);
        audit::record(&txn, now, &RequestMeta::command_line(), entry).await?;
        txn.commit().await?;
        Ok(user.into())
    }

    /// Marks the address of the token's account as verified.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let claimed = claim_one_time_token(&txn, token, Purpose::VerifyEmail, now).await?;
        let user = users::Entity::find_by_id(claimed.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        if user.email_verified_at.is_none() {
            users::ActiveModel {
                id: Set(user.id),
                email_verified_at: Set(Some(now)),
                updated_at: Set(now),
                ..Default::default()
            }
            .update(&txn)
            .await?;
        }
        audit::record(
            &txn,
            now,
            meta,
            AuditEntry::by_user(AuditEvent::EmailVerified, user.id),
        )
        .await?;
        // `/me` shows the address as verified from this answer on.
        let _forget = self.live_sessions.forget_all_on_drop();
        txn.commit().await?;
        Ok(())
    }

    /// Mails a new verification link, if the address has an unverified account and none
    /// went to it within the cooldown. The caller learns nothing either way: every request
    /// costs the same lookup and the same write transaction (the cooldown claim and the
    /// audit entry), known address or not.
    pub async fn resend_verification(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        let email = Email::parse(email)?;
        let now = self.clock.now();
        let user = self.find_by_email(&email).await?;
        let txn = self.begin_write().await?;
        let claimed = self
            .claim_mail_slot(&txn, MailPurpose::VerifyEmail, &email, now)
            .await?;
        let eligible = user
            .as_ref()
            .filter(|u| claimed && u.email_verified_at.is_none() && account_usable(u, now));
        // The mail, or the same work without it.
        match eligible {
            Some(user) => {
                let token = self.prepare_verification(&txn, user, now).await?;
                self.enqueue_verification(&txn, user, &token).await?;
            }
            None => {
                let token = decoy_one_time_token(&txn).await?;
                self.enqueue_decoy_mail(&txn, self.verification_mail(None, &token))
                    .await?;
            }
        }
        let entry = mail_request_entry(
            AuditEvent::VerificationEmailRequested,
            user.as_ref(),
            eligible.is_some(),
        );
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// Mails a password reset link, if the address has an active account and none went
    /// to it within the cooldown. Earlier reset links stop working. The caller learns
    /// nothing either way: every request costs the same lookup and the same write
    /// transaction (the cooldown claim, the invalidation of earlier links, the audit
    /// entry), known address or not.
    pub async fn forgot_password(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        let email = Email::parse(email)?;
        let now = self.clock.now();
        let user = self.find_by_email(&email).await?;
        let ttl = self.settings.tokens.password_reset_ttl;
        let txn = self.begin_write().await?;
        let claimed = self
            .claim_mail_slot(&txn, MailPurpose::ResetPassword, &email, now)
            .await?;
        // A disabled or banned account gets no link (and the caller the same answer).
        let eligible = user.as_ref().filter(|u| claimed && account_usable(u, now));
        // Run for every request (matching no row when no mail goes out).
        one_time_tokens::Entity::update_many()
            .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
            .filter(one_time_tokens::Column::UserId.eq(eligible.map_or(Uuid::nil(), |u| u.id)))
            .filter(one_time_tokens::Column::Purpose.eq(Purpose::ResetPassword.as_str()))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        // The mail, in the transaction of its token; or the same work without either.
        match eligible {
            Some(user) => {
                let token =
                    insert_one_time_token(&txn, user.id, Purpose::ResetPassword, ttl, now).await?;
                let mail = Mail::ResetPassword {
                    name: user.name.clone(),
                    link: self.link("reset-password", &token),
                    valid_for: ttl,
                };
                self.enqueue_mail(&txn, &email, mail).await?;
            }
            None => {
                let token = decoy_one_time_token(&txn).await?;
                let mail = Mail::ResetPassword {
                    name: None,
                    link: self.link("reset-password", &token),
                    valid_for: ttl,
                };
                self.enqueue_decoy_mail(&txn, mail).await?;
            }
        }
        let entry = mail_request_entry(
            AuditEvent::PasswordResetRequested,
            user.as_ref(),
            eligible.is_some(),
        );
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// Sets a new password with a reset token and ends every session of the account.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        let password = Password::new_choice(new_password, &self.settings.password, "password")?;
        let now = self.clock.now();
        // A cheap look first, so a dead link costs no hashing.
        find_usable_one_time_token(&self.db, token, Purpose::ResetPassword, now).await?;
        let hash = self.hasher.hash(&password).await?;

        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let claimed = claim_one_time_token(&txn, token, Purpose::ResetPassword, now).await?;
        let user = users::Entity::find_by_id(claimed.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        users::ActiveModel {
            id: Set(user.id),
            password_hash: Set(hash),
            // The link arrived by mail: the address is proven.
            email_verified_at: Set(Some(user.email_verified_at.unwrap_or(now))),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        let revoked =
            revoke_user_sessions(&txn, user.id, None, RevokeReason::PasswordReset, now).await?;
        email_change::end_pending_changes(&txn, user.id, now).await?;
        // The reset ends the login lock; every device logs in again with the new
        // password and gets a new device token (a stolen one stops counting).
        let lock_ended = self.end_login_lock(&txn, &user.email, now).await?;
        let devices = self.distrust_user_devices(&txn, user.id, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::PasswordResetCompleted, user.id).details(
            serde_json::json!({
                "sessions_revoked": revoked,
                "login_lock_ended": lock_ended,
                "device_tokens_ended": devices,
            }),
        );
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(())
    }

    /// Changes the caller's password and ends their other sessions.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: SecretString,
        new_password: SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        let current = Password::presented(
            current_password,
            &self.settings.password,
            "current_password",
        )?;
        let new = Password::new_choice(new_password, &self.settings.password, "new_password")?;
        // Before any hashing; checked again in the transaction that changes it.
        self.require_fresh(&self.db, principal).await?;
        let user = users::Entity::find_by_id(principal.user_id)
            .one(&self.db)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !self
            .hasher
            .verify(&current, crate::identity::hashing::stored_password(&user))
            .await?
            .matches
        {
            return Err(Error::InvalidCurrentPassword);
        }
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_fresh(&txn, principal).await?;
        users::ActiveModel {
            id: Set(user.id),
            password_hash: Set(hash),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        let revoked = revoke_user_sessions(
            &txn,
            user.id,
            Some(principal.session_id),
            RevokeReason::PasswordChanged,
            now,
        )
        .await?;
        email_change::end_pending_changes(&txn, user.id, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::PasswordChanged, user.id)
            .session(principal.session_id)
            .details(serde_json::json!({ "sessions_revoked": revoked }));
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(())
    }

    /// The caller's own account.
    pub async fn me(&self, principal: &Principal) -> Result<MeView> {
        // The rows the token check just read (or kept): no second query.
        self.cached_live_session(principal.session_id)
            .await?
            .filter(|rows| rows.1.id == principal.user_id)
            .map(|rows| MeView {
                impersonated_by: principal.impersonator_id,
                ..MeView::from(rows.1.clone())
            })
            .ok_or(Error::Unauthenticated)
    }

    /// The account a first sign-in at an upstream provider makes, in `txn`: no password,
    /// the address verified (only an address the provider verified gets this far).
    /// `Conflict` if the address is taken.
    pub(crate) async fn insert_federated_account(
        &self,
        txn: &DatabaseTransaction,
        email: &Email,
        name: Option<&str>,
        provider_id: &str,
        meta: &RequestMeta,
    ) -> Result<users::Model> {
        let now = self.clock.now();
        let account = NewAccount {
            email: email.clone(),
            name: parse_name(name).unwrap_or_default(),
            role: Role::User,
            verified: true,
        };
        let user = insert_account(txn, account, NO_PASSWORD.to_owned(), now).await?;
        let entry = AuditEntry::by_user(AuditEvent::Signup, user.id)
            .details(serde_json::json!({ "provider": provider_id }));
        audit::record(txn, now, meta, entry).await?;
        Ok(user)
    }

    /// The account of an address, if any.
    pub(crate) async fn find_by_email(&self, email: &Email) -> Result<Option<users::Model>> {
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?)
    }

    async fn prepare_verification(
        &self,
        conn: &impl ConnectionTrait,
        user: &users::Model,
        now: DateTime<Utc>,
    ) -> Result<SecretString> {
        let ttl = self.settings.tokens.email_verification_ttl;
        insert_one_time_token(conn, user.id, Purpose::VerifyEmail, ttl, now).await
    }

    /// Queues the mail with the link of a verification token made by
    /// [`Self::prepare_verification`], in the same transaction.
    async fn enqueue_verification(
        &self,
        conn: &impl ConnectionTrait,
        user: &users::Model,
        token: &SecretString,
    ) -> Result<()> {
        let email = Email::parse(&user.email)?;
        let mail = self.verification_mail(user.name.clone(), token);
        self.enqueue_mail(conn, &email, mail).await
    }

    fn verification_mail(&self, name: Option<String>, token: &SecretString) -> Mail {
        Mail::VerifyEmail {
            name,
            link: self.link("verify-email", token),
            valid_for: self.settings.tokens.email_verification_ttl,
        }
    }

    fn link(&self, page: &str, token: &SecretString) -> String {
        format!(
            "{}/{page}?token={}",
            self.settings.issuer.trim_end_matches('/'),
            token.expose_secret()
        )
    }
}

/// The audit entry of a request for a mail: about the account if the address has one
/// (whoever asked), with whether a mail went out.
fn mail_request_entry(
    event: AuditEvent,
    user: Option<&users::Model>,
    mail_sent: bool,
) -> AuditEntry {
    AuditEntry {
        event,
        actor: None,
        subject: user.map(|u| u.id),
        session: None,
        details: Some(serde_json::json!({ "mail_sent": mail_sent })),
    }
}

/// Inserts an account; `Conflict` if the address is taken.
async fn insert_account(
    conn: &impl ConnectionTrait,
    account: NewAccount,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<users::Model> {
    let inserted = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(account.email.as_str().to_owned()),
        name: Set(account.name),
        password_hash: Set(password_hash),
        role: Set(account.role.as_str().to_owned()),
        email_verified_at: Set(account.verified.then_some(now)),
        disabled_at: Set(None),
        mfa_enabled_at: Set(None),
        banned_at: Set(None),
        banned_until: Set(None),
        ban_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await;
    match inserted {
        Ok(user) => Ok(user),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(Error::Conflict {
                code: "email_taken",
                message: "an account with this email address already exists".to_owned(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_name(name: Option<&str>) -> Result<Option<String>> {
    // NFC-normalised; control, invisible and text-direction characters refused (the
    // rules and the reasons: `identity::types::display_name`).
    match name.map(|name| crate::identity::types::display_name(name, MAX_NAME_LENGTH)) {
        None | Some(Err(crate::identity::types::NameProblem::Empty)) => Ok(None),
        Some(Ok(name)) => Ok(Some(name)),
        Some(Err(_)) => Err(Error::invalid(
            "invalid_name",
            format!(
                "name: at most {MAX_NAME_LENGTH} characters, no control, invisible or \
                 text-direction characters"
            ),
        )),
    }
}

async fn insert_one_time_token(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    insert_token_with_email(conn, user_id, purpose, None, ttl, now).await
}

/// As [`insert_one_time_token`], for a token that carries an address (an email change).
async fn insert_token_with_email(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    email: Option<&Email>,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    let (token, hash) = new_token()?;
    one_time_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(hash),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::from_std(ttl).unwrap_or_default()),
        used_at: Set(None),
        email: Set(email.map(|e| e.as_str().to_owned())),
        session_id: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// The work of [`insert_one_time_token`] without its effect, for a request that sends no
/// mail but must cost what one that does costs: a fresh token and its hash, and one
/// write statement on the table by primary key, which matches no row.
async fn decoy_one_time_token(conn: &impl ConnectionTrait) -> Result<SecretString> {
    let (token, hash) = new_token()?;
    one_time_tokens::Entity::update_many()
        .col_expr(one_time_tokens::Column::TokenHash, Expr::value(hash))
        .filter(one_time_tokens::Column::Id.eq(Uuid::nil()))
        .exec(conn)
        .await?;
    Ok(token)
}

/// Marks a usable token used and returns it. Of two concurrent claims, exactly one
/// succeeds: the conditional update is the only check that counts.
async fn claim_one_time_token(
    conn: &impl ConnectionTrait,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<one_time_tokens::Model> {
    let hash = token_hash(token);
    let claimed = one_time_tokens::Entity::update_many()
        .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
        .filter(one_time_tokens::Column::TokenHash.eq(&hash))
        .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(one_time_tokens::Column::UsedAt.is_null())
        .filter(one_time_tokens::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(Error::InvalidOneTimeToken);
    }
    one_time_tokens::Entity::find()
        .filter(one_time_tokens::Column::TokenHash.eq(&hash))
        .one(conn)
        .await?
        .ok_or(Error::InvalidOneTimeToken)
}

async fn find_usable_one_time_token(
    conn: &impl ConnectionTrait,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<one_time_tokens::Model> {
    one_time_tokens::Entity::find()
        .filter(one_time_tokens::Column::TokenHash.eq(token_hash(token)))
        .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
        .filter(one_time_tokens::Column::UsedAt.is_null())
        .filter(one_time_tokens::Column::ExpiresAt.gt(now))
        .one(conn)
        .await?
        .ok_or(Error::InvalidOneTimeToken)
}
