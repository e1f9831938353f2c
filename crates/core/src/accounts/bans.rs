//! Account bans: an admin keeps an account from logging in, for good or until a time,
//! with a reason. Banning ends every session of the account in the same transaction;
//! while the ban holds, a login with the right password is refused with
//! [`Error::AccountBanned`] (a wrong password stays `InvalidCredentials`), and the
//! live-session check refuses any session of the account ([`crate::sessions::live`]). A
//! ban whose end has passed no longer holds: the user logs in again without anyone
//! lifting it.

use chrono::{DateTime, Utc};
use gatehouse_entity::users;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::admin::UserView;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::impersonation::revoke_impersonations_by;
use crate::sessions::live::banned_now;
use crate::sessions::{Principal, RevokeReason, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// Longest ban reason accepted, in characters, once surrounding white space is removed.
const MAX_REASON_LENGTH: usize = 500;

/// A ban as an admin asks for it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// Why, for the admins and the audit log (1 to 500 characters once surrounding white
    /// space is removed). The banned user is not shown it.
    pub reason: String,
    /// When the ban ends (RFC 3339, in the future); absent or `null`: for good.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

/// A ban that holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BanView {
    pub reason: String,
    /// When the ban began (a re-ban while it holds keeps this time).
    pub since: DateTime<Utc>,
    /// When it ends; `null`: for good.
    pub until: Option<DateTime<Utc>>,
}

impl BanView {
    /// The ban of `user` that holds at `now`, if any.
    pub(crate) fn of(user: &users::Model, now: DateTime<Utc>) -> Option<Self> {
        if !banned_now(user, now) {
            return None;
        }
        Some(Self {
            reason: user.ban_reason.clone().unwrap_or_default(),
            since: user.banned_at?,
            until: user.banned_until,
        })
    }
}

fn parse_reason(raw: &str) -> Result<String> {
    let reason = raw.trim();
    if (1..=MAX_REASON_LENGTH).contains(&reason.chars().count()) {
        Ok(reason.to_owned())
    } else {
        Err(Error::invalid(
            "invalid_ban_reason",
            format!("reason: must have 1 to {MAX_REASON_LENGTH} characters"),
        ))
    }
}

impl Gatehouse {
    /// Bans an account, or replaces the reason and end of its ban, and ends every session
    /// of it, in one transaction. Admins cannot ban themselves.
    pub async fn admin_ban_user(
        &self,
        admin: &Principal,
        user_id: Uuid,
        ban: BanRequest,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        admin.require_admin()?;
        if user_id == admin.user_id {
            return Err(Error::Conflict {
                code: "cannot_modify_self",
                message: "admins cannot ban themselves".to_owned(),
            });
        }
        let reason = parse_reason(&ban.reason)?;
        let now = self.clock.now();
        if ban.until.is_some_and(|until| until <= now) {
            return Err(Error::invalid(
                "invalid_ban_until",
                "until: must be in the future",
            ));
        }
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let since = match user.banned_at {
            Some(since) if banned_now(&user, now) => since,
            _ => now,
        };
        let updated = users::ActiveModel {
            id: Set(user.id),
            banned_at: Set(Some(since)),
            banned_until: Set(ban.until),
            ban_reason: Set(Some(reason.clone())),
            updated_at: Set(now),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        let revoked = revoke_user_sessions(&txn, user.id, None, RevokeReason::Banned, now).await?;
        revoke_impersonations_by(&txn, user.id, now).await?;
        let entry = AuditEntry {
            event: AuditEvent::UserBanned,
            actor: Some(admin.user_id),
            subject: Some(user.id),
            session: None,
            details: Some(serde_json::json!({
                "reason": reason,
                "until": ban.until,
                "sessions_revoked": revoked,
            })),
        };
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(UserView::at(updated, now))
    }

    /// Lifts an account's ban (also one whose end has passed); nothing to do, and nothing
    /// audited, when it has none.
    pub async fn admin_unban_user(
        &self,
        admin: &Principal,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        admin.require_admin()?;
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = if user.banned_at.is_none() {
            user
        } else {
            let updated = users::ActiveModel {
                id: Set(user.id),
                banned_at: Set(None),
                banned_until: Set(None),
                ban_reason: Set(None),
                updated_at: Set(now),
                ..Default::default()
            }
            .update(&txn)
            .await?;
            let entry = AuditEntry {
                event: AuditEvent::UserUnbanned,
                actor: Some(admin.user_id),
                subject: Some(user.id),
                session: None,
                details: Some(serde_json::json!({
                    "reason": user.ban_reason,
                    "until": user.banned_until,
                })),
            };
            audit::record(&txn, now, meta, entry).await?;
            updated
        };
        self.commit_revoking(txn).await?;
        Ok(UserView::at(user, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_has_1_to_500_characters_once_trimmed() {
        assert_eq!(parse_reason("  spam  ").unwrap(), "spam");
        assert_eq!(parse_reason(&"é".repeat(500)).unwrap().chars().count(), 500);
        for refused in ["", "   ", &"a".repeat(501)] {
            let Err(Error::InvalidInput { code, .. }) = parse_reason(refused) else {
                panic!("{refused:?} accepted");
            };
            assert_eq!(code, "invalid_ban_reason");
        }
    }
}
