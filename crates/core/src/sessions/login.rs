//! The password login: checks email and password (under the lockout, the same work for
//! unknown accounts) and opens a session, with tokens for the JSON API or for the hosted
//! pages, and hands the client a device token that keeps the lockout from locking out
//! this client later (see [`crate::identity::lockout`]).
//!
//! An account with two-factor authentication gets no session for its password alone: the
//! login answers a short-lived single-use MFA token instead (only its hash is stored), and
//! the second step presents it with a TOTP or recovery code. That step runs under the same
//! lockout: a wrong code counts as a failed login, and only a completed login clears the
//! failures, so a known password buys no unlimited guesses at the code.

use chrono::{DateTime, Utc};
use gatehouse_entity::{one_time_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::identity::hashing::{Verification, stored_password};
use crate::identity::lockout::{Judged, LoginAttempt};
use crate::identity::totp::{FirstFactor, amr_of};
use crate::identity::types::{Email, Password};
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::live::banned_now;
use crate::sessions::{BrowserLogin, TokenPair, insert_refresh_token};
use crate::tokens::access::TokenGrant;
use crate::tokens::api_scopes::builtin_login_scope;
use crate::tokens::audience::API_CLIENT_ID;
use crate::{Error, Gatehouse, Result};

/// The `purpose` of the one-time token that carries a login from its password to its
/// second factor.
const MFA_LOGIN_PURPOSE: &str = "mfa_login";
/// The same, from a sign-in at an upstream provider to the second factor.
const MFA_LOGIN_FEDERATED_PURPOSE: &str = "mfa_login_federated";
/// Both: the logins waiting for their second factor.
pub(crate) const MFA_LOGIN_PURPOSES: [&str; 2] = [MFA_LOGIN_PURPOSE, MFA_LOGIN_FEDERATED_PURPOSE];

/// A checked login and the session it opened.
struct OpenedSession {
    user: users::Model,
    session_id: Uuid,
    refresh_token: Option<SecretString>,
    device_token: SecretString,
    now: DateTime<Utc>,
}

/// Where a password check left a login.
enum Checked {
    Opened(Box<OpenedSession>),
    /// The password is right; the account's second factor is still to come.
    MfaRequired(SecretString),
}

/// The first factor a login step presents.
enum Proof {
    /// A sign-in at an upstream provider, for the account its identity is linked to.
    Federated {
        user: Box<users::Model>,
        provider_id: String,
    },
    Password {
        email: String,
        password: SecretString,
    },
    SecondFactor {
        mfa_token: SecretString,
        code: SecretString,
    },
}

/// A login through the JSON API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ApiLogin {
    /// The session's tokens, and the device token the client should keep and send with
    /// its next logins to this account.
    Opened {
        #[serde(flatten)]
        tokens: TokenPair,
        /// Sent back as `device_token` with later logins to this account, it makes this
        /// client judged by its own failed logins, not by the account-wide lock.
        device_token: String,
    },
    /// The password is right and the account has two-factor authentication: finish with
    /// `POST /api/v1/login/mfa` `{mfa_token, code}` within `auth.mfa_login_timeout`.
    MfaRequired {
        /// Always `true`.
        mfa_required: bool,
        mfa_token: String,
    },
}

/// A login from the hosted pages: the session and the device token for the browser's
/// device cookie, or the MFA token the page keeps for the second step.
#[derive(Debug)]
pub enum BrowserPasswordLogin {
    Opened {
        login: BrowserLogin,
        device_token: SecretString,
    },
    MfaRequired {
        mfa_token: SecretString,
    },
}

