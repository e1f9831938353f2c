//! Impersonation: an admin sees the product as a user sees it. The admin gets a session
//! of the user's own, marked with the admin's id (`sessions.impersonator_id`): short-lived
//! (`auth.impersonation_lifetime`), for the account API only, with one access token that
//! carries `act: {"sub": <admin id>}` (RFC 8693 4.1) and no refresh token. Such a session
//! never passes the step-up check, so it cannot change a password, an address, two-factor
//! settings or delete the account, and it cannot prove itself fresh. Starting one is an
//! admin write (the role as stored now, and a recent authentication of the admin) and is
//! audited with the admin as actor; admins and disabled accounts cannot be impersonated.
//! When the admin loses the role, or is disabled or banned, their impersonations end.
//!
//! The answer also holds a one-time link (`browser_url`, `auth.impersonation_link_ttl`)
//! that puts the same session on the hosted pages of a browser, under a banner that says
//! whose account it is. Only its hash is stored. Such a browser cannot sign in to
//! applications (their tokens would not say that an admin acts) and, like the token,
//! takes no sensitive action.

use chrono::{DateTime, Utc};
use gatehouse_entity::{one_time_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::identity::types::Role;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::live::account_usable;
use crate::sessions::{Principal, RevokeReason, revoke_session};
use crate::tokens::access::TokenGrant;
use crate::tokens::api_scopes::ACCOUNT_SCOPE;
use crate::tokens::audience::API_CLIENT_ID;
use crate::{Error, Gatehouse, Result};

/// Ends the sessions `admin_id` opened as other users, in the caller's transaction (one
/// that revokes): when the admin loses the admin role, is disabled or banned, what they
/// opened ends with their rights.
pub(crate) async fn revoke_impersonations_by(
    conn: &impl ConnectionTrait,
    admin_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    let opened = sessions::Entity::find()
        .filter(sessions::Column::ImpersonatorId.eq(admin_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
        .all(conn)
        .await?;
    let mut revoked = 0;
    for session in opened {
        if revoke_session(conn, session.id, RevokeReason::ImpersonatorLostRights, now).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// An impersonated session's access token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImpersonationToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub session_id: Uuid,
    /// When the session ends, whatever happens.
    pub session_expires_at: DateTime<Utc>,
    /// `gatehouse:account`: never the admin API.
    pub scope: &'static str,
    /// A one-time link (`auth.impersonation_link_ttl`) that opens this session in a
    /// browser, on the hosted pages, under a banner.
    pub browser_url: String,
}

/// The purpose of the one-time token behind `browser_url`.
const BROWSER_LINK_PURPOSE: &str = "impersonation";

/// An impersonated session a browser may show, from its one-time link.
#[derive(Debug)]
pub struct BrowserImpersonation {
    pub session_id: Uuid,
    /// The address of the account seen.
    pub user_email: String,
    pub expires_at: DateTime<Utc>,
}

impl Gatehouse {
    /// Opens a session as `user_id` for `admin` (see the module's rules).
    pub async fn admin_impersonate(
        &self,
        admin: &Principal,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<ImpersonationToken> {
        admin.require_admin()?;
        if user_id == admin.user_id {
            return Err(Error::Conflict {
                code: "cannot_modify_self",
                message: "admins cannot impersonate themselves".to_owned(),
            });
        }
        let now = self.clock.now();
        // Under the revocation lock: a demotion, ban or disable of the admin that commits
        // meanwhile is seen here, or sees (and ends) this session.
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if Role::from_stored(&user.role) == Role::Admin {
            return Err(Error::Conflict {
                code: "cannot_impersonate_admin",
                message: "admins cannot be impersonated".to_owned(),
            });
        }
        if user.disabled_at.is_some() {
            return Err(Error::AccountDisabled);
        }
        let lifetime = chrono::Duration::from_std(self.settings.auth.impersonation_lifetime)
            .unwrap_or_default();
        let session_id = Uuid::now_v7();
        let expires_at = now + lifetime;
        sessions::ActiveModel {
            id: Set(session_id),
            user_id: Set(user.id),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(expires_at),
            last_token_expires_at: Set(self.access_token_expiry(now).min(expires_at)),
            ip: Set(meta.ip.clone()),
            user_agent: Set(meta.user_agent_stored()),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            parent_id: Set(None),
            client_id: Set(None),
            auth_time: Set(None),
            amr: Set(None),
            reauthenticated_at: Set(None),
            impersonator_id: Set(Some(admin.user_id)),
        }
        .insert(&txn)
        .await?;
        let (link_token, link_hash) = new_token()?;
        let link_ttl = chrono::Duration::from_std(self.settings.auth.impersonation_link_ttl)
            .unwrap_or_default();
        one_time_tokens::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.id),
            purpose: Set(BROWSER_LINK_PURPOSE.to_owned()),
            token_hash: Set(link_hash),
            created_at: Set(now),
            expires_at: Set((now + link_ttl).min(expires_at)),
            used_at: Set(None),
            email: Set(None),
            session_id: Set(Some(session_id)),
        }
        .insert(&txn)
        .await?;
        let entry = AuditEntry {
            event: AuditEvent::ImpersonationStarted,
            actor: Some(admin.user_id),
            subject: Some(user.id),
            session: Some(session_id),
            details: Some(serde_json::json!({ "expires_at": expires_at })),
        };
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        let grant = TokenGrant {
            subject: user.id.to_string(),
            client_id: API_CLIENT_ID.to_owned(),
            audience: self.settings.tokens.default_audience.clone(),
            session: Some(session_id),
            scope: Some(ACCOUNT_SCOPE.to_owned()),
            role: Some(user.role.clone()),
            actor: Some(admin.user_id),
        };
        let (access_token, token_expires_at) = self.tokens.issue(grant, now).await?;
        Ok(ImpersonationToken {
            access_token,
            token_type: "Bearer",
            expires_in: u64::try_from((token_expires_at.min(expires_at) - now).num_seconds())
                .unwrap_or(0),
            session_id,
            session_expires_at: expires_at,
            scope: ACCOUNT_SCOPE,
            browser_url: format!(
                "{}/impersonate?token={}",
                self.issuer().trim_end_matches('/'),
                link_token.expose_secret()
            ),
        })
    }

    /// Uses up the one-time link of an impersonation: the session it opens in a browser,
    /// while that session still stands. [`Error::InvalidOneTimeToken`] for a link that is
    /// unknown, used, expired, or whose session ended.
    pub async fn open_impersonation_link(
        &self,
        token: &SecretString,
    ) -> Result<BrowserImpersonation> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let link = one_time_tokens::Entity::find()
            .filter(one_time_tokens::Column::TokenHash.eq(token_hash(token.expose_secret())))
            .filter(one_time_tokens::Column::Purpose.eq(BROWSER_LINK_PURPOSE))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .filter(one_time_tokens::Column::ExpiresAt.gt(now))
            .one(&txn)
            .await?
            .ok_or(Error::InvalidOneTimeToken)?;
        // Single use: of two requests racing with one link, one gets the session.
        let used = one_time_tokens::Entity::update_many()
            .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
            .filter(one_time_tokens::Column::Id.eq(link.id))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if used.rows_affected != 1 {
            return Err(Error::InvalidOneTimeToken);
        }
        let session_id = link.session_id.ok_or(Error::InvalidOneTimeToken)?;
        txn.commit().await?;
        // The session as every request sees it: not revoked, expired, or its user gone
        // or disabled.
        let user = self
            .login_user(session_id)
            .await?
            .filter(|user| user.user_id == link.user_id)
            .ok_or(Error::InvalidOneTimeToken)?;
        // The admin who opened it is still one, and may still sign in.
        let impersonator = match user.impersonator_id {
            Some(id) => users::Entity::find_by_id(id).one(&self.db).await?,
            None => None,
        };
        if !impersonator.is_some_and(|admin| {
            Role::from_stored(&admin.role) == Role::Admin && account_usable(&admin, now)
        }) {
            return Err(Error::InvalidOneTimeToken);
        }
        Ok(BrowserImpersonation {
            session_id,
            user_email: user.email,
            expires_at: user.session_expires_at,
        })
    }
}
