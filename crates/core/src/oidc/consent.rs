//! Remembered consent: what the user allowed each app, and withdrawing it (which ends
//! the app's sessions of the user).

use gatehouse_entity::{clients, consents, sessions};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use crate::oidc::{AppConsent, AuthorizationRequest};
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::lists::split;
use crate::sessions::{Principal, RevokeReason, revoke_session};
use crate::{Error, Gatehouse, Result};

impl Gatehouse {
    /// Remembers that the user allowed the client these scopes (added to earlier ones).
    pub async fn grant_consent(
        &self,
        user_id: Uuid,
        request: &AuthorizationRequest,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        let existing = consents::Entity::find_by_id((user_id, request.client_id.clone()))
            .one(&txn)
            .await?;
        let mut scopes: Vec<String> = existing
            .as_ref()
            .map(|c| split(&c.scope).map(str::to_owned).collect())
            .unwrap_or_default();
        for scope in &request.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let row = consents::ActiveModel {
            user_id: Set(user_id),
            client_id: Set(request.client_id.clone()),
            scope: Set(scopes.join(" ")),
            granted_at: Set(now),
        };
        if existing.is_some() {
            row.update(&txn).await?;
        } else {
            row.insert(&txn).await?;
        }
        let entry = AuditEntry::by_user(AuditEvent::ConsentGranted, user_id)
            .details(json!({ "client_id": request.client_id, "scope": scopes.join(" ") }));
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The apps the user allowed, newest first.
    pub async fn app_consents(&self, user_id: Uuid) -> Result<Vec<AppConsent>> {
        let rows = consents::Entity::find()
            .filter(consents::Column::UserId.eq(user_id))
            .find_also_related(clients::Entity)
            .order_by_desc(consents::Column::GrantedAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(consent, client)| AppConsent {
                client_name: client.map_or_else(|| consent.client_id.clone(), |c| c.name),
                client_id: consent.client_id,
                scope: consent.scope,
                granted_at: consent.granted_at,
            })
            .collect())
    }

    /// Forgets the user's consent to a client and ends the client's sessions of the user,
    /// so its tokens stop working.
    pub async fn withdraw_consent(
        &self,
        principal: &Principal,
        client_id: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let deleted = consents::Entity::delete_by_id((principal.user_id, client_id.to_owned()))
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted == 0 {
            return Err(Error::NotFound("consent"));
        }
        let app_sessions = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(principal.user_id))
            .filter(sessions::Column::ClientId.eq(client_id))
            .filter(sessions::Column::RevokedAt.is_null())
            .all(&txn)
            .await?;
        for session in &app_sessions {
            revoke_session(&txn, session.id, RevokeReason::ConsentWithdrawn, now).await?;
        }
        let entry = principal
            .audit_entry(AuditEvent::ConsentWithdrawn)
            .details(json!({ "client_id": client_id, "sessions_ended": app_sessions.len() }));
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        Ok(())
    }
}
