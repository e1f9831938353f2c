//! Refresh-token rotation: every use returns a new refresh token; a rotated token
//! presented after `tokens.refresh_reuse_grace` is taken as stolen (reuse detection) and
//! ends the whole session.

use chrono::{DateTime, Utc};
use gatehouse_entity::{clients, refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::live::account_usable;
use crate::sessions::{RevokeReason, TokenPair, revoke_session};
use crate::tokens::access::TokenGrant;
use crate::tokens::audience::{still_allowed, token_audience};
use crate::tokens::id_token::IdTokenFor;
use crate::{Error, Gatehouse, Result};

pub(crate) async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    client_id: &str,
    scope: Option<String>,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    let (token, hash) = new_token()?;
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        client_id: Set(client_id.to_owned()),
        scope: Set(scope),
        token_hash: Set(hash),
        created_at: Set(now),
        rotated_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

impl Gatehouse {
    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// A token already exchanged is accepted again within `tokens.refresh_reuse_grace` of
    /// its rotation (a retried request, a second tab); presented later it is taken as
    /// stolen and the whole session is revoked. The token must belong to `client_id`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        meta: &RequestMeta,
    ) -> Result<TokenPair> {
        let hash = token_hash(refresh_token);
        let now = self.clock.now();
        // What only reads comes first, on the read pool: the writer is held for the three
        // statements below only (on SQLite every other write waits for it meanwhile).
        // Read here, the rows may change before the transaction; what matters is decided
        // again inside it: whether this call rotates the token (the claim) and whether the
        // session still stands (the conditional touch; disabling an account, resetting its
        // password or deleting its client revokes or deletes its sessions and tokens).
        let Some((token, Some(session), Some(user))) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .find_also_related(sessions::Entity)
            .and_also_related(users::Entity)
            .one(&self.db)
            .await?
        else {
            return Err(Error::InvalidRefreshToken);
        };
        if token.client_id != client_id
            || !self.session_is_live(&session, now)
            || !account_usable(&user, now)
        {
            return Err(Error::InvalidRefreshToken);
        }
        let client = clients::Entity::find_by_id(token.client_id.as_str())
            .one(&self.db)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        let scope = still_allowed(&client, token.scope.as_deref());

        let txn = self.begin_write().await?;
        // Claim the token: concurrent refreshes of one token queue on this write, and
        // exactly one of them sees it unrotated.
        let claimed = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .filter(refresh_tokens::Column::RotatedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !claimed {
            // Rotated already (or deleted since the read): when, as the transaction sees it.
            let rotated_at = refresh_tokens::Entity::find()
                .filter(refresh_tokens::Column::TokenHash.eq(&hash))
                .one(&txn)
                .await?
                .ok_or(Error::InvalidRefreshToken)?
                .rotated_at
                .unwrap_or(now);
            let grace = chrono::Duration::from_std(self.settings.tokens.refresh_reuse_grace)
                .unwrap_or_default();
            if now - rotated_at > grace {
                revoke_session(&txn, session.id, RevokeReason::RefreshTokenReuse, now).await?;
                let entry = AuditEntry {
                    event: AuditEvent::RefreshTokenReused,
                    actor: None,
                    subject: Some(session.user_id),
                    session: Some(session.id),
                    details: None,
                };
                audit::record(&txn, now, meta, entry).await?;
                self.commit_revoking(txn).await?;
                tracing::warn!(session_id = %session.id, "refresh token reused after rotation; session revoked");
                return Err(Error::InvalidRefreshToken);
            }
        }
        let refresh_token =
            insert_refresh_token(&txn, session.id, &client.id, scope.clone(), now).await?;
        // Only a session that still stands is touched; one revoked since the read is not,
        // and the whole transaction (the claim too) is rolled back.
        let touched = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .col_expr(
                sessions::Column::LastTokenExpiresAt,
                Expr::value(self.access_token_expiry(now)),
            )
            .filter(sessions::Column::Id.eq(session.id))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !touched {
            txn.rollback().await?;
            return Err(Error::InvalidRefreshToken);
        }
        txn.commit().await?;
        let grant = TokenGrant {
            subject: user.id.to_string(),
            audience: token_audience(&client, &self.settings.tokens.default_audience),
            client_id: client.id.clone(),
            session: Some(session.id),
            scope: scope.clone(),
            role: Some(user.role.clone()),
            actor: None,
        };
        let mut pair = self.token_pair(grant, refresh_token, now).await?;
        if let Some(auth_time) = session.auth_time {
            pair.id_token = self
                .id_token(IdTokenFor {
                    user: &user,
                    client_id: &client.id,
                    scope: scope.as_deref().unwrap_or_default(),
                    session_id: session.id,
                    auth_time,
                    amr: session.amr.as_deref(),
                    nonce: None,
                    access_token: &pair.access_token,
                    now,
                })
                .await?;
        }
        Ok(pair)
    }

    pub(crate) async fn token_pair(
        &self,
        grant: TokenGrant,
        refresh_token: SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenPair> {
        let session_id = grant
            .session
            .ok_or_else(|| Error::internal("a token pair needs a session"))?;
        let scope = grant.scope.clone();
        let (access_token, _) = self.tokens.issue(grant, now).await?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token: refresh_token.expose_secret().to_owned(),
            session_id,
            scope,
            id_token: None,
        })
    }
}
