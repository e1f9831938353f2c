//! Ending sessions: logout, the user's own revokes, and the revocation of a session (and
//! the app sessions under it) that every other path uses; each revocation is recorded in
//! the feed and tells the apps by back-channel logout.

use chrono::{DateTime, Utc};
use gatehouse_entity::sessions;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::platform::audit::{self, AuditEvent, RequestMeta};
use crate::sessions::backchannel;
use crate::sessions::revocations;
use crate::sessions::{Principal, RevokeReason, SessionView};
use crate::{Error, Gatehouse, Result};

/// Revokes one session and the app sessions under it; false if it was already revoked.
/// Clients holding tokens of an ended session are told through back-channel logout.
pub(crate) async fn revoke_session(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool> {
    let revoked = revoke_one_session(conn, session_id, reason, now).await?;
    let children = sessions::Entity::find()
        .filter(sessions::Column::ParentId.eq(session_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .all(conn)
        .await?;
    for child in children {
        revoke_one_session(conn, child.id, RevokeReason::LoginEnded, now).await?;
    }
    Ok(revoked)
}

async fn revoke_one_session(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool> {
    revocations::lock_feed(conn).await?;
    let result = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(
            sessions::Column::RevokedReason,
            Expr::value(reason.as_str()),
        )
        .filter(sessions::Column::Id.eq(session_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Ok(false);
    }
    if let Some(session) = sessions::Entity::find_by_id(session_id).one(conn).await? {
        revocations::record(conn, session.id, now, session.last_token_expires_at).await?;
        backchannel::enqueue(conn, &session, now).await?;
    }
    Ok(true)
}

/// Revokes every live session of a user, except `keep`, and those the user opened as
/// others (an admin's impersonations: they end with the admin's own sessions, after a
/// password change or reset, say); returns how many.
pub(crate) async fn revoke_user_sessions(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut live = sessions::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(sessions::Column::UserId.eq(user_id))
                .add(sessions::Column::ImpersonatorId.eq(user_id)),
        )
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now));
    if let Some(keep) = keep {
        // The kept login keeps its app sessions too.
        live = live.filter(sessions::Column::Id.ne(keep)).filter(
            sea_orm::Condition::any()
                .add(sessions::Column::ParentId.is_null())
                .add(sessions::Column::ParentId.ne(keep)),
        );
    }
    let mut revoked = 0;
    for session in live.all(conn).await? {
        if revoke_session(conn, session.id, reason, now).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}

impl Gatehouse {
    /// Ends the session of the access token used.
    pub async fn log_out(&self, principal: &Principal, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        revoke_session(&txn, principal.session_id, RevokeReason::Logout, now).await?;
        let entry = principal.audit_entry(AuditEvent::Logout);
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(())
    }

    /// The caller's live sessions, newest first.
    pub async fn list_own_sessions(&self, principal: &Principal) -> Result<Vec<SessionView>> {
        self.live_sessions(principal.user_id, Some(principal.session_id))
            .await
    }

    /// Ends one of the caller's own sessions. Another user's session is "not found".
    pub async fn revoke_own_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let session = sessions::Entity::find_by_id(session_id)
            .filter(sessions::Column::UserId.eq(principal.user_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("session"))?;
        if revoke_session(&txn, session.id, RevokeReason::RevokedByUser, now).await? {
            let entry = principal
                .audit_entry(AuditEvent::SessionRevoked)
                .session(session.id);
            audit::record(&txn, now, meta, entry).await?;
        }
        self.commit_revoking(txn).await?;
        Ok(())
    }

    /// Ends every session of the caller except the current one ("sign out everywhere
    /// else"); returns how many ended.
    pub async fn revoke_other_sessions(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<u64> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let revoked = revoke_user_sessions(
            &txn,
            principal.user_id,
            Some(principal.session_id),
            RevokeReason::RevokedByUser,
            now,
        )
        .await?;
        let entry = principal
            .audit_entry(AuditEvent::SessionRevoked)
            .details(serde_json::json!({ "other_sessions_ended": revoked }));
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(revoked)
    }

    pub(crate) async fn live_sessions(
        &self,
        user_id: Uuid,
        current: Option<Uuid>,
    ) -> Result<Vec<SessionView>> {
        let now = self.clock.now();
        // App sessions are shown through the logins they hang under.
        let rows = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::ParentId.is_null())
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|s| self.session_is_live(s, now))
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }
}
