//! The password login: checks email and password (under the lockout, the same work for
//! unknown accounts) and opens a session, with tokens for the JSON API or for the hosted
//! pages, and hands the client a device token that keeps the lockout from locking out
//! this client later (see [`crate::identity::lockout`]).

use chrono::{DateTime, Utc};
use gatehouse_entity::{sessions, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::identity::hashing::Verification;
use crate::identity::lockout::Judged;
use crate::identity::types::{Email, Password};
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::live::banned_now;
use crate::sessions::{BrowserLogin, TokenPair, insert_refresh_token};
use crate::tokens::access::TokenGrant;
use crate::tokens::api_scopes::builtin_login_scope;
use crate::tokens::audience::API_CLIENT_ID;
use crate::{Error, Gatehouse, Result};

/// A checked password login and the session it opened.
struct OpenedSession {
    user: users::Model,
    session_id: Uuid,
    refresh_token: Option<SecretString>,
    device_token: SecretString,
    now: DateTime<Utc>,
}

/// A password login through the JSON API: the tokens, and the device token the client
/// should keep and send with its next logins to this account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiLogin {
    #[serde(flatten)]
    pub tokens: TokenPair,
    /// Sent back as `device_token` with later logins to this account, it makes this
    /// client judged by its own failed logins, not by the account-wide lock.
    pub device_token: String,
}

/// A password login from the hosted pages: the session, and the device token for the
/// browser's device cookie.
#[derive(Debug)]
pub struct BrowserPasswordLogin {
    pub login: BrowserLogin,
    pub device_token: SecretString,
}

/// The `outcome` label of `gatehouse_logins_total` for the end of a password login.
fn login_outcome(opened: &Result<OpenedSession>) -> &'static str {
    match opened {
        Ok(_) => "success",
        Err(Error::InvalidCredentials) => "invalid_credentials",
        Err(Error::TooManyAttempts { .. }) => "too_many_attempts",
        Err(Error::EmailNotVerified) => "email_not_verified",
        Err(Error::AccountDisabled) => "account_disabled",
        Err(Error::AccountBanned { .. }) => "account_banned",
        Err(Error::InvalidInput { .. }) => "invalid_request",
        Err(Error::Overloaded { .. }) => "overloaded",
        Err(Error::Unavailable { .. }) => "unavailable",
        Err(_) => "error",
    }
}

