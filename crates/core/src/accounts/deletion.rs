//! Deleting one's own account, in one transaction:
//!
//! - every session ends first, the way any revocation does: the revocation feed, the
//!   back-channel logout notices and the introspection of its tokens see it (the feed and
//!   the notices keep only session and user ids, which survive the row);
//! - the personal data goes: the `users` row and what cascades from it (sessions with
//!   their refresh tokens and browser sessions, one-time tokens, authorization codes,
//!   consents, device tokens), the mail queued for or sent to the address (the outbox keeps
//!   recipients), and the address's login failure counter;
//! - the audit log stays, pseudonymised: its entries keep the account's id (a random UUID
//!   that no longer leads to anyone), and those about the account lose their IP address,
//!   user agent, and the domains of the email-change entries. `account_deleted` itself is
//!   recorded without IP and user agent.
//!
//! An admin cannot delete their own account (`409 admin_cannot_be_deleted`): another admin
//! removes the role first, so that the last admin cannot leave the server without one.
//! The address is free at once: it can sign up again, as a new account.

use gatehouse_entity::{audit_events, mail_outbox, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, ModelTrait, QueryFilter};

use crate::identity::types::Role;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::sessions::{Principal, RevokeReason, revoke_user_sessions};
use crate::{Error, Gatehouse, Result};

/// The audit events whose details name something of the address (its domain).
const EVENTS_WITH_ADDRESS_DETAILS: [AuditEvent; 3] = [
    AuditEvent::EmailChangeRequested,
    AuditEvent::EmailChanged,
    AuditEvent::EmailChangeUndone,
];

impl Gatehouse {
    /// Deletes the caller's account: every session ends, the personal data is erased, the
    /// audit entries stay without it.
    pub async fn delete_account(&self, principal: &Principal, _meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        // A sensitive action: a recent authentication, never an impersonated session.
        self.require_fresh(&txn, principal).await?;
        let user = users::Entity::find_by_id(principal.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if Role::from_stored(&user.role) == Role::Admin {
            return Err(Error::Conflict {
                code: "admin_cannot_be_deleted",
                message: "an admin account cannot be deleted; another admin must remove \
                          its admin role first"
                    .to_owned(),
            });
        }
        let revoked =
            revoke_user_sessions(&txn, user.id, None, RevokeReason::AccountDeleted, now).await?;
        mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::Recipient.eq(&user.email))
            .exec(&txn)
            .await?;
        self.end_login_lock(&txn, &user.email, now).await?;
        let about_user = Condition::any()
            .add(audit_events::Column::ActorUserId.eq(user.id))
            .add(audit_events::Column::SubjectUserId.eq(user.id));
        audit_events::Entity::update_many()
            .col_expr(
                audit_events::Column::Ip,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                audit_events::Column::UserAgent,
                Expr::value(Option::<String>::None),
            )
            .filter(about_user.clone())
            .exec(&txn)
            .await?;
        audit_events::Entity::update_many()
            .col_expr(
                audit_events::Column::Details,
                Expr::value(Option::<String>::None),
            )
            .filter(about_user)
            .filter(
                audit_events::Column::Event.is_in(EVENTS_WITH_ADDRESS_DETAILS.map(|e| e.as_str())),
            )
            .exec(&txn)
            .await?;
        let entry = AuditEntry::by_user(AuditEvent::AccountDeleted, user.id)
            .session(principal.session_id)
            .details(serde_json::json!({ "sessions_revoked": revoked }));
        audit::record(&txn, now, &RequestMeta::default(), entry).await?;
        user.delete(&txn).await?;
        self.commit_revoking(txn).await?;
        Ok(())
    }
}
