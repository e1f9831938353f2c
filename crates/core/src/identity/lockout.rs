//! The lockout that cannot be turned against the owner (OWASP's device-cookie approach).
//!
//! Every failed login is counted under one key: a client that presents a trusted device
//! token of the account (see [`crate::identity::device_tokens`]) under the key of that
//! device, every other client under the key of the address typed (account or not, so the
//! answers tell nothing about which accounts exist). Per key, after
//! `lockout.slow_down_after` failures within `lockout.window` each further attempt must
//! wait `lockout.slow_down_delay` after the last failure, doubling each time; an address
//! with `lockout.max_failures` failures is locked for `lockout.lock_duration` for every
//! client without a trusted device token, and its owner is mailed once per lock; a device
//! with `lockout.device_max_failures` failures is no longer trusted and counts as a
//! stranger from then on. A stranger can thus lock strangers out, never the owner on a
//! device they logged in with before. (The notice mail is sent by the login, in
//! [`crate::sessions::login`]: identity does not depend on mail.)
//!
//! A failure is counted before any hashing, in one transaction that holds the key's lock
//! (SQLite's write lock, a PostgreSQL advisory lock per key), and given back if the login
//! turns out not to be one: attempts sent at once cannot all pass a limit. The keys are
//! HMACs under a key derived from the master key ([`crate::platform::secrets::KeyedHashes`]).

use chrono::{DateTime, Utc};
use gatehouse_entity::{login_devices, login_failures, login_lockouts, users};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    NotSet, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use uuid::Uuid;

use crate::identity::types::Email;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::{Error, Gatehouse, Result};

/// Whose failures a login attempt counts as.
#[derive(Debug)]
pub(crate) enum Judged {
    /// A trusted device of the account: its own failures only.
    Device(login_devices::Model),
    /// Any other client: the address's failures, and its lock.
    Address,
}

/// The failure a login attempt reserved before its password was checked.
#[derive(Debug)]
#[must_use = "a reserved attempt is a failure until it is released or recorded"]
pub(crate) struct LoginAttempt {
    row: i64,
    key: String,
    pub(crate) judged: Judged,
}

/// An address's lock, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LockView {
    pub locked_at: DateTime<Utc>,
    pub locked_until: DateTime<Utc>,
    /// The failed logins that caused it.
    pub failures: i32,
}

/// What reserving a failure under a key came to.
enum Reserved {
    Yes(i64),
    /// The key had used up its failures.
    UsedUp,
}

/// A PostgreSQL advisory lock id for a counter key (its first 60 bits; the keys are
/// HMAC outputs, so they are spread evenly).
fn advisory_lock_id(key: &str) -> i64 {
    i64::from_str_radix(key.get(..15).unwrap_or(key), 16).unwrap_or(0)
}

async fn lock_key(txn: &DatabaseTransaction, key: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({})",
            advisory_lock_id(key)
        ))
        .await?;
    }
    Ok(())
}

fn to_chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The wait until `later` in whole seconds (the unit of `Retry-After`), rounded up and
/// at least one: waiting that long is always enough, whatever precision the database
/// stored `later` with (PostgreSQL keeps microseconds).
fn wait_until(now: DateTime<Utc>, later: DateTime<Utc>) -> std::time::Duration {
    let wait = (later - now).to_std().unwrap_or_default();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    std::time::Duration::from_secs(seconds.max(1))
}

impl Gatehouse {
    /// The key of the failures and the lock of a (normalised) address.
    fn address_key(&self, address: &str) -> String {
        self.keyed.lookup_key("login_email", address)
    }

    /// The key of a device's own failures.
    fn device_key(&self, device_id: Uuid) -> String {
        self.keyed
            .lookup_key("login_device", &device_id.simple().to_string())
    }

    /// Counts this attempt as a failure before any hashing, or refuses it (counting
    /// nothing): a trusted `device` is judged by its own failures (and distrusted once
    /// it has used them up), any other client by the address's failures and lock.
    pub(crate) async fn reserve_login_attempt(
        &self,
        email: &Email,
        device: Option<login_devices::Model>,
    ) -> Result<LoginAttempt> {
        let settings = &self.settings.lockout;
        let now = self.clock.now();
        if let Some(device) = device {
            let key = self.device_key(device.id);
            match self
                .reserve_failure(&key, settings.device_max_failures, false, now)
                .await?
            {
                Reserved::Yes(row) => {
                    return Ok(LoginAttempt {
                        row,
                        key,
                        judged: Judged::Device(device),
                    });
                }
                Reserved::UsedUp => self.distrust_device(&self.writer, device.id, now).await?,
            }
        }
        let key = self.address_key(email.as_str());
        match self
            .reserve_failure(&key, settings.max_failures, true, now)
            .await?
        {
            Reserved::Yes(row) => Ok(LoginAttempt {
                row,
                key,
                judged: Judged::Address,
            }),
            // Attempts in flight hold the remaining failures; the lock follows.
            Reserved::UsedUp => Err(Error::TooManyAttempts {
                retry_after: settings.lock_duration,
            }),
        }
    }

