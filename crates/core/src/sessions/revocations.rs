//! The revocation feed: which sessions were revoked while tokens of theirs may still be
//! valid, in the order they were revoked, so that app backends verifying tokens locally
//! can refuse them within a second.
//!
//! Revoking a session writes a row in the same transaction. Each instance reads new rows
//! and broadcasts them to its subscribers (the SSE streams), so a revocation made on any
//! instance reaches every instance's streams. On PostgreSQL the revoking transaction also
//! sends a `NOTIFY` (delivered when it commits) that every instance `LISTEN`s for, so the
//! others read the row at once; the poll (`revocations.poll_interval`) stays as the
//! fallback for a listening connection that was lost, and is all there is on SQLite.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use gatehouse_entity::{session_revocations, sessions};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    NotSet, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::{Error, Gatehouse, Result};

/// The PostgreSQL channel that revoking transactions notify.
const NOTIFY_CHANNEL: &str = "gatehouse_revocations";

/// Most entries one page of the feed holds.
const PAGE_SIZE: u64 = 500;

/// One revoked session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revocation {
    /// Position in the feed; pass the last one seen as `after`.
    pub id: i64,
    pub session_id: Uuid,
    pub revoked_at: DateTime<Utc>,
    /// Unix time after which no access token of the session is valid anyway.
    pub tokens_expire_at: i64,
}

impl From<session_revocations::Model> for Revocation {
    fn from(m: session_revocations::Model) -> Self {
        Self {
            id: m.id,
            session_id: m.session_id,
            revoked_at: m.revoked_at,
            tokens_expire_at: m.tokens_expire_at,
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevocationPage {
    pub revocations: Vec<Revocation>,
    /// What to pass as `after` next time: the id of the last entry; on an empty page the
    /// `after` that was given, or the newest id when none was (never null, so a backend
    /// that polls with `after=<next_cursor>` never falls back to the beginning).
    pub next_cursor: i64,
}

/// A subscriber's view of the feed: what it missed since its cursor, then what arrives
/// live, in order and without gaps or repeats.
pub struct RevocationFeed {
    backlog: VecDeque<Revocation>,
    live: broadcast::Receiver<Revocation>,
    last_id: i64,
}

impl RevocationFeed {
    /// The next revocation; `None` when this subscriber fell too far behind the live
    /// channel (it reconnects from its last id and reads the rest from the database).
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Option<Revocation> {
        if let Some(revocation) = self.backlog.pop_front() {
            self.last_id = revocation.id;
            return Some(revocation);
        }
        loop {
            match self.live.recv().await {
                Ok(revocation) if revocation.id > self.last_id => {
                    self.last_id = revocation.id;
                    return Some(revocation);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
            }
        }
    }
}

/// Fans new revocations out to this instance's subscribers.
pub struct RevocationHub {
    sender: broadcast::Sender<Revocation>,
    last_broadcast: AtomicI64,
    /// One read of new rows at a time (the poll and a notice may arrive together).
    reading: Mutex<()>,
}

impl Default for RevocationHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            last_broadcast: AtomicI64::new(-1),
            reading: Mutex::new(()),
        }
    }
}

impl RevocationHub {
    /// New revocations from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.sender.subscribe()
    }
}

/// Key of the PostgreSQL advisory lock that orders revocations.
const FEED_LOCK: i64 = 0x6761_7465_686f_7573; // "gatehous"

/// Makes revocations commit in feed order.
///
/// Readers follow the feed by id (`after=`), so an entry that commits after a higher id
/// was read would be skipped for good. On PostgreSQL each revoking transaction takes one
/// transaction-scoped advisory lock, so ids are handed out and committed in order.
/// Transactions that revoke take it first, before any row lock
/// ([`Gatehouse::begin_revoking`]), so no two can wait on each other; `revoke_session`
/// takes it again, which is harmless (it is re-entrant). SQLite needs nothing here: its
/// write transactions begin `IMMEDIATE` ([`crate::platform::db::begin_write`]), holding
/// the database's one write lock from `BEGIN` to `COMMIT`, so they commit one after the
/// other and none reads a snapshot another writer (another process too) made stale.
pub(crate) async fn lock_feed(conn: &impl ConnectionTrait) -> Result<()> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({FEED_LOCK})"))
            .await?;
    }
    Ok(())
}

/// [`lock_feed`] shared, for a transaction that locks many sessions without revoking any
/// (a group of refresh rotations): it waits for the revocations in progress, and they for
/// it, before either takes a row lock, so the two can never wait on each other's rows.
pub(crate) async fn lock_feed_shared(conn: &impl ConnectionTrait) -> Result<()> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock_shared({FEED_LOCK})"))
            .await?;
    }
    Ok(())
}

impl Gatehouse {
    /// Begins a transaction that may revoke sessions, holding the feed lock from the start.
    pub(crate) async fn begin_revoking(&self) -> Result<DatabaseTransaction> {
        let txn = self.begin_write().await?;
        lock_feed(&txn).await?;
        Ok(txn)
    }

    /// Commits a transaction that revoked sessions or changed what a live-session check
    /// reads (a user's role, state or profile), then empties this instance's view of
    /// live sessions, before the request that made the change answers.
    pub(crate) async fn commit_revoking(&self, txn: DatabaseTransaction) -> Result<()> {
        // Also when the commit fails (it may have landed) or this future is dropped.
        let _forget = self.live_sessions.forget_all_on_drop();
        txn.commit().await?;
        Ok(())
    }
}

