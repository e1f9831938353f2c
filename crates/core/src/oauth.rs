//! The OAuth 2.0 endpoints' rules: client credentials and refresh grants (RFC 6749),
//! introspection (RFC 7662) and revocation (RFC 7009).

use gatehouse_entity::{refresh_tokens, sessions, users};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::clients::{Client, GrantType, split};
use crate::secrets::token_hash;
use crate::sessions::{RevokeReason, TokenPair, revoke_session};
use crate::signing::TokenGrant;
use crate::{Error, Gatehouse, Result};

/// The answer of the token endpoint for a service token (no refresh token).
#[derive(Debug, Serialize)]
pub struct ServiceToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Gatehouse {
    /// `grant_type=client_credentials`: a token for the client itself, with the requested
    /// scopes (all of its registered scopes when none are asked for).
    pub async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<ServiceToken> {
        if !client.is_confidential() || !client.allows(GrantType::ClientCredentials) {
            return Err(Error::UnauthorizedClient(
                "this client may not use client_credentials".to_owned(),
            ));
        }
        let allowed: Vec<&str> = client.scopes().collect();
        let granted: Vec<&str> = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            Some(requested) => {
                let requested: Vec<&str> = split(requested).collect();
                if let Some(unknown) = requested.iter().find(|s| !allowed.contains(s)) {
                    return Err(Error::InvalidScope(format!(
                        "scope `{unknown}` is not allowed for this client"
                    )));
                }
                requested
            }
            None => allowed,
        };
        let scope = (!granted.is_empty()).then(|| granted.join(" "));
        let (access_token, _) = self
            .tokens
            .issue(
                TokenGrant {
                    subject: client.id().to_owned(),
                    client_id: client.id().to_owned(),
                    audience: client
                        .audience(&self.settings.tokens.default_audience)
                        .to_owned(),
                    session: None,
                    scope: scope.clone(),
                    role: None,
                },
                self.clock.now(),
            )
            .await?;
        Ok(ServiceToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            scope,
        })
    }

    /// `grant_type=refresh_token` at the token endpoint: the client must be allowed the
    /// grant, and the token must be its own (see [`Gatehouse::refresh`]).
    pub async fn refresh_token_grant(
        &self,
        client: &Client,
        refresh_token: &str,
        meta: &RequestMeta,
    ) -> Result<TokenPair> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(Error::UnauthorizedClient(
                "this client may not use refresh_token".to_owned(),
            ));
        }
        self.refresh(refresh_token, client.id(), meta).await
    }

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

    /// RFC 7009: a refresh token ends its session if the client holds it; an access
    /// token ends its session. Unknown tokens are ignored, as the RFC asks.
    pub async fn revoke_token(
        &self,
        client: &Client,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let session = match refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash(token)))
            .one(&self.db)
            .await?
        {
            Some(row) if row.client_id == client.id() => Some(row.session_id),
            Some(_) => None,
            None => match self.tokens.verify(token, None).await {
                Ok(claims) => claims.sid,
                Err(_) => None,
            },
        };
        let Some(session_id) = session else {
            return Ok(());
        };
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        if let Some(session) = sessions::Entity::find_by_id(session_id).one(&txn).await?
            && revoke_session(&txn, session.id, RevokeReason::TokenRevoked, now).await?
        {
            let entry = AuditEntry {
                event: AuditEvent::SessionRevoked,
                actor: None,
                subject: Some(session.user_id),
                session: Some(session.id),
                details: Some(json!({ "client_id": client.id(), "via": "oauth2_revoke" })),
            };
            audit::record(&txn, now, meta, entry).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn user_enabled(&self, user_id: uuid::Uuid) -> Result<bool> {
        Ok(users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .is_some_and(|user| user.disabled_at.is_none()))
    }

    /// A session that still stands (not revoked, expired or idle) and its enabled user.
    pub(crate) async fn live_session(
        &self,
        conn: &impl ConnectionTrait,
        session_id: uuid::Uuid,
    ) -> Result<Option<(sessions::Model, users::Model)>> {
        let Some((session, Some(user))) = sessions::Entity::find_by_id(session_id)
            .find_also_related(users::Entity)
            .one(conn)
            .await?
        else {
            return Ok(None);
        };
        let live = self.session_is_live(&session, self.clock.now()) && user.disabled_at.is_none();
        Ok(live.then_some((session, user)))
    }

    /// The user of a session that still stands.
    pub(crate) async fn live_session_user(
        &self,
        session_id: uuid::Uuid,
    ) -> Result<Option<users::Model>> {
        Ok(self
            .live_session(&self.db, session_id)
            .await?
            .map(|(_, user)| user))
    }

    /// The claims and user of a user's access token whose session still stands; any
    /// audience when `audience` is `None`. Service tokens (no session) are refused.
    pub(crate) async fn user_token(
        &self,
        access_token: &str,
        audience: Option<&str>,
    ) -> Result<(crate::signing::AccessClaims, users::Model)> {
        let claims = self.tokens.verify(access_token, audience).await?;
        let sid = claims.sid.ok_or(Error::Unauthenticated)?;
        let user = self
            .live_session_user(sid)
            .await?
            .filter(|user| user.id.to_string() == claims.sub)
            .ok_or(Error::Unauthenticated)?;
        Ok((claims, user))
    }
}
