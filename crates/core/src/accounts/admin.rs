//! What administrators do: find and change accounts, end sessions, read the audit log.
//! Every method checks that the caller is an admin, whatever the HTTP layer did.

use chrono::{DateTime, Utc};
use gatehouse_entity::{audit_events, sessions, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::bans::BanView;
use crate::identity::lockout::LockView;
use crate::identity::types::{Email, Role};
use crate::platform::audit::{self, AuditEntry, AuditEvent, AuditRecord, RequestMeta};
use crate::sessions::impersonation::revoke_impersonations_by;
use crate::sessions::{Principal, RevokeReason, SessionView, revoke_session, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// Page size when none is asked for.
const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size served.
const MAX_PAGE_SIZE: u64 = 200;

/// An account as an admin sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub role: Role,
    pub disabled: bool,
    /// The ban that holds now; `null` when there is none or its end has passed.
    pub banned: Option<BanView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    /// The account as it stands at `now` (a ban whose end passed is no longer shown).
    pub(crate) fn at(u: users::Model, now: DateTime<Utc>) -> Self {
        let banned = BanView::of(&u, now);
        Self {
            id: u.id,
            email: u.email,
            email_verified: u.email_verified_at.is_some(),
            name: u.name,
            role: Role::from_stored(&u.role),
            disabled: u.disabled_at.is_some(),
            banned,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One account as an admin sees it, with its login lock (`null` unless locked now).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    pub lock: Option<LockView>,
}

/// Filters of the user list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Accounts whose address starts with this text, after the address normalisation
    /// (surrounding white space removed, ASCII letters lower-cased; a whole address with
    /// an internationalised domain is turned into its `xn--` form): `ann` finds
    /// `ann@example.com` and `anna@example.org`, not `joann@example.com`; a whole address
    /// finds that account (and any longer address it begins). Every character is itself:
    /// there are no wildcards. Indexed (a range on the unique index of the address).
    pub email: Option<String>,
    pub limit: Option<u64>,
    pub cursor: Option<Uuid>,
}

/// One page of users, oldest first; pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserView>,
    pub next_cursor: Option<Uuid>,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Filters of the audit log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events about this user (as subject) or by this user (as actor).
    pub user_id: Option<Uuid>,
    pub event: Option<String>,
    pub limit: Option<u64>,
    pub cursor: Option<i64>,
}

/// One page of audit events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next_cursor: Option<i64>,
}

/// What an `email` filter searches for, in the normalised form stored addresses have.
#[derive(Debug, PartialEq, Eq)]
enum EmailFilter {
    /// No filter (absent or only white space).
    Any,
    /// Addresses starting with this (non-empty, printable ASCII).
    Prefix(String),
    /// Text no stored address can start with (a character no address has).
    Nothing,
}

impl EmailFilter {
    fn parse(raw: Option<&str>) -> Self {
        let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
            return Self::Any;
        };
        let prefix = match Email::parse(text) {
            Ok(email) => email.as_str().to_owned(),
            Err(_) => text.to_ascii_lowercase(),
        };
        // Stored addresses are printable ASCII only (see `Email`).
        if prefix.bytes().all(|b| b.is_ascii_graphic()) {
            Self::Prefix(prefix)
        } else {
            Self::Nothing
        }
    }
}

/// The least text above every text that starts with `prefix` (printable ASCII, not
/// empty): the prefix with its last character raised by one. Byte order and code point
/// order agree on UTF-8, so `prefix <= email < bound` holds exactly for the addresses
/// starting with `prefix` under a byte-order collation (SQLite's `BINARY`, PostgreSQL's
/// `C`, which the column has since the migration `users_email_byte_order`).
fn prefix_upper_bound(prefix: &str) -> String {
    let (head, last) = prefix.split_at(prefix.len() - 1);
    let last = last.as_bytes()[0];
    format!("{head}{}", char::from(last + 1))
}

impl UserQuery {
    /// The statement this query runs, without its page limit; `None` when it can match
    /// no account. The `email` filter is a range on the unique index of `users.email`
    /// (`email >= prefix AND email < bound`), which SQLite and PostgreSQL both answer
    /// from the index, where `LIKE 'prefix%'` would need collation conditions SQLite's
    /// planner does not see met (and a `LIKE '%text%'` is a scan of every row).
    pub fn select(&self) -> Option<Select<users::Entity>> {
        let mut select = users::Entity::find().order_by_asc(users::Column::Id);
        match EmailFilter::parse(self.email.as_deref()) {
            EmailFilter::Any => {}
            EmailFilter::Nothing => return None,
            EmailFilter::Prefix(prefix) => {
                let bound = prefix_upper_bound(&prefix);
                select = select
                    .filter(users::Column::Email.gte(prefix))
                    .filter(users::Column::Email.lt(bound));
            }
        }
        if let Some(cursor) = self.cursor {
            select = select.filter(users::Column::Id.gt(cursor));
        }
        Some(select)
    }
}

