//! Signing in with upstream providers (`[[federation.providers]]`: GitHub, Google, any
//! OpenID Connect provider), and the identities they link to accounts.
//!
//! The rules of a finished sign-in at a provider ([`Gatehouse::finish_federated_sign_in`]):
//! - an identity (provider and subject) linked to an account signs in to that account,
//!   under its lockout and login refusals, on to its second factor if it has one;
//! - a flow started from the account page (`link_to`) links the identity to that
//!   account, after step-up, unless another account has it;
//! - an unknown identity whose address the provider did not verify reaches no account:
//!   it neither makes one nor links to one (the same answer either way); its owner can
//!   link it from the account page of an account they logged in to;
//! - an unknown identity whose verified address belongs to an account is never linked
//!   silently (account takeover): the user must log in to the account with its password
//!   first ([`FederatedSignIn::ProveAccount`]);
//! - otherwise a first sign-in makes an account without a password, its address verified
//!   (the provider verified it).
//!
//! An account keeps at least one way to sign in: its last identity cannot be unlinked
//! while it has no password.

pub mod upstream;

use chrono::{DateTime, Utc};
use gatehouse_entity::{federated_identities, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::hashing::has_password;
use crate::identity::types::Email;
use crate::mail::Mail;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::login::BrowserPasswordLogin;
use crate::sessions::{Principal, RevokeReason, revoke_session};
use crate::{Error, Gatehouse, Result};

pub use upstream::{Callback, FederationFlow, ProviderButton, UpstreamIdentity};

/// Where a finished sign-in at a provider leads.
#[derive(Debug)]
pub enum FederatedSignIn {
    /// Signed in, or on to the account's second factor: as after a password.
    Login(BrowserPasswordLogin),
    /// The identity is linked to the account that started the flow.
    Linked { provider: String },
    /// An account has the address the provider verified, but not this identity: the
    /// user logs in to it with its password, and then the identity is linked
    /// ([`Gatehouse::link_pending_identity`]).
    ProveAccount(PendingLink),
}

/// An identity waiting for its account's owner to prove the account, kept in the
/// browser's server-side session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    pub identity: UpstreamIdentity,
    /// The provider's name, for the login page.
    pub provider_name: String,
    /// The account whose password must be given; no other login links it.
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// An identity linked to an account, as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub id: Uuid,
    /// The provider's `id` in the configuration.
    pub provider: String,
    /// The provider's name.
    pub provider_name: String,
    /// The address the provider gave when the identity was linked.
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

fn already_linked() -> Error {
    Error::Conflict {
        code: "identity_already_linked",
        message: "this account at the provider is linked to another Gatehouse account".to_owned(),
    }
}

/// Ends the account's sessions that signed in through a provider (`amr` starting with
/// `fed`), other than the caller's own login and its app sessions: after an unlink, a
/// session the unlinked identity opened (perhaps an intruder's) must not outlive it.
/// Sessions do not record which provider opened them, so every provider's go.
async fn revoke_federated_sessions(
    txn: &impl ConnectionTrait,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<u64> {
    let federated = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(principal.user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::Amr.starts_with("fed"))
        .filter(sessions::Column::Id.ne(principal.session_id))
        .filter(
            Condition::any()
                .add(sessions::Column::ParentId.is_null())
                .add(sessions::Column::ParentId.ne(principal.session_id)),
        )
        .all(txn)
        .await?;
    let mut revoked = 0;
    for session in federated {
        if revoke_session(txn, session.id, RevokeReason::IdentityUnlinked, now).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}

impl Gatehouse {
    /// The providers' buttons for the login and sign-up pages.
    pub fn federation_buttons(&self) -> Vec<ProviderButton> {
        self.providers.buttons()
    }

    /// Starts a sign-in at `provider_id`: the URL to send the browser to, and the flow
    /// for the browser session. `link_to`: the logged-in user linking the provider to
    /// their account, which needs a recent authentication (step-up).
    pub async fn start_federated_sign_in(
        &self,
        provider_id: &str,
        link_to: Option<&Principal>,
    ) -> Result<(url::Url, FederationFlow)> {
        let provider = self.providers.get(provider_id)?;
        if let Some(principal) = link_to {
            self.require_fresh(&self.db, principal).await?;
        }
        let user = link_to.map(|p| p.user_id);
        self.providers.start(provider, self.clock.now(), user).await
    }

    /// Ends a sign-in at `provider_id` (see the module's rules). `flow` is the one the
    /// browser session kept (taken out of it: each is used once), `current` the user
    /// logged in on the browser, if any, `device_token` its device cookie (a browser that
    /// logged in before is judged by its own failed logins, as at the password login).
    pub async fn finish_federated_sign_in(
        &self,
        provider_id: &str,
        flow: FederationFlow,
        callback: Callback,
        current: Option<&Principal>,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<FederatedSignIn> {
        let provider = self.providers.get(provider_id)?.clone();
        let link_to = flow.link_to;
        let timeout = self.settings.federation.flow_timeout;
        let identity = self
            .providers
            .finish(&provider, flow, callback, self.clock.now(), timeout)
            .await?;
        if let Some(user_id) = link_to {
            // The flow was started from the account page of this login; it is still it.
            let principal = current
                .filter(|p| p.user_id == user_id)
                .ok_or(Error::Unauthenticated)?;
            self.link_identity(principal, &identity, meta).await?;
            return Ok(FederatedSignIn::Linked {
                provider: provider.display_name(),
            });
        }
        for _ in 0..2 {
            if let Some(linked) = self.identity_of(&identity).await? {
                return self
                    .sign_in_linked(linked, &identity, device_token, meta)
                    .await;
            }
            let email = identity.email.as_deref().ok_or_else(|| Error::InvalidInput {
                code: "upstream_email_missing",
                message: format!(
                    "{} did not tell us your email address; allow access to it there, or sign up with a password",
                    provider.display_name()
                ),
            })?;
            // An address the provider did not verify reaches no account, new or old:
            // anyone can claim any address at some providers, and an account made with
            // it would stay the claimant's after its owner verified or reset it. The
            // answer is the same whether or not an account has the address.
            if !identity.email_verified {
                return Err(Error::Conflict {
                    code: "upstream_email_not_verified",
                    message: format!(
                        "{} has not verified your email address: verify it there and try again, or sign up with a password (and link {} from your account page)",
                        provider.display_name(),
                        provider.display_name()
                    ),
                });
            }
            let email = Email::parse(email)?;
            if let Some(account) = self.find_by_email(&email).await? {
                let ttl = chrono::Duration::from_std(timeout).unwrap_or_default();
                return Ok(FederatedSignIn::ProveAccount(PendingLink {
                    identity,
                    provider_name: provider.display_name(),
                    user_id: account.id,
                    expires_at: self.clock.now() + ttl,
                }));
            }
            match self.sign_up_federated(&identity, &email, meta).await {
                Ok(user) => {
                    let login = self
                        .federated_login(user, provider_id, device_token, meta)
                        .await?;
                    return Ok(FederatedSignIn::Login(login));
                }
                // Another sign-in made the account (or linked the identity) meanwhile:
                // decide again from what is stored now.
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(already_linked())
    }

    /// Links the identity of a [`PendingLink`] once its account's owner logged in with
    /// the password (`user_id`: who logged in). A login to another account, or one
    /// after the link expired, links nothing: returns whether it linked.
    pub async fn link_pending_identity(
        &self,
        user_id: Uuid,
        pending: PendingLink,
        meta: &RequestMeta,
    ) -> Result<bool> {
        let now = self.clock.now();
        if pending.user_id != user_id || pending.expires_at < now {
            return Ok(false);
        }
        let txn = self.begin_write().await?;
        self.record_link(&txn, user_id, None, &pending.identity, meta, now)
            .await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(true)
    }

    /// The identities linked to the caller's account, oldest first.
    pub async fn linked_identities(&self, principal: &Principal) -> Result<Vec<IdentityView>> {
        let rows = federated_identities::Entity::find()
            .filter(federated_identities::Column::UserId.eq(principal.user_id))
            .order_by_asc(federated_identities::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| IdentityView {
                provider_name: self
                    .providers
                    .get(&row.provider_id)
                    .map_or_else(|_| row.provider_id.clone(), |p| p.display_name()),
                id: row.id,
                provider: row.provider_id,
                email: row.email,
                linked_at: row.created_at,
                last_login_at: row.last_login_at,
            })
            .collect())
    }

    /// Unlinks one of the caller's identities (step-up), unless it is the account's last
    /// way to sign in (no password, no other identity): `409 last_sign_in_method`.
    pub async fn unlink_identity(
        &self,
        principal: &Principal,
        identity_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_fresh(&txn, principal).await?;
        let identity = federated_identities::Entity::find_by_id(identity_id)
            .one(&txn)
            .await?
            .filter(|i| i.user_id == principal.user_id)
            .ok_or(Error::NotFound("identity"))?;
        // The account's row locked (PostgreSQL; SQLite's write transaction holds the
        // whole database): two unlinks at once cannot each count the other's identity.
        let user = users::Entity::find_by_id(principal.user_id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let others = federated_identities::Entity::find()
            .filter(federated_identities::Column::UserId.eq(principal.user_id))
            .filter(federated_identities::Column::Id.ne(identity_id))
            .count(&txn)
            .await?;
        if !has_password(&user) && others == 0 {
            return Err(Error::Conflict {
                code: "last_sign_in_method",
                message: "this is the account's only way to sign in: set a password (forgot password) or link another provider first".to_owned(),
            });
        }
        federated_identities::Entity::delete_by_id(identity_id)
            .exec(&txn)
            .await?;
        let revoked = revoke_federated_sessions(&txn, principal, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::IdentityUnlinked, principal.user_id)
            .session(principal.session_id)
            .details(serde_json::json!({
                "provider": identity.provider_id,
                "sessions_revoked": revoked,
            }));
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await
    }

    async fn identity_of(
        &self,
        identity: &UpstreamIdentity,
    ) -> Result<Option<federated_identities::Model>> {
        Ok(federated_identities::Entity::find()
            .filter(federated_identities::Column::ProviderId.eq(&identity.provider_id))
            .filter(federated_identities::Column::Subject.eq(&identity.subject))
            .one(&self.db)
            .await?)
    }

    /// Signs in to the account a known identity is linked to.
    async fn sign_in_linked(
        &self,
        linked: federated_identities::Model,
        identity: &UpstreamIdentity,
        device_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<FederatedSignIn> {
        let user = users::Entity::find_by_id(linked.user_id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("account"))?;
        let login = self
            .federated_login(user, &identity.provider_id, device_token, meta)
            .await?;
        if matches!(login, BrowserPasswordLogin::Opened { .. }) {
            federated_identities::Entity::update_many()
                .col_expr(
                    federated_identities::Column::LastLoginAt,
                    Expr::value(self.clock.now()),
                )
                .filter(federated_identities::Column::Id.eq(linked.id))
                .exec(&self.writer)
                .await?;
        }
        Ok(FederatedSignIn::Login(login))
    }

    /// Links `identity` to the account of `principal`, whose session must be fresh.
    async fn link_identity(
        &self,
        principal: &Principal,
        identity: &UpstreamIdentity,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        self.require_fresh(&txn, principal).await?;
        let session = Some(principal.session_id);
        self.record_link(&txn, principal.user_id, session, identity, meta, now)
            .await?;
        txn.commit().await?;
        self.wake_mail_worker();
        Ok(())
    }

    /// Links `identity` to the account in `txn`: the row, the audit entry, and the notice
    /// to the account's address (a link another person made is a way in for good: the
    /// owner hears of it).
    async fn record_link(
        &self,
        txn: &DatabaseTransaction,
        user_id: Uuid,
        session: Option<Uuid>,
        identity: &UpstreamIdentity,
        meta: &RequestMeta,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let user = users::Entity::find_by_id(user_id)
            .one(txn)
            .await?
            .ok_or(Error::Unauthenticated)?;
        insert_identity(txn, user_id, identity, now).await?;
        let mut entry = AuditEntry::by_user(AuditEvent::IdentityLinked, user_id)
            .details(serde_json::json!({ "provider": identity.provider_id }));
        if let Some(session) = session {
            entry = entry.session(session);
        }
        audit::record(txn, now, meta, entry).await?;
        let provider = self
            .providers
            .get(&identity.provider_id)
            .map_or_else(|_| identity.provider_id.clone(), |p| p.display_name());
        let mail = Mail::IdentityLinked {
            name: user.name.clone(),
            provider,
        };
        self.enqueue_mail(txn, &Email::parse(&user.email)?, mail)
            .await
    }

    /// A first sign-in: the account and its identity, in one transaction.
    async fn sign_up_federated(
        &self,
        identity: &UpstreamIdentity,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<users::Model> {
        let txn = self.begin_write().await?;
        let user = self
            .insert_federated_account(
                &txn,
                email,
                identity.name.as_deref(),
                &identity.provider_id,
                meta,
            )
            .await?;
        insert_identity(&txn, user.id, identity, self.clock.now()).await?;
        txn.commit().await?;
        Ok(user)
    }
}

/// Stores the link of `identity` to `user_id`; `Conflict` when any account (this one
/// included) has it already.
async fn insert_identity(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    identity: &UpstreamIdentity,
    now: DateTime<Utc>,
) -> Result<()> {
    let inserted = federated_identities::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        provider_id: Set(identity.provider_id.clone()),
        subject: Set(identity.subject.clone()),
        email: Set(identity.email.clone()),
        created_at: Set(now),
        last_login_at: Set(None),
    }
    .insert(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(already_linked())
        }
        Err(e) => Err(e.into()),
    }
}
