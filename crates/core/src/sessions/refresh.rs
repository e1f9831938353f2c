//! Refresh-token rotation: every use returns a new refresh token; a rotated token
//! presented after `tokens.refresh_reuse_grace` is taken as stolen (reuse detection) and
//! ends the whole session.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gatehouse_entity::{clients, refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::db::{GroupCommit, GroupedWrite};
use crate::platform::secrets::{new_token, token_hash};
use crate::sessions::live::{account_usable, session_stands};
use crate::sessions::revocations::lock_feed_shared;
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
        let now = self.clock.now();
        let client = self
            .known_client(client_id)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        let rotation = Rotation {
            token_hash: token_hash(refresh_token),
            client: Arc::clone(&client),
            now,
            idle_timeout: self.settings.sessions.idle_timeout,
            last_token_expires_at: self.access_token_expiry(now),
        };
        let token_hash = rotation.token_hash.clone();
        let Some(Rotated {
            session,
            user,
            scope,
            next,
        }) = self.rotations.write(rotation).await?
        else {
            return Err(Error::InvalidRefreshToken);
        };
        let refresh_token = match next {
            NextToken::Issued(token) => token,
            NextToken::AlreadyRotated => {
                self.rotate_again(&token_hash, &session, &client.id, scope.clone(), now, meta)
                    .await?
            }
        };
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

    /// A refresh token presented again after its rotation: within
    /// `tokens.refresh_reuse_grace` of it (a retried request, a second tab) it is
    /// exchanged again; later it is taken as stolen, and the whole session is revoked.
    async fn rotate_again(
        &self,
        token_hash: &str,
        session: &sessions::Model,
        client_id: &str,
        scope: Option<String>,
        now: DateTime<Utc>,
        meta: &RequestMeta,
    ) -> Result<SecretString> {
        let txn = self.begin_write().await?;
        // When it was rotated, as the transaction sees it (gone: deleted since the read).
        let rotated_at = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
            .one(&txn)
            .await?
            .ok_or(Error::InvalidRefreshToken)?
            .rotated_at
            .unwrap_or(now);
        let grace = chrono::Duration::from_std(self.settings.tokens.refresh_reuse_grace)
            .unwrap_or_default();
        // Without a grace, any second presentation is reuse (two presentations in one group
        // share a claim time).
        if grace.is_zero() || now - rotated_at > grace {
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
        let expiry = self.access_token_expiry(now);
        let touched = touch_sessions(&txn, HashSet::from([session.id]), now, expiry).await?;
        if touched.is_empty() {
            return Err(Error::InvalidRefreshToken);
        }
        let token = insert_refresh_token(&txn, session.id, client_id, scope, now).await?;
        txn.commit().await?;
        Ok(token)
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

/// How many rotations one transaction writes at most.
pub(crate) const ROTATIONS_PER_GROUP: usize = 64;

/// How many rotations may wait for the writer; beyond them, requests wait to queue.
pub(crate) const ROTATIONS_QUEUED: usize = 1024;

/// One rotation, written with the rotations queued beside it ([`GroupCommit`]). The
/// token is read inside the write, on the writer: on SQLite its cache holds the rows every
/// rotation reads, which a read connection would have to read again after each commit.
pub(crate) struct Rotation {
    token_hash: String,
    /// The client that presents the token.
    client: Arc<clients::Model>,
    now: DateTime<Utc>,
    idle_timeout: std::time::Duration,
    last_token_expires_at: DateTime<Utc>,
}

/// A rotation of a token that is valid: its session and user, the scope the next token
/// keeps, and the next token.
pub(crate) struct Rotated {
    session: sessions::Model,
    user: users::Model,
    scope: Option<String>,
    next: NextToken,
}

pub(crate) enum NextToken {
    Issued(SecretString),
    /// Rotated already (or deleted since): only the session's last use is recorded, and
    /// [`Gatehouse::rotate_again`] decides.
    AlreadyRotated,
}

/// The rotations' group commit.
pub(crate) type Rotations = GroupCommit<Rotation>;

impl GroupedWrite for Rotation {
    /// `None`: an unknown token, another client's, a session that no longer stands or an
    /// account that may not sign in; nothing is written for it.
    type Output = Option<Rotated>;

    /// Four statements for the whole group: read its tokens (with their sessions and
    /// users), touch the sessions that still stand, claim the tokens, insert the next
    /// ones. Of rotations of one token (a retry, a second tab), in one group or in
    /// several, exactly one claims it; the others are [`NextToken::AlreadyRotated`].
    async fn write_group(
        group: Vec<Rotation>,
        txn: &DatabaseTransaction,
    ) -> Result<Vec<Option<Rotated>>> {
        let Some(now) = group.iter().map(|r| r.now).max() else {
            return Ok(Vec::new());
        };
        let last_token_expires_at = group
            .iter()
            .map(|r| r.last_token_expires_at)
            .max()
            .unwrap_or(now);
        // Before any row lock: a revocation of several sessions (a new password, a ban)
        // locks them one by one, and this group locks many at once.
        lock_feed_shared(txn).await?;
        let hashes: HashSet<&str> = group.iter().map(|r| r.token_hash.as_str()).collect();
        let mut found = HashMap::new();
        for (token, session, user) in refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.is_in(hashes))
            .find_also_related(sessions::Entity)
            .and_also_related(users::Entity)
            .all(txn)
            .await?
        {
            if let (Some(session), Some(user)) = (session, user) {
                found.insert(token.token_hash.clone(), (token, session, user));
            }
        }
        let valid: Vec<Option<&(refresh_tokens::Model, sessions::Model, users::Model)>> = group
            .iter()
            .map(|rotation| {
                found
                    .get(&rotation.token_hash)
                    .filter(|(token, session, user)| {
                        token.client_id == rotation.client.id
                            && session_stands(session, rotation.now, rotation.idle_timeout)
                            && account_usable(user, rotation.now)
                    })
            })
            .collect();
        // On PostgreSQL another instance may revoke a session between the read and the
        // writes (SQLite's one writer excludes it): only sessions that still stand are
        // touched, and only their tokens claimed.
        let sessions: HashSet<Uuid> = valid.iter().flatten().map(|(_, s, _)| s.id).collect();
        let touched = touch_sessions(txn, sessions, now, last_token_expires_at).await?;
        let claimable: HashSet<&str> = valid
            .iter()
            .flatten()
            .filter(|(_, session, _)| touched.contains(&session.id))
            .map(|(token, _, _)| token.token_hash.as_str())
            .collect();
        let mut claimed: HashSet<String> = if claimable.is_empty() {
            HashSet::new()
        } else {
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
                .filter(refresh_tokens::Column::TokenHash.is_in(claimable))
                .filter(refresh_tokens::Column::RotatedAt.is_null())
                .exec_with_returning(txn)
                .await?
                .into_iter()
                .map(|token| token.token_hash)
                .collect()
        };
        let mut next_tokens = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        for (rotation, valid) in group.iter().zip(valid) {
            let Some((token, session, user)) =
                valid.filter(|(_, session, _)| touched.contains(&session.id))
            else {
                answers.push(None);
                continue;
            };
            let scope = still_allowed(&rotation.client, token.scope.as_deref());
            // The first rotation of a token in the group takes the claim.
            let next = if claimed.remove(&token.token_hash) {
                let (secret, hash) = new_token()?;
                next_tokens.push(refresh_tokens::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    session_id: Set(session.id),
                    client_id: Set(rotation.client.id.clone()),
                    scope: Set(scope.clone()),
                    token_hash: Set(hash),
                    created_at: Set(rotation.now),
                    rotated_at: Set(None),
                });
                NextToken::Issued(secret)
            } else {
                NextToken::AlreadyRotated
            };
            answers.push(Some(Rotated {
                session: session.clone(),
                user: user.clone(),
                scope,
                next,
            }));
        }
        if !next_tokens.is_empty() {
            refresh_tokens::Entity::insert_many(next_tokens)
                .exec_without_returning(txn)
                .await?;
        }
        Ok(answers)
    }
}

/// Records rotations' use of their sessions, of those that still stand: the ones
/// returned.
async fn touch_sessions(
    conn: &impl ConnectionTrait,
    session_ids: HashSet<Uuid>,
    now: DateTime<Utc>,
    last_token_expires_at: DateTime<Utc>,
) -> Result<HashSet<Uuid>> {
    if session_ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(sessions::Entity::update_many()
        .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
        .col_expr(
            sessions::Column::LastTokenExpiresAt,
            Expr::value(last_token_expires_at),
        )
        .filter(sessions::Column::Id.is_in(session_ids))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|session| session.id)
        .collect())
}