pub(crate) fn page_size(limit: Option<u64>) -> Result<u64> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(
            "invalid_request",
            format!("limit: must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

impl Gatehouse {
    /// Lists accounts, oldest first, by pages.
    pub async fn admin_list_users(&self, admin: &Principal, query: UserQuery) -> Result<UserPage> {
        admin.require_admin()?;
        let limit = page_size(query.limit)?;
        let Some(select) = query.select() else {
            return Ok(UserPage {
                users: Vec::new(),
                next_cursor: None,
            });
        };
        let mut rows = select.limit(limit + 1).all(&self.db).await?;
        let next_cursor = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|u| u.id)
        } else {
            None
        };
        let now = self.clock.now();
        Ok(UserPage {
            users: rows.into_iter().map(|u| UserView::at(u, now)).collect(),
            next_cursor,
        })
    }

    /// One account.
    pub async fn admin_get_user(&self, admin: &Principal, user_id: Uuid) -> Result<UserDetail> {
        admin.require_admin()?;
        let user = self.find_user(user_id).await?;
        let lock = self.login_lock(&self.db, &user.email).await?;
        Ok(UserDetail {
            user: UserView::at(user, self.clock.now()),
            lock,
        })
    }

    /// Ends the login lock of an account now (and forgets its failed logins); recorded
    /// in the audit log whether or not it was locked.
    pub async fn admin_clear_login_lock(
        &self,
        admin: &Principal,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        admin.require_admin()?;
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let was_locked = self.end_login_lock(&txn, &user.email, now).await?;
        let entry = AuditEntry {
            event: AuditEvent::LoginLockCleared,
            actor: Some(admin.user_id),
            subject: Some(user.id),
            session: None,
            details: Some(serde_json::json!({ "was_locked": was_locked })),
        };
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Changes role or disabled state. Disabling ends every session of the account.
    /// Admins cannot demote or disable themselves, so the last admin cannot lock everyone out.
    pub async fn admin_update_user(
        &self,
        admin: &Principal,
        user_id: Uuid,
        patch: UserPatch,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        admin.require_admin()?;
        if user_id == admin.user_id
            && (patch.role == Some(Role::User) || patch.disabled == Some(true))
        {
            return Err(Error::Conflict {
                code: "cannot_modify_self",
                message: "admins cannot remove their own admin role or disable themselves"
                    .to_owned(),
            });
        }
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let mut change = users::ActiveModel {
            id: Set(user.id),
            ..Default::default()
        };
        let mut events = Vec::new();
        if let Some(role) = patch.role
            && role.as_str() != user.role
        {
            change.role = Set(role.as_str().to_owned());
            events.push(AuditEntry {
                event: AuditEvent::RoleChanged,
                actor: Some(admin.user_id),
                subject: Some(user.id),
                session: None,
                details: Some(serde_json::json!({ "from": user.role, "to": role.as_str() })),
            });
        }
        if let Some(disabled) = patch.disabled
            && disabled != user.disabled_at.is_some()
        {
            change.disabled_at = Set(disabled.then_some(now));
            let mut details = serde_json::json!({});
            if disabled {
                let revoked =
                    revoke_user_sessions(&txn, user.id, None, RevokeReason::AccountDisabled, now)
                        .await?;
                details = serde_json::json!({ "sessions_revoked": revoked });
            }
            events.push(AuditEntry {
                event: if disabled {
                    AuditEvent::UserDisabled
                } else {
                    AuditEvent::UserEnabled
                },
                actor: Some(admin.user_id),
                subject: Some(user.id),
                session: None,
                details: Some(details),
            });
        }
        let lost_rights = patch.role == Some(Role::User) || patch.disabled == Some(true);
        if lost_rights {
            revoke_impersonations_by(&txn, user.id, now).await?;
        }
        let user = if events.is_empty() {
            user
        } else {
            change.updated_at = Set(now);
            let updated = change.update(&txn).await?;
            for entry in events {
                audit::record(&txn, now, meta, entry).await?;
            }
            updated
        };
        self.commit_revoking(txn).await?;
        Ok(UserView::at(user, now))
    }

    /// The live sessions of an account.
    pub async fn admin_user_sessions(
        &self,
        admin: &Principal,
        user_id: Uuid,
    ) -> Result<Vec<SessionView>> {
        admin.require_admin()?;
        self.find_user(user_id).await?;
        self.live_sessions(user_id, Some(admin.session_id)).await
    }

    /// Ends one session of any account.
    pub async fn admin_revoke_session(
        &self,
        admin: &Principal,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        admin.require_admin()?;
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        let session = sessions::Entity::find_by_id(session_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("session"))?;
        if revoke_session(&txn, session.id, RevokeReason::RevokedByAdmin, now).await? {
            let entry = AuditEntry {
                event: AuditEvent::SessionRevoked,
                actor: Some(admin.user_id),
                subject: Some(session.user_id),
                session: Some(session.id),
                details: None,
            };
            audit::record(&txn, now, meta, entry).await?;
        }
        self.commit_revoking(txn).await?;
        Ok(())
    }

    /// Ends every session of an account; returns how many were live.
    pub async fn admin_revoke_user_sessions(
        &self,
        admin: &Principal,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<u64> {
        admin.require_admin()?;
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        self.require_admin_now(&txn, admin).await?;
        users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let revoked =
            revoke_user_sessions(&txn, user_id, None, RevokeReason::RevokedByAdmin, now).await?;
        let entry = AuditEntry {
            event: AuditEvent::SessionRevoked,
            actor: Some(admin.user_id),
            subject: Some(user_id),
            session: None,
            details: Some(serde_json::json!({ "sessions_revoked": revoked })),
        };
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(revoked)
    }

    /// Reads the audit log, newest first, by pages.
    pub async fn admin_audit(&self, admin: &Principal, query: AuditQuery) -> Result<AuditPage> {
        admin.require_admin()?;
        let limit = page_size(query.limit)?;
        let mut select = audit_events::Entity::find().order_by_desc(audit_events::Column::Id);
        if let Some(user_id) = query.user_id {
            select = select.filter(
                Condition::any()
                    .add(audit_events::Column::SubjectUserId.eq(user_id))
                    .add(audit_events::Column::ActorUserId.eq(user_id)),
            );
        }
        if let Some(event) = query.event.as_deref().filter(|e| !e.is_empty()) {
            select = select.filter(audit_events::Column::Event.eq(event));
        }
        if let Some(cursor) = query.cursor {
            select = select.filter(audit_events::Column::Id.lt(cursor));
        }
        let mut rows = select.limit(limit + 1).all(&self.db).await?;
        let next_cursor = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.into_iter().map(AuditRecord::from).collect(),
            next_cursor,
        })
    }

    async fn find_user(&self, user_id: Uuid) -> Result<users::Model> {
        users::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("user"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, QueryTrait};

    #[test]
    fn the_email_filter_is_the_normalised_prefix() {
        let parse = |raw: &str| EmailFilter::parse(Some(raw));
        let prefix = |p: &str| EmailFilter::Prefix(p.to_owned());
        assert_eq!(EmailFilter::parse(None), EmailFilter::Any);
        assert_eq!(parse("  "), EmailFilter::Any);
        assert_eq!(parse(" Ann "), prefix("ann"));
        assert_eq!(parse("YC@"), prefix("yc@"));
        assert_eq!(parse("a_b%c"), prefix("a_b%c"));
        assert_eq!(
            parse("Ann@BÜCHER.example"),
            prefix("ann@xn--bcher-kva.example")
        );
        assert_eq!(parse("bücher"), EmailFilter::Nothing);
        assert_eq!(parse("a b"), EmailFilter::Nothing);
        assert_eq!(parse("a\u{0}"), EmailFilter::Nothing);
    }

    #[test]
    fn the_upper_bound_ends_the_prefix_range() {
        assert_eq!(prefix_upper_bound("ann"), "ano");
        assert_eq!(prefix_upper_bound("a@"), "aA");
        assert_eq!(prefix_upper_bound("~"), "\u{7f}");
        for (prefix, inside, outside) in [
            ("ann", "ann@example.com", "ano"),
            ("ann", "ann", "an"),
            ("a~", "a~~~", "a\u{7f}"),
        ] {
            let bound = prefix_upper_bound(prefix);
            assert!(
                prefix <= inside && inside < bound.as_str(),
                "{prefix} {inside}"
            );
            assert!(
                !(prefix <= outside && outside < bound.as_str()),
                "{prefix} {outside}"
            );
        }
    }

    #[test]
    fn the_email_filter_is_a_range_not_a_like() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let query = UserQuery {
                email: Some("Ann".to_owned()),
                ..Default::default()
            };
            let sql = query.select().unwrap().build(backend).to_string();
            assert!(
                sql.contains(r#""email" >= 'ann' AND "users"."email" < 'ano'"#),
                "{sql}"
            );
            assert!(!sql.contains("LIKE"), "{sql}");
        }
        let nothing = UserQuery {
            email: Some("bücher".to_owned()),
            ..Default::default()
        };
        assert!(nothing.select().is_none());
    }
}
