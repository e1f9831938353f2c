//! Login throttling: after too many failed logins for one email address, or from one
//! client IP, within `login_throttle.window`, further attempts get 429 without any
//! password hashing. Counters live in the database, so every instance sees them; they
//! are keyed by the address typed, whether or not it has an account, so the limit tells
//! nothing about which accounts exist, and stored under an HMAC of it (see
//! [`crate::platform::secrets::KeyedHashes`]).

use chrono::{DateTime, Utc};
use gatehouse_entity::login_failures;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, Set,
};

use crate::identity::types::Email;
use crate::platform::audit::RequestMeta;
use crate::{Error, Gatehouse, Result};

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

    /// Refuses the attempt when the address or the IP has used up its failures.
    pub(crate) async fn check_login_throttle(
        &self,
        email: &Email,
        meta: &RequestMeta,
    ) -> Result<()> {
        let settings = &self.settings.login_throttle;
        let since =
            self.clock.now() - chrono::Duration::from_std(settings.window).unwrap_or_default();
        for (key, is_email) in self.throttle_keys(email, meta) {
            let limit = if is_email {
                settings.max_failures_per_email
            } else {
                settings.max_failures_per_ip
            };
            let failures = login_failures::Entity::find()
                .filter(login_failures::Column::KeyHash.eq(key))
                .filter(login_failures::Column::FailedAt.gt(since))
                .count(&self.db)
                .await?;
            if failures >= limit {
                return Err(Error::TooManyAttempts {
                    retry_after: settings.window,
                });
            }
        }
        Ok(())
    }

    /// Counts a failed login against the address and the IP.
    pub(crate) async fn record_login_failure(
        &self,
        conn: &impl ConnectionTrait,
        email: &Email,
        meta: &RequestMeta,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for (key, _) in self.throttle_keys(email, meta) {
            login_failures::ActiveModel {
                id: NotSet,
                key_hash: Set(key),
                failed_at: Set(now),
            }
            .insert(conn)
            .await?;
        }
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
