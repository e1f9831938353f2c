//! Authorization codes at the token endpoint: single use, bound to the client, the
//! redirect URI and the PKCE challenge; a replayed code ends the tokens of its first use.

use gatehouse_entity::{authorization_codes, sessions};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::oauth::clients::{Client, GrantType};
use crate::oidc::CodeTokens;
use crate::oidc::pkce;
use crate::platform::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::platform::lists::split;
use crate::platform::secrets::token_hash;
use crate::sessions::{RevokeReason, insert_refresh_token, revoke_session};
use crate::tokens::access::TokenGrant;
use crate::tokens::audience::{still_allowed, token_audience};
use crate::tokens::id_token::IdTokenFor;
use crate::{Error, Gatehouse, Result};

impl Gatehouse {
    /// `grant_type=authorization_code`: checks the code against the client, redirect URI
    /// and PKCE verifier, opens an app session, and issues its tokens. A code presented
    /// a second time ends the app session the first exchange opened (RFC 6749 4.1.2).
    pub async fn exchange_authorization_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<CodeTokens> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(Error::UnauthorizedClient(
                "this client may not use authorization_code".to_owned(),
            ));
        }
        let invalid = |why: &str| Error::InvalidGrant(why.to_owned());
        let hash = token_hash(code);
        let now = self.clock.now();
        let txn = self.begin_write().await?;
        // Claim first: concurrent exchanges of one code queue here; one wins.
        let claimed = authorization_codes::Entity::update_many()
            .col_expr(authorization_codes::Column::UsedAt, Expr::value(now))
            .filter(authorization_codes::Column::CodeHash.eq(&hash))
            .filter(authorization_codes::Column::UsedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        let row = authorization_codes::Entity::find_by_id(hash.as_str())
            .one(&txn)
            .await?
            .ok_or_else(|| invalid("the authorization code is invalid"))?;
        if !claimed {
            txn.commit().await?;
            self.revoke_replayed_code(&row, meta).await?;
            return Err(invalid("the authorization code was already used"));
        }
        if row.client_id != client.id() {
            return Err(invalid(
                "the authorization code was issued to another client",
            ));
        }
        if row.expires_at <= now {
            return Err(invalid("the authorization code expired"));
        }
        if redirect_uri != Some(row.redirect_uri.as_str()) {
            return Err(invalid(
                "redirect_uri does not match the one of the authorization request",
            ));
        }
        pkce::check_verifier(row.code_challenge.as_deref(), code_verifier).map_err(invalid)?;
        let (login, user) = self
            .live_session(&txn, row.session_id)
            .await?
            .ok_or_else(|| invalid("the login that approved the code has ended"))?;
        // What the client is still allowed, should an admin have narrowed it since.
        let scope = still_allowed(&client.0, Some(&row.scope)).unwrap_or_default();
        let scopes: Vec<&str> = split(&scope).collect();
        let app_session = Uuid::now_v7();
        let lifetime = chrono::Duration::from_std(self.settings.sessions.lifetime)
            .unwrap_or(chrono::Duration::MAX);
        sessions::ActiveModel {
            id: Set(app_session),
            user_id: Set(user.id),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(now + lifetime),
            last_token_expires_at: Set(self.access_token_expiry(now)),
            ip: Set(login.ip.clone()),
            user_agent: Set(login.user_agent.clone()),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            parent_id: Set(Some(login.id)),
            client_id: Set(Some(client.id().to_owned())),
            auth_time: Set(Some(row.auth_time)),
            // How the user authenticated to the login the code was approved under.
            amr: Set(login.amr.clone()),
            reauthenticated_at: Set(None),
            impersonator_id: Set(None),
        }
        .insert(&txn)
        .await?;
        let wants_refresh =
            scopes.contains(&"offline_access") || client.0.always_issue_refresh_token;
        let refresh_token = if wants_refresh && client.allows(GrantType::RefreshToken) {
            let scope = Some(scope.clone()).filter(|s| !s.is_empty());
            Some(insert_refresh_token(&txn, app_session, client.id(), scope, now).await?)
        } else {
            None
        };
        authorization_codes::ActiveModel {
            code_hash: Set(row.code_hash.clone()),
            issued_session_id: Set(Some(app_session)),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        let entry = AuditEntry::by_user(AuditEvent::AuthorizationCodeExchanged, user.id)
            .session(app_session)
            .details(json!({ "client_id": client.id(), "scope": scope }));
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;

        let (access_token, _) = self
            .tokens
            .issue(
                TokenGrant {
                    subject: user.id.to_string(),
                    client_id: client.id().to_owned(),
                    audience: token_audience(&client.0, &self.settings.tokens.default_audience),
                    session: Some(app_session),
                    scope: Some(scope.clone()).filter(|s| !s.is_empty()),
                    role: Some(user.role.clone()),
                    actor: None,
                },
                now,
            )
            .await?;
        let id_token = self
            .id_token(IdTokenFor {
                user: &user,
                client_id: client.id(),
                scope: &scope,
                session_id: app_session,
                auth_time: row.auth_time,
                amr: login.amr.as_deref(),
                nonce: row.nonce.as_deref(),
                access_token: &access_token,
                now,
            })
            .await?;
        Ok(CodeTokens {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token: refresh_token.map(|t| t.expose_secret().to_owned()),
            id_token,
            scope,
        })
    }

    async fn revoke_replayed_code(
        &self,
        code: &authorization_codes::Model,
        meta: &RequestMeta,
    ) -> Result<()> {
        let Some(app_session) = code.issued_session_id else {
            return Ok(());
        };
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        revoke_session(
            &txn,
            app_session,
            RevokeReason::AuthorizationCodeReused,
            now,
        )
        .await?;
        let entry = AuditEntry {
            event: AuditEvent::AuthorizationCodeReused,
            actor: None,
            subject: Some(code.user_id),
            session: Some(app_session),
            details: Some(json!({ "client_id": code.client_id })),
        };
        audit::record(&txn, now, meta, entry).await?;
        self.commit_revoking(txn).await?;
        tracing::warn!(client_id = %code.client_id, "authorization code replayed; its tokens were revoked");
        Ok(())
    }
}