    /// Reserves one failure under `key` unless it has `limit` already, it is locked
    /// (`check_lock`), or its slow-down asks the client to wait.
    async fn reserve_failure(
        &self,
        key: &str,
        limit: u64,
        check_lock: bool,
        now: DateTime<Utc>,
    ) -> Result<Reserved> {
        let settings = &self.settings.lockout;
        let txn = self.begin_write().await?;
        lock_key(&txn, key).await?;
        // Written first: on SQLite this takes the write lock before anything is read.
        let row = login_failures::ActiveModel {
            id: NotSet,
            key_hash: Set(key.to_owned()),
            failed_at: Set(now),
        }
        .insert(&txn)
        .await?;
        if check_lock
            && let Some(lock) = login_lockouts::Entity::find_by_id(key).one(&txn).await?
            && lock.locked_until > now
        {
            txn.rollback().await?;
            return Err(Error::TooManyAttempts {
                retry_after: wait_until(now, lock.locked_until),
            });
        }
        let since = now - to_chrono(settings.window);
        let failures = login_failures::Entity::find()
            .filter(login_failures::Column::KeyHash.eq(key))
            .filter(login_failures::Column::FailedAt.gt(since))
            .count(&txn)
            .await?;
        if failures > limit {
            txn.rollback().await?;
            return Ok(Reserved::UsedUp);
        }
        let earlier = failures.saturating_sub(1);
        if earlier >= settings.slow_down_after {
            let doublings = u32::try_from(earlier - settings.slow_down_after)
                .unwrap_or(u32::MAX)
                .min(30);
            let wait = settings
                .slow_down_delay
                .saturating_mul(1 << doublings)
                .min(settings.lock_duration);
            let last = login_failures::Entity::find()
                .filter(login_failures::Column::KeyHash.eq(key))
                .filter(login_failures::Column::Id.ne(row.id))
                .order_by_desc(login_failures::Column::FailedAt)
                .one(&txn)
                .await?;
            if let Some(last) = last
                && now < last.failed_at + to_chrono(wait)
            {
                txn.rollback().await?;
                return Err(Error::TooManyAttempts {
                    retry_after: wait_until(now, last.failed_at + to_chrono(wait)),
                });
            }
        }
        txn.commit().await?;
        Ok(Reserved::Yes(row.id))
    }

    /// Takes back the failure an attempt reserved: it was no failed login after all.
    pub(crate) async fn release_login_attempt(
        &self,
        conn: &impl ConnectionTrait,
        attempt: &LoginAttempt,
    ) -> Result<()> {
        login_failures::Entity::delete_by_id(attempt.row)
            .exec(conn)
            .await?;
        Ok(())
    }

    /// A successful login clears the failures of the key it was judged by.
    pub(crate) async fn clear_login_failures(
        &self,
        conn: &impl ConnectionTrait,
        attempt: &LoginAttempt,
    ) -> Result<()> {
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::KeyHash.eq(&attempt.key))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// A wrong password, in the caller's transaction: the audit entry, and the lock if
    /// this failure completes the address's count. The lock starts once (a conditional
    /// write: of concurrent failures one wins); `Some(failures)` tells the one that
    /// started it, which queues the owner's notice in the same transaction.
    pub(crate) async fn record_login_failure(
        &self,
        txn: &DatabaseTransaction,
        attempt: LoginAttempt,
        user: Option<&users::Model>,
        meta: &RequestMeta,
    ) -> Result<Option<u64>> {
        let settings = &self.settings.lockout;
        let now = self.clock.now();
        let subject = user.map(|u| u.id);
        lock_key(txn, &attempt.key).await?;
        let entry = AuditEntry {
            event: AuditEvent::LoginFailed,
            actor: subject,
            subject,
            session: None,
            details: Some(serde_json::json!({
                "reason": "invalid_credentials",
                "device_trusted": matches!(attempt.judged, Judged::Device(_)),
            })),
        };
        audit::record(txn, now, meta, entry).await?;
        let mut started = None;
        if matches!(attempt.judged, Judged::Address) {
            let since = now - to_chrono(settings.window);
            let failures = login_failures::Entity::find()
                .filter(login_failures::Column::KeyHash.eq(&attempt.key))
                .filter(login_failures::Column::FailedAt.gt(since))
                .count(txn)
                .await?;
            if failures >= settings.max_failures
                && self.start_lock(txn, &attempt.key, failures, now).await?
            {
                login_failures::Entity::delete_many()
                    .filter(login_failures::Column::KeyHash.eq(&attempt.key))
                    .exec(txn)
                    .await?;
                let entry = AuditEntry {
                    event: AuditEvent::LoginLocked,
                    actor: None,
                    subject,
                    session: None,
                    details: Some(serde_json::json!({
                        "failures": failures,
                        "locked_for_seconds": settings.lock_duration.as_secs(),
                    })),
                };
                audit::record(txn, now, meta, entry).await?;
                started = Some(failures);
            }
        }
        Ok(started)
    }

