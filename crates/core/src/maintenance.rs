//! Periodic clean-up of rows nobody can use any more. Every statement is an idempotent
//! `DELETE ... WHERE expired`, so any number of instances may run it at once; the
//! scheduled run ([`Gatehouse::purge_if_due`]) still runs once per interval across all
//! instances: each run is claimed by its audit entry, written under a lock.

use gatehouse_entity::audit_events;
use gatehouse_entity::{
    authorization_codes, backchannel_deliveries, browser_sessions, one_time_tokens,
    session_revocations, sessions,
};
use sea_orm::sea_query::{Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;

use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::{Gatehouse, Result};

/// Key of the PostgreSQL advisory lock under which a purge is claimed.
const PURGE_LOCK: i64 = 0x6761_7465_7075_7267; // "gatepurg"

/// How many rows a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub one_time_tokens: u64,
    pub sessions: u64,
    pub revocations: u64,
    pub signing_keys: u64,
    pub login_failures: u64,
    pub mail_cooldowns: u64,
    pub authorization_codes: u64,
    pub browser_sessions: u64,
    pub backchannel_deliveries: u64,
    /// Sent mail past `mail.outbox.sent_retention`, dead mail past `dead_retention`.
    pub mail_outbox: u64,
    /// Audit log entries older than `audit.retention`.
    pub audit_events: u64,
}

/// Most audit entries one statement of the purge deletes: the first purge after an
/// upgrade (or after `audit.retention` was shortened) may find years of entries, and one
/// statement deleting them all would hold SQLite's write lock for as long.
const AUDIT_PURGE_BATCH: u64 = 5_000;

/// How long a sent (or given-up) back-channel logout notice is kept.
const FINISHED_DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(7);

impl Gatehouse {
    /// The scheduled purge: runs [`Self::purge_expired`] unless some instance ran it less
    /// than `interval` ago (a tenth of it as slack for timers), and records the run as
    /// `expired_rows_purged` in the audit log. On PostgreSQL the check and the entry that
    /// claims the run are one transaction under an advisory lock (an instance that finds
    /// it taken skips this round), so several instances purge once per interval. SQLite
    /// has one instance: the same check, without a lock. `None` when skipped.
    pub async fn purge_if_due(&self, interval: std::time::Duration) -> Result<Option<PurgeReport>> {
        let claim = self.begin_write().await?;
        let postgres = claim.get_database_backend() == DbBackend::Postgres;
        if postgres {
            let locked = claim
                .query_one_raw(sea_orm::Statement::from_string(
                    DbBackend::Postgres,
                    format!("SELECT pg_try_advisory_xact_lock({PURGE_LOCK}) AS locked"),
                ))
                .await?
                .map(|row| row.try_get::<bool>("", "locked"))
                .transpose()?
                .unwrap_or(false);
            if !locked {
                return Ok(None);
            }
        }
        let now = self.clock.now();
        let gap = chrono::Duration::from_std(interval - interval / 10).unwrap_or_default();
        let last = audit_events::Entity::find()
            .filter(audit_events::Column::Event.eq(AuditEvent::ExpiredRowsPurged.as_str()))
            .order_by_desc(audit_events::Column::OccurredAt)
            .one(&claim)
            .await?;
        if last.is_some_and(|last| last.occurred_at > now - gap) {
            return Ok(None);
        }
        let claim = if postgres {
            Some(claim)
        } else {
            // The purge writes through the writer, which on SQLite is the one connection
            // this transaction holds: let it go first.
            claim.rollback().await?;
            None
        };
        let report = self.purge_expired().await?;
        let entry = AuditEntry {
            event: AuditEvent::ExpiredRowsPurged,
            actor: None,
            subject: None,
            session: None,
            details: Some(json!(report)),
        };
        match claim {
            Some(claim) => {
                audit::record(&claim, now, &RequestMeta::default(), entry).await?;
                claim.commit().await?;
            }
            None => audit::record(&self.writer, now, &RequestMeta::default(), entry).await?,
        }
        Ok(Some(report))
    }

