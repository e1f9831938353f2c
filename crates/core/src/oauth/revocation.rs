//! Token revocation (RFC 7009): a client ends the session of a token it holds.

use gatehouse_entity::{refresh_tokens, sessions};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::oauth::clients::Client;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::secrets::token_hash;
use crate::sessions::{RevokeReason, revoke_session};
use crate::{Gatehouse, Result};

impl Gatehouse {
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
        self.commit_revoking(txn).await?;
        Ok(())
    }
}
