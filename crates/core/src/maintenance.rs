//! Periodic clean-up of rows nobody can use any more. Every statement is an idempotent
//! `DELETE ... WHERE expired`, so any number of instances may run it at once.

use gatehouse_entity::{
    authorization_codes, backchannel_deliveries, browser_sessions, one_time_tokens,
    session_revocations, sessions,
};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::{Gatehouse, Result};

/// How many rows a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// How long a sent (or given-up) back-channel logout notice is kept.
const FINISHED_DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(7);

impl Gatehouse {
    /// Deletes expired one-time tokens; sessions (with their refresh tokens) that
    /// expired, or were revoked longer ago than any access token of theirs can live;
    /// revocation feed entries whose tokens all expired; unpublished signing keys;
    /// mail cooldowns that are over; authorization codes past use; idle browser sessions; and back-channel logout
    /// notices finished a week ago.
    pub async fn purge_expired(&self) -> Result<PurgeReport> {
        let now = self.clock.now();
        let one_time_tokens = one_time_tokens::Entity::delete_many()
            .filter(one_time_tokens::Column::ExpiresAt.lte(now))
            .exec(&self.db)
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
            .exec(&self.db)
            .await?
            .rows_affected;
        let revocations = session_revocations::Entity::delete_many()
            .filter(session_revocations::Column::TokensExpireAt.lte(now.timestamp()))
            .exec(&self.db)
            .await?
            .rows_affected;
        let signing_keys = self.tokens.keys().purge_expired().await?;
        let login_failures = self.purge_login_failures(now).await?;
        let mail_cooldowns = self.purge_mail_cooldowns(now).await?;
        // A used code is kept while its replay could still revoke live access tokens.
        let authorization_codes = authorization_codes::Entity::delete_many()
            .filter(authorization_codes::Column::ExpiresAt.lte(now - access_ttl))
            .exec(&self.db)
            .await?
            .rows_affected;
        let browser_sessions = browser_sessions::Entity::delete_many()
            .filter(browser_sessions::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected;
        let backchannel_deliveries = backchannel_deliveries::Entity::delete_many()
            .filter(backchannel_deliveries::Column::NextAttemptAt.is_null())
            .filter(
                backchannel_deliveries::Column::CreatedAt.lte(now - FINISHED_DELIVERY_RETENTION),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
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
        })
    }
}
