//! Token introspection (RFC 7662): whether an access or refresh token is active.

use gatehouse_entity::{refresh_tokens, sessions, users};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::platform::secrets::token_hash;
use crate::sessions::live::account_usable;
use crate::{Error, Gatehouse, Result};

impl Gatehouse {
    /// RFC 7662: whether `token` (access or refresh) is active, with its claims if so.
    /// Expired, revoked, malformed and foreign tokens are all just `{"active": false}`.
    pub async fn introspect(&self, token: &str, hint: Option<&str>) -> Result<Value> {
        let found = if hint == Some("refresh_token") {
            match self.introspect_refresh_token(token).await? {
                Some(answer) => Some(answer),
                None => self.introspect_access_token(token).await?,
            }
        } else {
            match self.introspect_access_token(token).await? {
                Some(answer) => Some(answer),
                None => self.introspect_refresh_token(token).await?,
            }
        };
        Ok(found.unwrap_or_else(|| json!({ "active": false })))
    }

    async fn introspect_access_token(&self, token: &str) -> Result<Option<Value>> {
        let Ok(claims) = self.tokens.verify(token, None).await else {
            return Ok(None);
        };
        let active = match claims.sid {
            Some(sid) => self.live_session_user(sid).await?.is_some(),
            None => self.client_exists(&claims.client_id).await?,
        };
        if !active {
            return Ok(Some(json!({ "active": false })));
        }
        let mut answer = serde_json::to_value(&claims).map_err(Error::internal)?;
        answer["active"] = json!(true);
        answer["token_type"] = json!("Bearer");
        Ok(Some(answer))
    }

    async fn introspect_refresh_token(&self, token: &str) -> Result<Option<Value>> {
        let Some((row, Some(session))) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash(token)))
            .find_also_related(sessions::Entity)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(self.settings.tokens.refresh_reuse_grace)
            .unwrap_or_default();
        let usable = row.rotated_at.is_none_or(|rotated| now - rotated <= grace);
        if !usable
            || !self.session_is_live(&session, now)
            || !self.user_enabled(session.user_id).await?
        {
            return Ok(Some(json!({ "active": false })));
        }
        Ok(Some(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "sub": session.user_id.to_string(),
            "sid": session.id.to_string(),
            "scope": row.scope,
            "iat": row.created_at.timestamp(),
            "exp": session.expires_at.timestamp(),
            "iss": self.settings.issuer,
        })))
    }

    async fn user_enabled(&self, user_id: uuid::Uuid) -> Result<bool> {
        Ok(users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .is_some_and(|user| account_usable(&user, self.clock.now())))
    }
}
