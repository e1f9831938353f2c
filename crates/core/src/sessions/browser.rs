//! The state behind the session cookie of the hosted pages (the storage of the server's
//! actix-session store). The cookie holds a 256-bit random key; only its SHA-256 is
//! stored. Once the user logs in, the state names their login session, and the browser
//! session lives only as long as that login: revoking the login anywhere (logout
//! elsewhere, an admin, a password reset) logs the browser out on its next request.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gatehouse_entity::{browser_sessions, sessions};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use uuid::Uuid;

use crate::identity::hashing::has_password;
use crate::identity::types::Role;
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::Principal;
use crate::tokens::api_scopes::ApiAccess;
use crate::{Error, Gatehouse, Result};

/// Activity closer together than this does not move the idle expiry again.
const TOUCH_GRANULARITY: chrono::Duration = chrono::Duration::minutes(1);

/// The state key whose value (a JSON string) is the id of the login session.
pub const LOGIN_SESSION_KEY: &str = "login";

/// The state of one browser session: string keys, JSON-encoded values.
pub type BrowserState = HashMap<String, String>;

/// The user logged in on a browser.
#[derive(Debug, Clone)]
pub struct BrowserUser {
    pub user_id: Uuid,
    pub email: String,
    pub session_id: Uuid,
    pub role: Role,
    /// When the user entered their password for this login.
    pub auth_time: DateTime<Utc>,
    /// How the user authenticated (RFC 8176 values, space-separated).
    pub amr: String,
    /// Whether the account has two-factor authentication (proving oneself again asks
    /// for a code too).
    pub mfa_enabled: bool,
    /// Whether the account has a password (an account made by a provider sign-in has
    /// none, and proves itself there).
    pub has_password: bool,
    /// The admin who opened this login as the user (impersonation), if one did.
    pub impersonator_id: Option<Uuid>,
    /// When the login ends at the latest.
    pub session_expires_at: DateTime<Utc>,
}

impl BrowserUser {
    /// The same user as the JSON API's extractor would see them.
    pub fn principal(&self) -> Principal {
        Principal {
            user_id: self.user_id,
            session_id: self.session_id,
            role: self.role,
            // The hosted pages are Gatehouse itself.
            access: ApiAccess::FULL,
            impersonator_id: self.impersonator_id,
        }
    }
}

/// The login session named by a browser state, if any.
pub fn login_session_of(state: &BrowserState) -> Option<Uuid> {
    state
        .get(LOGIN_SESSION_KEY)
        .and_then(|value| serde_json::from_str(value).ok())
}

impl Gatehouse {
    /// The state behind a cookie key, if the browser session and its login still stand.
    pub async fn load_browser_session(&self, key: &str) -> Result<Option<BrowserState>> {
        let id = token_hash(key);
        let Some(row) = browser_sessions::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now();
        let login_ended = match row.session_id {
            Some(login) => self.login_user(login).await?.is_none(),
            None => false,
        };
        if row.expires_at <= now || login_ended {
            browser_sessions::Entity::delete_by_id(id)
                .exec(&self.writer)
                .await?;
            return Ok(None);
        }
        serde_json::from_str(&row.state)
            .map(Some)
            .map_err(Error::internal)
    }

    /// Stores new state under a new key, returned for the cookie.
    pub async fn create_browser_session(
        &self,
        state: &BrowserState,
        idle_timeout: Duration,
    ) -> Result<SecretString> {
        let (key, id) = new_token()?;
        let now = self.clock.now();
        browser_sessions::ActiveModel {
            id: Set(id),
            session_id: Set(login_session_of(state)),
            state: Set(serde_json::to_string(state).map_err(Error::internal)?),
            created_at: Set(now),
            expires_at: Set(now + chrono_duration(idle_timeout)),
        }
        .insert(&self.writer)
        .await?;
        Ok(key)
    }

    /// Replaces the state behind a key; false if the key is unknown (then save anew).
    pub async fn update_browser_session(
        &self,
        key: &str,
        state: &BrowserState,
        idle_timeout: Duration,
    ) -> Result<bool> {
        let now = self.clock.now();
        let updated = browser_sessions::Entity::update_many()
            .col_expr(
                browser_sessions::Column::State,
                Expr::value(serde_json::to_string(state).map_err(Error::internal)?),
            )
            .col_expr(
                browser_sessions::Column::SessionId,
                Expr::value(login_session_of(state)),
            )
            .col_expr(
                browser_sessions::Column::ExpiresAt,
                Expr::value(now + chrono_duration(idle_timeout)),
            )
            .filter(browser_sessions::Column::Id.eq(token_hash(key)))
            .exec(&self.writer)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Moves the idle expiry of a browser session forward, and counts the visit as
    /// activity of its login. Within a minute of the last move nothing is written, so a
    /// burst of page views costs reads only.
    pub async fn touch_browser_session(&self, key: &str, idle_timeout: Duration) -> Result<()> {
        let now = self.clock.now();
        let id = token_hash(key);
        let expires_at = now + chrono_duration(idle_timeout);
        let moved = browser_sessions::Entity::update_many()
            .col_expr(browser_sessions::Column::ExpiresAt, Expr::value(expires_at))
            .filter(browser_sessions::Column::Id.eq(id.as_str()))
            .filter(browser_sessions::Column::ExpiresAt.lt(expires_at - TOUCH_GRANULARITY))
            .exec(&self.writer)
            .await?
            .rows_affected
            == 1;
        if !moved {
            return Ok(());
        }
        if let Some(login) = browser_sessions::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .and_then(|row| row.session_id)
        {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
                .filter(sessions::Column::Id.eq(login))
                .filter(sessions::Column::RevokedAt.is_null())
                .exec(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Forgets a browser session.
    pub async fn delete_browser_session(&self, key: &str) -> Result<()> {
        browser_sessions::Entity::delete_by_id(token_hash(key))
            .exec(&self.writer)
            .await?;
        Ok(())
    }

    /// The user of a login session that still stands (not revoked, expired or idle, and
    /// the account enabled).
    pub async fn login_user(&self, session_id: Uuid) -> Result<Option<BrowserUser>> {
        let Some(rows) = self.cached_live_session(session_id).await? else {
            return Ok(None);
        };
        let (session, user) = &*rows;
        Ok(Some(BrowserUser {
            user_id: user.id,
            email: user.email.clone(),
            session_id: session.id,
            role: Role::from_stored(&user.role),
            auth_time: session.auth_time.unwrap_or(session.created_at),
            amr: session.amr.clone().unwrap_or_else(|| "pwd".to_owned()),
            mfa_enabled: user.mfa_enabled_at.is_some(),
            has_password: has_password(user),
            impersonator_id: session.impersonator_id,
            session_expires_at: session.expires_at,
        }))
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
