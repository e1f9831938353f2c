//! OpenID Connect Back-Channel Logout 1.0: when an app session ends, for whatever reason,
//! its client is sent a signed logout token, if it registered a `backchannel_logout_uri`.
//!
//! Ending the session queues the notice in the same transaction (an outbox), so none is
//! lost to a crash. Every instance sends due notices every `backchannel_logout.poll_interval`;
//! a notice is claimed by moving its next attempt forward first, so two instances never
//! send one notice at once. Failures are retried with a doubling wait until
//! `backchannel_logout.max_attempts`; the outcome goes to the audit log.

use chrono::{DateTime, Utc};
use gatehouse_entity::{backchannel_deliveries, clients, sessions};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::{Error, Gatehouse, Result};

/// The `typ` header of logout tokens.
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// The event member every logout token carries.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Notices sent per round, per instance.
const BATCH: u64 = 50;

/// How long a logout token is valid.
const LOGOUT_TOKEN_TTL_SECONDS: i64 = 120;

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sid: String,
    events: serde_json::Value,
}

/// Queues a logout notice for the client of an app session that just ended, if the
/// client asked for them.
pub(crate) async fn enqueue(
    conn: &impl ConnectionTrait,
    session: &sessions::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(client_id) = &session.client_id else {
        return Ok(());
    };
    let wants_notice = clients::Entity::find_by_id(client_id.as_str())
        .one(conn)
        .await?
        .is_some_and(|c| c.backchannel_logout_uri.is_some());
    if wants_notice {
        backchannel_deliveries::ActiveModel {
            id: Set(Uuid::now_v7()),
            client_id: Set(client_id.clone()),
            session_id: Set(session.id),
            user_id: Set(session.user_id),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(Some(now)),
            delivered_at: Set(None),
            failed_at: Set(None),
            last_error: Set(None),
        }
        .insert(conn)
        .await?;
    }
    Ok(())
}

/// Sends back-channel logout notices; one per process, run by a background task.
pub struct BackchannelSender {
    gatehouse: Gatehouse,
    http: reqwest::Client,
}

impl BackchannelSender {
    pub fn new(gatehouse: Gatehouse) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(gatehouse.settings.backchannel_logout.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::internal)?;
        Ok(Self { gatehouse, http })
    }

    /// Sends every notice that is due; returns how many were delivered.
    pub async fn send_due(&self) -> Result<usize> {
        let g = &self.gatehouse;
        let now = g.clock.now();
        let due = backchannel_deliveries::Entity::find()
            .filter(backchannel_deliveries::Column::NextAttemptAt.lte(now))
            .order_by_asc(backchannel_deliveries::Column::NextAttemptAt)
            .limit(BATCH)
            .all(&g.db)
            .await?;
        let mut delivered = 0;
        for notice in due {
            if self.claim(&notice, now).await? && self.deliver(notice, now).await? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Moves the next attempt past this one's timeout; false if another instance did first.
    async fn claim(
        &self,
        notice: &backchannel_deliveries::Model,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let settings = &self.gatehouse.settings.backchannel_logout;
        let lease = chrono::Duration::from_std(settings.timeout * 2).unwrap_or_default();
        let claimed = backchannel_deliveries::Entity::update_many()
            .col_expr(
                backchannel_deliveries::Column::NextAttemptAt,
                Expr::value(now + lease),
            )
            .filter(backchannel_deliveries::Column::Id.eq(notice.id))
            .filter(backchannel_deliveries::Column::NextAttemptAt.eq(notice.next_attempt_at))
            .exec(&self.gatehouse.writer)
            .await?
            .rows_affected;
        Ok(claimed == 1)
    }

    async fn deliver(
        &self,
        notice: backchannel_deliveries::Model,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let g = &self.gatehouse;
        let settings = &g.settings.backchannel_logout;
        let client = clients::Entity::find_by_id(notice.client_id.as_str())
            .one(&g.db)
            .await?;
        let Some(uri) = client.and_then(|c| c.backchannel_logout_uri) else {
            // The client was changed since: nobody to tell.
            backchannel_deliveries::Entity::delete_by_id(notice.id)
                .exec(&g.writer)
                .await?;
            return Ok(false);
        };
        let outcome = match self.logout_token(&notice, now).await {
            Ok(token) => self.post(&uri, &token).await,
            Err(e) => Err(e.to_string()),
        };
        let attempts = notice.attempts + 1;
        let mut update = backchannel_deliveries::ActiveModel {
            id: Set(notice.id),
            attempts: Set(attempts),
            ..Default::default()
        };
        let audit_entry = match &outcome {
            Ok(()) => {
                update.next_attempt_at = Set(None);
                update.delivered_at = Set(Some(now));
                update.last_error = Set(None);
                Some(AuditEvent::BackchannelLogoutDelivered)
            }
            Err(error) => {
                tracing::warn!(client_id = %notice.client_id, attempts, %error, "back-channel logout delivery failed");
                update.last_error = Set(Some(error.chars().take(500).collect()));
                if attempts >= i32::try_from(settings.max_attempts).unwrap_or(i32::MAX) {
                    update.next_attempt_at = Set(None);
                    update.failed_at = Set(Some(now));
                    Some(AuditEvent::BackchannelLogoutFailed)
                } else {
                    let factor = 2u32.saturating_pow(u32::try_from(attempts - 1).unwrap_or(0));
                    let wait = settings.first_retry_after.saturating_mul(factor);
                    update.next_attempt_at = Set(Some(
                        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
                    ));
                    None
                }
            }
        };
        update.update(&g.writer).await?;
        if let Some(event) = audit_entry {
            let entry = AuditEntry {
                event,
                actor: None,
                subject: Some(notice.user_id),
                session: Some(notice.session_id),
                details: Some(json!({
                    "client_id": notice.client_id,
                    "attempts": attempts,
                    "error": outcome.as_ref().err(),
                })),
            };
            audit::record(&g.writer, now, &RequestMeta::default(), entry).await?;
        }
        Ok(outcome.is_ok())
    }

    async fn logout_token(
        &self,
        notice: &backchannel_deliveries::Model,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let g = &self.gatehouse;
        let claims = LogoutClaims {
            iss: &g.settings.issuer,
            sub: notice.user_id.to_string(),
            aud: &notice.client_id,
            iat: now.timestamp(),
            exp: now.timestamp() + LOGOUT_TOKEN_TTL_SECONDS,
            jti: Uuid::new_v4().to_string(),
            sid: notice.session_id.to_string(),
            events: json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        };
        g.tokens.keys().sign(LOGOUT_TOKEN_TYPE, &claims).await
    }

    async fn post(&self, uri: &str, token: &str) -> std::result::Result<(), String> {
        let response = self
            .http
            .post(uri)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|e| format!("request failed: {}", without_url(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", status.as_u16()))
        }
    }
}

/// A reqwest error's text without the URL (a client's URL is not a secret, but it is
/// noise in the audit log, which names the client already).
fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "transport error".to_owned()
    }
}