impl Gatehouse {
    /// Checks email and password and opens a session, with tokens for the JSON API.
    /// `device_token` is the one an earlier login to this account answered, if any.
    pub async fn log_in(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<ApiLogin> {
        let opened = self
            .open_session(email, password, device_token, meta, Some(API_CLIENT_ID))
            .await?;
        let refresh_token = opened
            .refresh_token
            .ok_or_else(|| Error::internal("an API login has a refresh token"))?;
        let grant = TokenGrant {
            subject: opened.user.id.to_string(),
            client_id: API_CLIENT_ID.to_owned(),
            audience: self.settings.tokens.default_audience.clone(),
            session: Some(opened.session_id),
            scope: Some(builtin_login_scope()),
            role: Some(opened.user.role.clone()),
        };
        let tokens = self.token_pair(grant, refresh_token, opened.now).await?;
        Ok(ApiLogin {
            tokens,
            device_token: opened.device_token.expose_secret().to_owned(),
        })
    }

    /// Checks email and password for the hosted pages and opens a session without tokens;
    /// apps get theirs through the authorization code flow. `device_token` is the
    /// browser's device cookie, if it has one.
    pub async fn log_in_browser(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<BrowserPasswordLogin> {
        let opened = self
            .open_session(email, password, device_token, meta, None)
            .await?;
        Ok(BrowserPasswordLogin {
            login: BrowserLogin {
                user_id: opened.user.id,
                session_id: opened.session_id,
            },
            device_token: opened.device_token,
        })
    }

    /// The account of an address, if any.
    async fn account_of(&self, email: &Email) -> Result<Option<users::Model>> {
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?)
    }

    /// Whether `password` is the password of `user`. Unknown accounts are checked against
    /// a dummy hash: the same work either way.
    async fn check_password(
        &self,
        user: Option<&users::Model>,
        password: &Password,
    ) -> Result<Verification> {
        self.hasher
            .verify(password, user.map(|u| u.password_hash.as_str()))
            .await
    }

    /// The rules of every password login; a refresh token for `refresh_client` if given.
    ///
    /// Runs in a task of its own, to its end even when the caller goes away (a client
    /// that resets its connection while its password is hashed drops the request's
    /// future): the failure reserved before hashing is then recorded (with the lock and
    /// notice it may start) or given back, never left behind as an unexplained refusal.
    async fn open_session(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<OpenedSession> {
        let this = self.clone();
        let (email, device_token) = (email.to_owned(), device_token.map(str::to_owned));
        let (meta, refresh_client) = (meta.clone(), refresh_client.map(str::to_owned));
        tokio::spawn(async move {
            let opened = this
                .open_session_to_the_end(
                    &email,
                    password,
                    device_token.as_deref(),
                    &meta,
                    refresh_client.as_deref(),
                )
                .await;
            this.metrics.login(login_outcome(&opened));
            opened
        })
        .await
        .map_err(|e| Error::internal(format!("the login task failed: {e}")))?
    }

    async fn open_session_to_the_end(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<OpenedSession> {
        let email = Email::parse(email)?;
        let password = Password::presented(password, &self.settings.password, "password")?;
        let user = self.account_of(&email).await?;
        let device = self
            .trusted_device(device_token, user.as_ref(), self.clock.now())
            .await?;
        // Before any hashing the attempt counts as a failure (given back below if it is
        // none), so a refused attempt costs nothing and concurrent ones cannot all pass.
        let attempt = self.reserve_login_attempt(&email, device).await?;
        let verification = match self.check_password(user.as_ref(), &password).await {
            Ok(checked) => checked,
            Err(e) => {
                self.release_login_attempt(&self.writer, &attempt).await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        let user = match user {
            Some(user) if verification.matches => user,
            user => {
                // The failure, the lock it may start and the owner's notice: one
                // transaction (the notice is queued in the mail outbox).
                let txn = self.begin_write().await?;
                let locked = self
                    .record_login_failure(&txn, attempt, user.as_ref(), meta)
                    .await?;
                let mut queued = false;
                if let Some(failures) = locked {
                    let notice = |name| Mail::AccountLocked {
                        name,
                        failures,
                        locked_for: self.settings.lockout.lock_duration,
                    };
                    match user.filter(|u| u.disabled_at.is_none()) {
                        Some(user) => {
                            self.enqueue_mail(&txn, &email, notice(user.name)).await?;
                            queued = true;
                        }
                        // The same work for an address without an (active) account.
                        None => self.enqueue_decoy_mail(&txn, notice(None)).await?,
                    }
                }
                txn.commit().await?;
                if queued {
                    self.wake_mail_worker();
                }
                return Err(Error::InvalidCredentials);
            }
        };
        // Only with the right password: a wrong one is `InvalidCredentials` above, so the
        // refusals do not tell which addresses have a disabled or banned account.
        let refusal = if user.disabled_at.is_some() {
            Some((Error::AccountDisabled, "account_disabled"))
        } else if banned_now(&user, now) {
            let until = user.banned_until;
            Some((Error::AccountBanned { until }, "account_banned"))
        } else if self.settings.auth.require_verified_email && user.email_verified_at.is_none() {
            Some((Error::EmailNotVerified, "email_not_verified"))
        } else {
            None
        };
        if let Some((error, reason)) = refusal {
            let entry = AuditEntry::by_user(AuditEvent::LoginFailed, user.id)
                .details(serde_json::json!({ "reason": reason }));
            let txn = self.begin_write().await?;
            audit::record(&txn, now, meta, entry).await?;
            self.release_login_attempt(&txn, &attempt).await?;
            txn.commit().await?;
            return Err(error);
        }
        let upgraded_hash = match verification.needs_rehash {
            true => match self.hasher.hash(&password).await {
                Ok(hash) => Some(hash),
                Err(e) => {
                    self.release_login_attempt(&self.writer, &attempt).await?;
                    return Err(e);
                }
            },
            false => None,
        };

        let txn = self.begin_write().await?;
        let session_id = Uuid::now_v7();
        let expires_at = now
            + chrono::Duration::from_std(self.settings.sessions.lifetime)
                .unwrap_or(chrono::Duration::MAX);
        sessions::ActiveModel {
            id: Set(session_id),
            user_id: Set(user.id),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(expires_at),
            last_token_expires_at: Set(self.access_token_expiry(now)),
            ip: Set(meta.ip.clone()),
            user_agent: Set(meta.user_agent_stored()),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            parent_id: Set(None),
            client_id: Set(None),
            auth_time: Set(None),
        }
        .insert(&txn)
        .await?;
        let refresh_token = match refresh_client {
            Some(client) => {
                let scope = Some(builtin_login_scope());
                Some(insert_refresh_token(&txn, session_id, client, scope, now).await?)
            }
            None => None,
        };
        if let Some(hash) = upgraded_hash {
            users::ActiveModel {
                id: Set(user.id),
                password_hash: Set(hash),
                updated_at: Set(now),
                ..Default::default()
            }
            .update(&txn)
            .await?;
        }
        self.release_login_attempt(&txn, &attempt).await?;
        self.clear_login_failures(&txn, &attempt).await?;
        let device_token = match &attempt.judged {
            Judged::Device(device) => self.renew_device_token(&txn, device, now).await?,
            Judged::Address => self.issue_device_token(&txn, user.id, now).await?,
        };
        let mut entry =
            AuditEntry::by_user(AuditEvent::LoginSucceeded, user.id).session(session_id);
        if verification.needs_rehash {
            entry = entry.details(serde_json::json!({ "password_hash_upgraded": true }));
        }
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(OpenedSession {
            user,
            session_id,
            refresh_token,
            device_token,
            now,
        })
    }
}
