//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and the end of a
//! browser login.

use gatehouse_entity::{clients, sessions};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::oidc::LogoutRequest;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::lists::split;
use crate::sessions::{RevokeReason, revoke_session};
use crate::{Error, Gatehouse, Result};

impl Gatehouse {
    /// Checks an RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0).
    /// A `post_logout_redirect_uri` must be registered for the client the
    /// `id_token_hint` (or `client_id`) names; anything else is refused.
    pub async fn check_logout_request(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<LogoutRequest> {
        let refuse = |message: &str| Error::invalid("invalid_logout_request", message);
        let hint = match id_token_hint {
            Some(token) => Some(
                self.tokens
                    .verify_id_token_hint(token)
                    .await
                    .map_err(|_| refuse("The id_token_hint is not an ID token issued here."))?,
            ),
            None => None,
        };
        let client_id = match (&hint, client_id) {
            (Some(hint), Some(id)) if hint.aud != id => {
                return Err(refuse("client_id does not match the id_token_hint."));
            }
            (Some(hint), _) => Some(hint.aud.clone()),
            (None, id) => id.map(str::to_owned),
        };
        let client = match &client_id {
            Some(id) => Some(
                clients::Entity::find_by_id(id.as_str())
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| {
                        refuse("The application that sent you here is not registered.")
                    })?,
            ),
            None => None,
        };
        let redirect = match (post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(refuse(
                    "post_logout_redirect_uri needs an id_token_hint or client_id.",
                ));
            }
            (Some(uri), Some(client)) => {
                if !split(&client.post_logout_redirect_uris).any(|registered| registered == uri) {
                    return Err(refuse(
                        "The address to return to after logout is not registered for this application.",
                    ));
                }
                let mut url =
                    url::Url::parse(uri).map_err(|_| refuse("Bad post_logout_redirect_uri."))?;
                if let Some(state) = state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(String::from(url))
            }
        };
        let hint_login = match hint.and_then(|h| h.sid) {
            Some(sid) => sessions::Entity::find_by_id(sid)
                .one(&self.db)
                .await?
                .map(|s| s.parent_id.unwrap_or(s.id)),
            None => None,
        };
        Ok(LogoutRequest {
            client_name: client.map(|c| c.name),
            redirect,
            hint_login,
        })
    }

    /// Ends a browser login and every app session under it.
    pub async fn log_out_login(&self, login: Uuid, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        if let Some(session) = sessions::Entity::find_by_id(login).one(&txn).await?
            && revoke_session(&txn, login, RevokeReason::Logout, now).await?
        {
            let entry = AuditEntry::in_session(
                AuditEvent::Logout,
                session.user_id,
                login,
                session.impersonator_id,
            );
            audit::record(&txn, now, meta, entry).await?;
        }
        self.commit_revoking(txn).await?;
        Ok(())
    }
}
