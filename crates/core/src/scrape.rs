//! What `GET /metrics` answers: the gauges read at scrape time (active sessions, the
//! database pool, the hashing queue), then every counter of [`crate::platform::metrics`],
//! the hasher's and the rate limiter's, in the Prometheus text format.

use gatehouse_entity::sessions;
use prometheus::core::Collector;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
};

use crate::{Gatehouse, Result};

impl Gatehouse {
    /// The metrics of this instance in the Prometheus text format. A database that does
    /// not answer leaves `gatehouse_sessions_active` at its last value (and logs a
    /// warning): the scrape still answers, which is when it matters most.
    pub async fn render_metrics(&self) -> String {
        let metrics = &self.metrics;
        match self.count_active_sessions().await {
            Ok(count) => metrics
                .sessions_active
                .set(i64::try_from(count).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!(error = %e, "counting active sessions for /metrics failed"),
        }
        if let Some(pool) = pool_use(&self.db) {
            metrics
                .db_pool_connections
                .with_label_values(&["in_use"])
                .set(pool.in_use);
            metrics
                .db_pool_connections
                .with_label_values(&["idle"])
                .set(pool.idle);
            metrics.db_pool_max.set(pool.max);
        }
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics
            .hash_queue_depth
            .set(gauge(self.hasher.hashes_waiting()));
        metrics
            .hashes_in_progress
            .set(gauge(self.hasher.hashes_in_progress()));
        let mut more = self.hasher.duration_metric().collect();
        if let Some(limiter) = &self.rate_limiter {
            more.extend(limiter.rejections_metric().collect());
        }
        metrics.render(more)
    }

    /// Sessions that still stand: not revoked, not past their lifetime, not idle past
    /// `sessions.idle_timeout`. One `COUNT(*)` over the range of `idx_sessions_expires_at`
    /// after now (the sessions not yet expired), at each scrape.
    async fn count_active_sessions(&self) -> Result<u64> {
        let now = self.clock.now();
        let idle = chrono::Duration::from_std(self.settings.sessions.idle_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let mut live = sessions::Entity::find()
            .filter(sessions::Column::ExpiresAt.gt(now))
            .filter(sessions::Column::RevokedAt.is_null());
        if let Some(seen_since) = now.checked_sub_signed(idle) {
            live = live.filter(sessions::Column::LastSeenAt.gt(seen_since));
        }
        Ok(live.count(&self.db).await?)
    }
}

/// How the pool's connections are used right now.
struct PoolUse {
    in_use: i64,
    idle: i64,
    max: i64,
}

fn pool_use(db: &DatabaseConnection) -> Option<PoolUse> {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => return None,
    };
    let idle = i64::try_from(idle).unwrap_or(i64::MAX);
    Some(PoolUse {
        in_use: (i64::from(size) - idle).max(0),
        idle,
        max: i64::from(max),
    })
}