/// The `outcome` label of `gatehouse_logins_total` for the end of a login step.
fn login_outcome(checked: &Result<Checked>) -> &'static str {
    match checked {
        Ok(Checked::Opened(_)) => "success",
        Ok(Checked::MfaRequired(_)) => "mfa_required",
        Err(Error::InvalidCredentials) => "invalid_credentials",
        Err(Error::InvalidMfaCode) => "invalid_mfa_code",
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
    /// Checks email and password and opens a session, with tokens for the JSON API, or
    /// asks for the second factor. `device_token` is the one an earlier login to this
    /// account answered, if any.
    pub async fn log_in(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<ApiLogin> {
        let proof = Proof::Password {
            email: email.to_owned(),
            password,
        };
        self.api_login(proof, device_token, meta).await
    }

    /// The second step of a JSON API login: the MFA token the first answered, and a code
    /// of the account's authenticator app or one of its recovery codes.
    pub async fn log_in_second_factor(
        &self,
        mfa_token: SecretString,
        code: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<ApiLogin> {
        let proof = Proof::SecondFactor { mfa_token, code };
        self.api_login(proof, device_token, meta).await
    }

    async fn api_login(
        &self,
        proof: Proof,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<ApiLogin> {
        let opened = match self
            .login_step(proof, device_token, meta, Some(API_CLIENT_ID))
            .await?
        {
            Checked::Opened(opened) => opened,
            Checked::MfaRequired(token) => {
                return Ok(ApiLogin::MfaRequired {
                    mfa_required: true,
                    mfa_token: token.expose_secret().to_owned(),
                });
            }
        };
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
            actor: None,
        };
        let tokens = self.token_pair(grant, refresh_token, opened.now).await?;
        Ok(ApiLogin::Opened {
            tokens,
            device_token: opened.device_token.expose_secret().to_owned(),
        })
    }

    /// Checks email and password for the hosted pages and opens a session without tokens
    /// (apps get theirs through the authorization code flow), or asks for the second
    /// factor. `device_token` is the browser's device cookie, if it has one.
    pub async fn log_in_browser(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<BrowserPasswordLogin> {
        let proof = Proof::Password {
            email: email.to_owned(),
            password,
        };
        self.browser_login(proof, device_token, meta).await
    }

    /// The second step of a hosted-pages login (see [`Self::log_in_second_factor`]).
    pub async fn log_in_browser_second_factor(
        &self,
        mfa_token: SecretString,
        code: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<BrowserPasswordLogin> {
        let proof = Proof::SecondFactor { mfa_token, code };
        self.browser_login(proof, device_token, meta).await
    }

    async fn browser_login(
        &self,
        proof: Proof,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<BrowserPasswordLogin> {
        Ok(
            match self.login_step(proof, device_token, meta, None).await? {
                Checked::Opened(opened) => BrowserPasswordLogin::Opened {
                    login: BrowserLogin {
                        user_id: opened.user.id,
                        session_id: opened.session_id,
                    },
                    device_token: opened.device_token,
                },
                Checked::MfaRequired(mfa_token) => BrowserPasswordLogin::MfaRequired { mfa_token },
            },
        )
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
            .verify(password, user.and_then(stored_password))
            .await
    }

    /// The rules of every login step; a refresh token for `refresh_client` if given.
    ///
    /// Runs in a task of its own, to its end even when the caller goes away (a client
    /// that resets its connection while its password is hashed drops the request's
    /// future): the failure reserved before hashing is then recorded (with the lock and
    /// notice it may start) or given back, never left behind as an unexplained refusal.
    async fn login_step(
        &self,
        proof: Proof,
        device_token: Option<&str>,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<Checked> {
        let this = self.clone();
        let device_token = device_token.map(str::to_owned);
        let (meta, refresh_client) = (meta.clone(), refresh_client.map(str::to_owned));
        tokio::spawn(async move {
            let (device_token, refresh_client) =
                (device_token.as_deref(), refresh_client.as_deref());
            let checked = match proof {
                Proof::Federated { user, provider_id } => {
                    this.federated_step(*user, &provider_id, device_token, &meta)
                        .await
                }
                Proof::Password { email, password } => {
                    this.password_step(&email, password, device_token, &meta, refresh_client)
                        .await
                }
                Proof::SecondFactor { mfa_token, code } => {
                    this.second_factor_step(mfa_token, code, device_token, &meta, refresh_client)
                        .await
                }
            };
            this.metrics.login(login_outcome(&checked));
            checked
        })
        .await
        .map_err(|e| Error::internal(format!("the login task failed: {e}")))?
    }

    /// The second step: the MFA token names the account whose password was accepted, and
    /// `code` must be one of its second factors, unused.
    async fn second_factor_step(
        &self,
        mfa_token: SecretString,
        code: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<Checked> {
        let now = self.clock.now();
        let pending = one_time_tokens::Entity::find()
            .filter(one_time_tokens::Column::TokenHash.eq(token_hash(mfa_token.expose_secret())))
            .filter(one_time_tokens::Column::Purpose.is_in(MFA_LOGIN_PURPOSES))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .filter(one_time_tokens::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        let user = users::Entity::find_by_id(pending.user_id)
            .one(&self.db)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        let email = Email::parse(&user.email)?;
        let device = self.trusted_device(device_token, Some(&user), now).await?;
        let attempt = self.reserve_login_attempt(&email, device).await?;
        if let Some(error) = self.refuse_login(&user, &attempt, now, meta).await? {
            return Err(error);
        }
        let txn = self.begin_write().await?;
        let Some(factor) = self.use_second_factor(&txn, user.id, &code, now).await? else {
            drop(txn);
            self.record_failed_login(attempt, Some(&user), &email, meta)
                .await?;
            return Err(Error::InvalidMfaCode);
        };
        // Single use: of two requests racing with one token, one opens the session.
        let consumed = one_time_tokens::Entity::update_many()
            .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
            .filter(one_time_tokens::Column::Id.eq(pending.id))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if consumed.rows_affected != 1 {
            drop(txn);
            self.release_login_attempt(&self.writer, &attempt).await?;
            return Err(Error::InvalidOneTimeToken);
        }
        let first = match pending.purpose.as_str() {
            MFA_LOGIN_FEDERATED_PURPOSE => FirstFactor::Federated,
            _ => FirstFactor::Password,
        };
        let details = serde_json::json!({ "second_factor": factor.as_str() });
        let opened = self
            .open_session_in(
                txn,
                user,
                attempt,
                refresh_client,
                amr_of(first, Some(factor)),
                Some(details),
                meta,
                now,
            )
            .await?;
        Ok(Checked::Opened(Box::new(opened)))
    }

    async fn password_step(
        &self,
        email: &str,
        password: SecretString,
        device_token: Option<&str>,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<Checked> {
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
                self.record_failed_login(attempt, user.as_ref(), &email, meta)
                    .await?;
                return Err(Error::InvalidCredentials);
            }
        };
        if let Some(error) = self.refuse_login(&user, &attempt, now, meta).await? {
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
        if user.mfa_enabled_at.is_some() {
            // The password is right; the session waits for the second factor. The
            // failures stay counted: only a login that completes clears them, so a
            // known password does not buy unlimited guesses at the code.
            let token = self
                .await_second_factor(txn, &user, &attempt, FirstFactor::Password, meta, now)
                .await?;
            return Ok(Checked::MfaRequired(token));
        }
        let details = verification
            .needs_rehash
            .then(|| serde_json::json!({ "password_hash_upgraded": true }));
        let amr = amr_of(FirstFactor::Password, None);
        let opened = self
            .open_session_in(txn, user, attempt, refresh_client, amr, details, meta, now)
            .await?;
        Ok(Checked::Opened(Box::new(opened)))
    }

    /// A login whose first factor passed, on an account with two-factor authentication:
    /// the attempt given back (its failures stay), and the single-use MFA token of the
    /// second step (only its hash stored), in `txn` (which it commits).
    async fn await_second_factor(
        &self,
        txn: DatabaseTransaction,
        user: &users::Model,
        attempt: &LoginAttempt,
        first: FirstFactor,
        meta: &RequestMeta,
        now: DateTime<Utc>,
    ) -> Result<SecretString> {
        self.release_login_attempt(&txn, attempt).await?;
        let (token, hash) = new_token()?;
        let ttl =
            chrono::Duration::from_std(self.settings.auth.mfa_login_timeout).unwrap_or_default();
        let purpose = match first {
            FirstFactor::Password => MFA_LOGIN_PURPOSE,
            FirstFactor::Federated => MFA_LOGIN_FEDERATED_PURPOSE,
        };
        one_time_tokens::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.id),
            purpose: Set(purpose.to_owned()),
            token_hash: Set(hash),
            created_at: Set(now),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            email: Set(None),
            session_id: Set(None),
        }
        .insert(&txn)
        .await?;
        let entry = AuditEntry::by_user(AuditEvent::MfaChallenged, user.id);
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(token)
    }

    /// A login through an upstream provider (see [`crate::federation`]) for the account
    /// its identity is linked to: under the account's lockout and login refusals like a
    /// password login, on to the second factor when the account has one.
    pub(crate) async fn federated_login(
        &self,
        user: users::Model,
        provider_id: &str,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<BrowserPasswordLogin> {
        let proof = Proof::Federated {
            user: Box::new(user),
            provider_id: provider_id.to_owned(),
        };
        self.browser_login(proof, device_token, meta).await
    }

    /// The step of a sign-in at an upstream provider: the provider proved the user; the
    /// account's lockout (a browser with its device token judged by its own failures) and
    /// refusals still apply.
    async fn federated_step(
        &self,
        user: users::Model,
        provider_id: &str,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Checked> {
        let now = self.clock.now();
        let email = Email::parse(&user.email)?;
        let device = self.trusted_device(device_token, Some(&user), now).await?;
        let attempt = self.reserve_login_attempt(&email, device).await?;
        if let Some(error) = self.refuse_login(&user, &attempt, now, meta).await? {
            return Err(error);
        }
        let txn = self.begin_write().await?;
        if user.mfa_enabled_at.is_some() {
            let token = self
                .await_second_factor(txn, &user, &attempt, FirstFactor::Federated, meta, now)
                .await?;
            return Ok(Checked::MfaRequired(token));
        }
        let details = Some(serde_json::json!({ "provider": provider_id }));
        let amr = amr_of(FirstFactor::Federated, None);
        let opened = self
            .open_session_in(txn, user, attempt, None, amr, details, meta, now)
            .await?;
        Ok(Checked::Opened(Box::new(opened)))
    }

    /// The refusal of a login whose credentials were right, if any: a disabled account,
    /// or an unverified address where that is required (audited, the attempt given back).
    async fn refuse_login(
        &self,
        user: &users::Model,
        attempt: &LoginAttempt,
        now: DateTime<Utc>,
        meta: &RequestMeta,
    ) -> Result<Option<Error>> {
        // Only with the right credentials: a wrong password is `InvalidCredentials`
        // before this, so the refusals do not tell which addresses have a disabled or
        // banned account.
        let refusal = if user.disabled_at.is_some() {
            Some((Error::AccountDisabled, "account_disabled"))
        } else if banned_now(user, now) {
            let until = user.banned_until;
            Some((Error::AccountBanned { until }, "account_banned"))
        } else if self.settings.auth.require_verified_email && user.email_verified_at.is_none() {
            Some((Error::EmailNotVerified, "email_not_verified"))
        } else {
            None
        };
        let Some((error, reason)) = refusal else {
            return Ok(None);
        };
        let entry = AuditEntry::by_user(AuditEvent::LoginFailed, user.id)
            .details(serde_json::json!({ "reason": reason }));
        let txn = self.begin_write().await?;
        audit::record(&txn, now, meta, entry).await?;
        self.release_login_attempt(&txn, attempt).await?;
        txn.commit().await?;
        Ok(Some(error))
    }

    /// A wrong password or second factor: the failure, the lock it may start and the
    /// owner's notice, in one transaction (the notice is queued in the mail outbox).
    pub(crate) async fn record_failed_login(
        &self,
        attempt: LoginAttempt,
        user: Option<&users::Model>,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        let locked = self.record_login_failure(&txn, attempt, user, meta).await?;
        let mut queued = false;
        if let Some(failures) = locked {
            let notice = |name| Mail::AccountLocked {
                name,
                failures,
                locked_for: self.settings.lockout.lock_duration,
            };
            match user.filter(|u| u.disabled_at.is_none()) {
                Some(user) => {
                    self.enqueue_mail(&txn, email, notice(user.name.clone()))
                        .await?;
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
        Ok(())
    }

    /// Opens the session of a login whose every factor was checked, in `txn` (which it
    /// commits): the session with how the user authenticated, a refresh token for
    /// `refresh_client`, the attempt given back and the failures cleared, the device
    /// token, and the audit entry.
    #[allow(clippy::too_many_arguments)]
    async fn open_session_in(
        &self,
        txn: DatabaseTransaction,
        user: users::Model,
        attempt: LoginAttempt,
        refresh_client: Option<&str>,
        amr: String,
        details: Option<serde_json::Value>,
        meta: &RequestMeta,
        now: DateTime<Utc>,
    ) -> Result<OpenedSession> {
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
            amr: Set(Some(amr)),
            reauthenticated_at: Set(None),
            impersonator_id: Set(None),
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
        self.release_login_attempt(&txn, &attempt).await?;
        self.clear_login_failures(&txn, &attempt).await?;
        let device_token = match &attempt.judged {
            Judged::Device(device) => self.renew_device_token(&txn, device, now).await?,
            Judged::Address => self.issue_device_token(&txn, user.id, now).await?,
        };
        let mut entry =
            AuditEntry::by_user(AuditEvent::LoginSucceeded, user.id).session(session_id);
        if let Some(details) = details {
            entry = entry.details(details);
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