    /// Locks `key` from now for `lockout.lock_duration` unless it is locked already;
    /// `true` if this call started the lock.
    async fn start_lock(
        &self,
        txn: &DatabaseTransaction,
        key: &str,
        failures: u64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let locked_until = now + to_chrono(self.settings.lockout.lock_duration);
        let failures = i32::try_from(failures).unwrap_or(i32::MAX);
        let renewed = login_lockouts::Entity::update_many()
            .col_expr(login_lockouts::Column::LockedAt, Expr::value(now))
            .col_expr(
                login_lockouts::Column::LockedUntil,
                Expr::value(locked_until),
            )
            .col_expr(login_lockouts::Column::Failures, Expr::value(failures))
            .filter(login_lockouts::Column::KeyHash.eq(key))
            .filter(login_lockouts::Column::LockedUntil.lte(now))
            .exec(txn)
            .await?
            .rows_affected;
        if renewed == 1 {
            return Ok(true);
        }
        let inserted = login_lockouts::Entity::insert(login_lockouts::ActiveModel {
            key_hash: Set(key.to_owned()),
            locked_at: Set(now),
            locked_until: Set(locked_until),
            failures: Set(failures),
        })
        .on_conflict(
            OnConflict::column(login_lockouts::Column::KeyHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        Ok(inserted == 1)
    }

    /// Ends the lock of an address now and forgets its failures (a password reset, an
    /// admin); `true` if it was locked.
    pub(crate) async fn end_login_lock(
        &self,
        conn: &impl ConnectionTrait,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let key = self.address_key(address);
        let ended = login_lockouts::Entity::update_many()
            .col_expr(login_lockouts::Column::LockedUntil, Expr::value(now))
            .filter(login_lockouts::Column::KeyHash.eq(&key))
            .filter(login_lockouts::Column::LockedUntil.gt(now))
            .exec(conn)
            .await?
            .rows_affected;
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::KeyHash.eq(&key))
            .exec(conn)
            .await?;
        Ok(ended > 0)
    }

    /// The lock of a (normalised) address, if it is locked now.
    pub(crate) async fn login_lock(
        &self,
        conn: &impl ConnectionTrait,
        address: &str,
    ) -> Result<Option<LockView>> {
        let now = self.clock.now();
        Ok(
            login_lockouts::Entity::find_by_id(self.address_key(address))
                .filter(login_lockouts::Column::LockedUntil.gt(now))
                .one(conn)
                .await?
                .map(|lock| LockView {
                    locked_at: lock.locked_at,
                    locked_until: lock.locked_until,
                    failures: lock.failures,
                }),
        )
    }

    /// Deletes failures older than the window, locks that are over and expired device
    /// tokens (counted together as `login_failures` in the purge report).
    pub(crate) async fn purge_login_failures(&self, now: DateTime<Utc>) -> Result<u64> {
        let since = now - to_chrono(self.settings.lockout.window);
        let failures = login_failures::Entity::delete_many()
            .filter(login_failures::Column::FailedAt.lte(since))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let locks = login_lockouts::Entity::delete_many()
            .filter(login_lockouts::Column::LockedUntil.lte(now))
            .exec(&self.writer)
            .await?
            .rows_affected;
        let devices = self.purge_login_devices(now).await?;
        Ok(failures + locks + devices)
    }
}
