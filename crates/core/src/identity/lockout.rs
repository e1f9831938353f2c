//! Login throttling: after too many failed logins for one email address, or from one
//! client IP, within `login_throttle.window`, further attempts get 429 without any
//! password hashing. Counters live in the database, so every instance sees them; they
//! are keyed by the address typed, whether or not it has an account, so the limit tells
//! nothing about which accounts exist, and stored under an HMAC of it (see
//! [`crate::platform::secrets::KeyedHashes`]).

use chrono::{DateTime, Utc};
use gatehouse_entity::login_failures;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, Set, TransactionTrait,
};

use crate::identity::types::Email;
use crate::platform::audit::RequestMeta;
use crate::{Error, Gatehouse, Result};

/// The failure rows a login attempt reserved before its password was checked.
#[derive(Debug)]
#[must_use = "a reserved attempt is a failure until it is released"]
pub(crate) struct LoginAttempt {
    rows: Vec<i64>,
}

/// A PostgreSQL advisory lock id for a counter key (its first 60 bits; the keys are
/// HMAC outputs, so they are spread evenly).
fn advisory_lock_id(key: &str) -> i64 {
    i64::from_str_radix(key.get(..15).unwrap_or(key), 16).unwrap_or(0)
}

impl Gatehouse {
    /// The counters a login attempt is checked against, keyed by an HMAC under a key
    /// derived from the master key: a database reader cannot test guessed addresses.
    fn throttle_keys(&self, email: &Email, meta: &RequestMeta) -> Vec<(String, bool)> {
        let mut keys = vec![(self.email_throttle_key(email), true)];
        if let Some(ip) = &meta.ip {
            keys.push((self.keyed.lookup_key("login_ip", ip), false));
        }
        keys
    }

    fn email_throttle_key(&self, email: &Email) -> String {
        self.keyed.lookup_key("login_email", email.as_str())
    }

    /// Counts this attempt as a failure of the address and the IP before any hashing, and
    /// refuses it (counting nothing) when either had used up its failures: the counters
    /// are checked and moved in one transaction that holds each key's lock (SQLite's
    /// write lock, a PostgreSQL advisory lock per key), so attempts sent at once cannot
    /// all pass the check. A login that turns out not to be a failure gives its
    /// reservation back ([`Self::release_login_attempt`]).
    pub(crate) async fn reserve_login_attempt(
        &self,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<LoginAttempt> {
        let settings = &self.settings.login_throttle;
        let now = self.clock.now();
        let since = now - chrono::Duration::from_std(settings.window).unwrap_or_default();
        let mut keys = self.throttle_keys(email, meta);
        keys.sort();
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            for (key, _) in &keys {
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({})",
                    advisory_lock_id(key)
                ))
                .await?;
            }
        }
        let mut rows = Vec::new();
        for (key, is_email) in keys {
            let row = login_failures::ActiveModel {
                id: NotSet,
                key_hash: Set(key.clone()),
                failed_at: Set(now),
            }
            .insert(&txn)
            .await?;
            rows.push(row.id);
            let limit = if is_email {
                settings.max_failures_per_email
            } else {
                settings.max_failures_per_ip
            };
            let failures = login_failures::Entity::find()
                .filter(login_failures::Column::KeyHash.eq(key))
                .filter(login_failures::Column::FailedAt.gt(since))
                .count(&txn)
                .await?;
            if failures > limit {
                txn.rollback().await?;
                return Err(Error::TooManyAttempts {
                    retry_after: settings.window,
                });
            }
        }
        txn.commit().await?;
        Ok(LoginAttempt { rows })
    }

    /// Takes back the failures an attempt reserved: it was no failed login after all.
    pub(crate) async fn release_login_attempt(
        &self,
        conn: &impl ConnectionTrait,
        attempt: LoginAttempt,
    ) -> Result<()> {
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::Id.is_in(attempt.rows))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// A successful login clears the address's failures (not the IP's).
    pub(crate) async fn clear_login_failures(
        &self,
        conn: &impl ConnectionTrait,
        email: &Email,
    ) -> Result<()> {
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::KeyHash.eq(self.email_throttle_key(email)))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Deletes failures older than the window.
    pub(crate) async fn purge_login_failures(&self, now: DateTime<Utc>) -> Result<u64> {
        let since = now
            - chrono::Duration::from_std(self.settings.login_throttle.window).unwrap_or_default();
        Ok(login_failures::Entity::delete_many()
            .filter(login_failures::Column::FailedAt.lte(since))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