    /// Deletes expired one-time tokens; sessions (with their refresh tokens) that
    /// expired, or were revoked longer ago than any access token of theirs can live;
    /// revocation feed entries whose tokens all expired; unpublished signing keys;
    /// mail cooldowns that are over; authorization codes past use; idle browser sessions; back-channel logout
    /// notices finished a week ago; and audit entries older than `audit.retention`.
    pub async fn purge_expired(&self) -> Result<PurgeReport> {
        let now = self.clock.now();
        let one_time_tokens = one_time_tokens::Entity::delete_many()
            .filter(one_time_tokens::Column::ExpiresAt.lte(now))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let access_ttl =
            chrono::Duration::from_std(self.settings.tokens.access_token_ttl).unwrap_or_default();
        let sessions = sessions::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(sessions::Column::ExpiresAt.lte(now))
                    .add(sessions::Column::RevokedAt.lte(now - access_ttl)),
            )
            .exec(&self.writer)
            .await?
            .rows_affected;
        let revocations = session_revocations::Entity::delete_many()
            .filter(session_revocations::Column::TokensExpireAt.lte(now.timestamp()))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let signing_keys = self.tokens.keys().purge_expired().await?;
        let login_failures = self.purge_login_failures(now).await?;
        let mail_cooldowns = self.purge_mail_cooldowns(now).await?;
        // A used code is kept while its replay could still revoke live access tokens.
        let authorization_codes = authorization_codes::Entity::delete_many()
            .filter(authorization_codes::Column::ExpiresAt.lte(now - access_ttl))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let browser_sessions = browser_sessions::Entity::delete_many()
            .filter(browser_sessions::Column::ExpiresAt.lte(now))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let backchannel_deliveries = backchannel_deliveries::Entity::delete_many()
            .filter(backchannel_deliveries::Column::NextAttemptAt.is_null())
            .filter(
                backchannel_deliveries::Column::CreatedAt.lte(now - FINISHED_DELIVERY_RETENTION),
            )
            .exec(&self.writer)
            .await?
            .rows_affected;
        let mail_outbox = self.purge_mail_outbox(now).await?;
        let audit_events = self.purge_audit_events(now).await?;
        Ok(PurgeReport {
            one_time_tokens,
            sessions,
            revocations,
            signing_keys,
            login_failures,
            mail_cooldowns,
            authorization_codes,
            browser_sessions,
            backchannel_deliveries,
            mail_outbox,
            audit_events,
        })
    }

    /// Deletes the audit entries older than `audit.retention`, oldest first, in
    /// statements of at most [`AUDIT_PURGE_BATCH`] rows, each found through the index
    /// on `occurred_at`. The run's own `expired_rows_purged` entry, which the next run
    /// reads, is written after this and is never older than the retention (which must be
    /// longer than `maintenance.purge_interval`).
    async fn purge_audit_events(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let retention = chrono::Duration::from_std(self.settings.audit.retention)
            .unwrap_or(chrono::Duration::MAX);
        let Some(before) = now.checked_sub_signed(retention) else {
            return Ok(0);
        };
        let mut deleted = 0;
        loop {
            let batch = Query::select()
                .column(audit_events::Column::Id)
                .from(audit_events::Entity)
                .and_where(audit_events::Column::OccurredAt.lte(before))
                .order_by(audit_events::Column::OccurredAt, Order::Asc)
                .limit(AUDIT_PURGE_BATCH)
                .to_owned();
            let rows = audit_events::Entity::delete_many()
                .filter(audit_events::Column::Id.in_subquery(batch))
                .exec(&self.writer)
                .await?
                .rows_affected;
            deleted += rows;
            if rows < AUDIT_PURGE_BATCH {
                return Ok(deleted);
            }
        }
    }
}