/// Records the revocation of a session whose last access token expires at `tokens_expire_at`.
pub(crate) async fn record(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    now: DateTime<Utc>,
    tokens_expire_at: DateTime<Utc>,
) -> Result<()> {
    session_revocations::ActiveModel {
        id: NotSet,
        session_id: Set(session_id),
        revoked_at: Set(now),
        // Rounded up to the second, as token `exp` claims are whole seconds.
        tokens_expire_at: Set(tokens_expire_at.timestamp() + 1),
    }
    .insert(conn)
    .await?;
    if conn.get_database_backend() == DbBackend::Postgres {
        // Delivered to every listening instance when the transaction commits.
        conn.execute_unprepared(&format!("NOTIFY {NOTIFY_CHANNEL}"))
            .await?;
    }
    Ok(())
}

impl Gatehouse {
    /// Entries after `after` (all still relevant ones when `None`), oldest first.
    pub async fn revocations_after(&self, after: Option<i64>) -> Result<RevocationPage> {
        let now = self.clock.now().timestamp();
        let rows = session_revocations::Entity::find()
            .filter(session_revocations::Column::Id.gt(after.unwrap_or(0)))
            .filter(session_revocations::Column::TokensExpireAt.gt(now))
            .order_by_asc(session_revocations::Column::Id)
            .limit(PAGE_SIZE)
            .all(&self.db)
            .await?;
        let revocations: Vec<Revocation> = rows.into_iter().map(Revocation::from).collect();
        let next_cursor = match (revocations.last(), after) {
            (Some(last), _) => last.id,
            (None, Some(after)) => after,
            (None, None) => session_revocations::Entity::find()
                .order_by_desc(session_revocations::Column::Id)
                .one(&self.db)
                .await?
                .map_or(0, |r| r.id),
        };
        Ok(RevocationPage {
            next_cursor,
            revocations,
        })
    }

    /// The feed after `after` for a live subscriber: it subscribes before reading the
    /// backlog, so nothing revoked in between falls through.
    pub async fn follow_revocations(&self, after: Option<i64>) -> Result<RevocationFeed> {
        let live = self.revocations.subscribe();
        let mut backlog = VecDeque::new();
        let mut cursor = after;
        loop {
            let page = self.revocations_after(cursor).await?;
            if page.revocations.is_empty() {
                break;
            }
            cursor = Some(page.next_cursor);
            backlog.extend(page.revocations);
        }
        Ok(RevocationFeed {
            backlog,
            live,
            last_id: cursor.unwrap_or(0),
        })
    }

    /// This instance's hub, for live subscribers.
    pub fn revocation_hub(&self) -> &RevocationHub {
        &self.revocations
    }

    /// Reads rows added since the last poll (by any instance) and broadcasts them.
    pub async fn poll_revocations(&self) -> Result<usize> {
        let hub = &self.revocations;
        let _reading = hub.reading.lock().await;
        let last = hub.last_broadcast.load(Ordering::SeqCst);
        if last < 0 {
            // First poll: start from the newest row; older ones reach subscribers as backlog.
            let newest = session_revocations::Entity::find()
                .order_by_desc(session_revocations::Column::Id)
                .one(&self.db)
                .await?
                .map_or(0, |r| r.id);
            hub.last_broadcast.store(newest, Ordering::SeqCst);
            return Ok(0);
        }
        let rows = session_revocations::Entity::find()
            .filter(session_revocations::Column::Id.gt(last))
            .order_by_asc(session_revocations::Column::Id)
            .limit(PAGE_SIZE)
            .all(&self.db)
            .await?;
        let count = rows.len();
        for row in &rows {
            // A revocation another instance made: its tokens stop passing here now.
            self.live_sessions.forget(&row.session_id);
        }
        self.count_revocations(&rows).await;
        for row in rows {
            hub.last_broadcast.store(row.id, Ordering::SeqCst);
            // No subscriber is not an error.
            let _ = hub.sender.send(row.into());
        }
        Ok(count)
    }
}

impl Gatehouse {
    /// Counts newly read feed rows in `gatehouse_session_revocations_total`, by the
    /// reason on their session. The feed holds only committed revocations, and each
    /// instance reads each row once, so the counter is exact (if every instance counts
    /// every revocation: see docs/operations.md). A session already purged counts as
    /// `unknown`, as do all of them when the reasons cannot be read now.
    async fn count_revocations(&self, rows: &[session_revocations::Model]) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = rows.iter().map(|row| row.session_id).collect();
        let reasons = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::RevokedReason)
            .filter(sessions::Column::Id.is_in(ids))
            .into_tuple::<Option<String>>()
            .all(&self.db)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the reasons of revoked sessions failed");
                Vec::new()
            });
        let mut known = 0;
        for reason in reasons {
            known += 1;
            self.metrics
                .revoked(reason.as_deref().unwrap_or("unknown"), 1);
        }
        let unknown = u64::try_from(rows.len().saturating_sub(known)).unwrap_or(0);
        if unknown > 0 {
            self.metrics.revoked("unknown", unknown);
        }
    }

    /// On PostgreSQL: listens for the notices revoking transactions send, and reads the
    /// new rows as each arrives. Returns `Ok` at once on other databases (the poll does
    /// the work there); returns an error when listening fails, for the caller to retry.
    /// A connection lost while listening is reopened; the poll covers the gap.
    pub async fn listen_for_revocations(&self) -> Result<()> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let unreachable = |e: sea_orm::sqlx::Error| Error::Unavailable {
            reason: "database_unreachable",
            source: Some(Box::new(e)),
        };
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(
            self.db.get_postgres_connection_pool(),
        )
        .await
        .map_err(unreachable)?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(unreachable)?;
        // Whatever committed before the LISTEN took effect.
        self.poll_revocations().await?;
        loop {
            // `None`: the connection was lost (and is reopened, listening again, on the
            // next call); read whatever was missed meanwhile.
            listener.try_recv().await.map_err(unreachable)?;
            self.poll_revocations().await?;
        }
    }
}
