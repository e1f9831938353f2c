//! Sessions: one authenticated login of one user. Login opens one; the refresh token
//! family and every access token point at it; revoking it ends all of them at once.

use chrono::{DateTime, Utc};
use gatehouse_entity::{clients, refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::api_scopes::{ACCOUNT_SCOPE, ADMIN_SCOPE, ApiAccess, builtin_login_scope};
use crate::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::clients::{API_CLIENT_ID, token_audience};
use crate::oidc::IdTokenFor;
use crate::secrets::{new_token, token_hash};
use crate::signing::TokenGrant;
use crate::types::{Email, Password, Role};
use crate::{Error, Gatehouse, Result};
use crate::{backchannel, revocations};

/// What a successful login or refresh hands to the app.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A new ID token, when an app session with the `openid` scope is refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The user behind a valid access token of a live session.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The role as stored now, not as it was when the token was issued.
    pub role: Role,
    /// The parts of Gatehouse's API the token was issued for.
    pub access: ApiAccess,
}

impl Principal {
    /// Admin rights: the admin role now, and a token issued for the admin API.
    pub(crate) fn require_admin(&self) -> Result<()> {
        if !self.access.admin {
            return Err(Error::InsufficientScope(format!(
                "the admin API needs a token with the `{ADMIN_SCOPE}` scope"
            )));
        }
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// A session as its owner or an admin sees it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the access token that asked.
    pub current: bool,
}

/// Why a session ended; stored on the row and shown in the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RevokeReason {
    Logout,
    RevokedByUser,
    RevokedByAdmin,
    PasswordReset,
    PasswordChanged,
    AccountDisabled,
    RefreshTokenReuse,
    TokenRevoked,
    ConsentWithdrawn,
    AuthorizationCodeReused,
    LoginEnded,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::RevokedByAdmin => "revoked_by_admin",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::AccountDisabled => "account_disabled",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::TokenRevoked => "token_revoked",
            RevokeReason::ConsentWithdrawn => "consent_withdrawn",
            RevokeReason::AuthorizationCodeReused => "authorization_code_reused",
            RevokeReason::LoginEnded => "login_ended",
        }
    }
}

/// A login from the hosted pages: a session with no tokens yet.
#[derive(Debug, Clone, Copy)]
pub struct BrowserLogin {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// A checked password login and the session it opened.
struct OpenedSession {
    user: users::Model,
    session_id: Uuid,
    refresh_token: Option<SecretString>,
    now: DateTime<Utc>,
}

impl Gatehouse {
    /// Checks email and password and opens a session, with tokens for the JSON API.
    pub async fn log_in(
        &self,
        email: &str,
        password: SecretString,
        meta: &RequestMeta,
    ) -> Result<TokenPair> {
        let opened = self
            .open_session(email, password, meta, Some(API_CLIENT_ID))
            .await?;
        let refresh_token = opened
            .refresh_token
            .ok_or_else(|| Error::internal("an API login has a refresh token"))?;
        let grant = TokenGrant {
            subject: opened.user.id.to_string(),
            client_id: API_CLIENT_ID.to_owned(),
            audience: self.settings.tokens.default_audience.clone(),
            session: Some(opened.session_id),
            scope: Some(builtin_login_scope()),
            role: Some(opened.user.role.clone()),
        };
        self.token_pair(grant, refresh_token, opened.now).await
    }

    /// Checks email and password for the hosted pages and opens a session without tokens;
    /// apps get theirs through the authorization code flow.
    pub async fn log_in_browser(
        &self,
        email: &str,
        password: SecretString,
        meta: &RequestMeta,
    ) -> Result<BrowserLogin> {
        let opened = self.open_session(email, password, meta, None).await?;
        Ok(BrowserLogin {
            user_id: opened.user.id,
            session_id: opened.session_id,
        })
    }

    /// The rules of every password login; a refresh token for `refresh_client` if given.
    async fn open_session(
        &self,
        email: &str,
        password: SecretString,
        meta: &RequestMeta,
        refresh_client: Option<&str>,
    ) -> Result<OpenedSession> {
        let email = Email::parse(email)?;
        let password = Password::presented(password, &self.settings.password, "password")?;
        // Before any hashing: a throttled attempt costs nothing.
        self.check_login_throttle(&email, meta).await?;
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?;
        // Unknown accounts are checked against a dummy hash: the same work either way.
        let verification = self
            .hasher
            .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let now = self.clock.now();
        let user = match user {
            Some(user) if verification.matches => user,
            user => {
                let subject = user.map(|u| u.id);
                let entry = AuditEntry {
                    event: AuditEvent::LoginFailed,
                    actor: subject,
                    subject,
                    session: None,
                    details: Some(serde_json::json!({ "reason": "invalid_credentials" })),
                };
                let txn = self.db.begin().await?;
                audit::record(&txn, now, meta, entry).await?;
                self.record_login_failure(&txn, &email, meta, now).await?;
                txn.commit().await?;
                return Err(Error::InvalidCredentials);
            }
        };
        let refusal = if user.disabled_at.is_some() {
            Some((Error::AccountDisabled, "account_disabled"))
        } else if self.settings.auth.require_verified_email && user.email_verified_at.is_none() {
            Some((Error::EmailNotVerified, "email_not_verified"))
        } else {
            None
        };
        if let Some((error, reason)) = refusal {
            let entry = AuditEntry::by_user(AuditEvent::LoginFailed, user.id)
                .details(serde_json::json!({ "reason": reason }));
            audit::record(&self.db, now, meta, entry).await?;
            return Err(error);
        }
        let upgraded_hash = if verification.needs_rehash {
            Some(self.hasher.hash(&password).await?)
        } else {
            None
        };

        let txn = self.db.begin().await?;
        let session_id = Uuid::now_v7();
        let expires_at = now
            + chrono::Duration::from_std(self.settings.sessions.lifetime)
                .unwrap_or(chrono::Duration::MAX);
        sessions::ActiveModel {
            id: Set(session_id),
            user_id: Set(user.id),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(expires_at),
            last_token_expires_at: Set(self.access_token_expiry(now)),
            ip: Set(meta.ip.clone()),
            user_agent: Set(meta.user_agent_stored()),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            parent_id: Set(None),
            client_id: Set(None),
            auth_time: Set(None),
        }
        .insert(&txn)
        .await?;
        let refresh_token = match refresh_client {
            Some(client) => {
                let scope = Some(builtin_login_scope());
                Some(insert_refresh_token(&txn, session_id, client, scope, now).await?)
            }
            None => None,
        };
        if let Some(hash) = upgraded_hash {
            users::ActiveModel {
                id: Set(user.id),
                password_hash: Set(hash),
                updated_at: Set(now),
                ..Default::default()
            }
            .update(&txn)
            .await?;
        }
        self.clear_login_failures(&txn, &email).await?;
        let mut entry =
            AuditEntry::by_user(AuditEvent::LoginSucceeded, user.id).session(session_id);
        if verification.needs_rehash {
            entry = entry.details(serde_json::json!({ "password_hash_upgraded": true }));
        }
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(OpenedSession {
            user,
            session_id,
            refresh_token,
            now,
        })
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// A token already exchanged is accepted again within `tokens.refresh_reuse_grace` of
    /// its rotation (a retried request, a second tab); presented later it is taken as
    /// stolen and the whole session is revoked. The token must belong to `client_id`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        meta: &RequestMeta,
    ) -> Result<TokenPair> {
        let hash = token_hash(refresh_token);
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        // Claim the token first: the first statement writes, so concurrent refreshes of
        // one token queue here and exactly one of them sees it unrotated.
        let claimed = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .filter(refresh_tokens::Column::RotatedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        let Some((token, Some(session))) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .find_also_related(sessions::Entity)
            .one(&txn)
            .await?
        else {
            return Err(Error::InvalidRefreshToken);
        };
        if token.client_id != client_id || !self.session_is_live(&session, now) {
            return Err(Error::InvalidRefreshToken);
        }
        if !claimed {
            let rotated_at = token.rotated_at.unwrap_or(now);
            let grace = chrono::Duration::from_std(self.settings.tokens.refresh_reuse_grace)
                .unwrap_or_default();
            if now - rotated_at > grace {
                revoke_session(&txn, session.id, RevokeReason::RefreshTokenReuse, now).await?;
                let entry = AuditEntry {
                    event: AuditEvent::RefreshTokenReused,
                    actor: None,
                    subject: Some(session.user_id),
                    session: Some(session.id),
                    details: None,
                };
                audit::record(&txn, now, meta, entry).await?;
                txn.commit().await?;
                tracing::warn!(session_id = %session.id, "refresh token reused after rotation; session revoked");
                return Err(Error::InvalidRefreshToken);
            }
        }
        let user = users::Entity::find_by_id(session.user_id)
            .one(&txn)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        if user.disabled_at.is_some() {
            return Err(Error::InvalidRefreshToken);
        }
        let client = clients::Entity::find_by_id(token.client_id.as_str())
            .one(&txn)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        let refresh_token =
            insert_refresh_token(&txn, session.id, &client.id, token.scope.clone(), now).await?;
        sessions::ActiveModel {
            id: Set(session.id),
            last_seen_at: Set(now),
            last_token_expires_at: Set(self.access_token_expiry(now)),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        txn.commit().await?;
        let grant = TokenGrant {
            subject: user.id.to_string(),
            audience: token_audience(&client, &self.settings.tokens.default_audience),
            client_id: client.id.clone(),
            session: Some(session.id),
            scope: token.scope.clone(),
            role: Some(user.role.clone()),
        };
        let mut pair = self.token_pair(grant, refresh_token, now).await?;
        if let Some(auth_time) = session.auth_time {
            pair.id_token = self
                .id_token(IdTokenFor {
                    user: &user,
                    client_id: &client.id,
                    scope: token.scope.as_deref().unwrap_or_default(),
                    session_id: session.id,
                    auth_time,
                    nonce: None,
                    access_token: &pair.access_token,
                    now,
                })
                .await?;
        }
        Ok(pair)
    }

    /// The principal behind an access token for Gatehouse's own API, if its session
    /// still stands: `aud` must be `tokens.default_audience` (else `Unauthenticated`) and
    /// the token must carry the account or the admin scope (else `InsufficientScope`).
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let (claims, user) = self
            .user_token(access_token, Some(&self.settings.tokens.default_audience))
            .await?;
        let access = ApiAccess::of_scope(claims.scope.as_deref());
        if !access.account && !access.admin {
            return Err(Error::InsufficientScope(format!(
                "this API needs a token with the `{ACCOUNT_SCOPE}` or `{ADMIN_SCOPE}` scope"
            )));
        }
        Ok(Principal {
            user_id: user.id,
            session_id: claims.sid.ok_or(Error::Unauthenticated)?,
            role: Role::from_stored(&user.role),
            access,
        })
    }

    /// [`Self::authenticate`] for the account API: the token must carry the account scope.
    pub async fn authenticate_account(&self, access_token: &str) -> Result<Principal> {
        let principal = self.authenticate(access_token).await?;
        if principal.access.account {
            Ok(principal)
        } else {
            Err(Error::InsufficientScope(format!(
                "the account API needs a token with the `{ACCOUNT_SCOPE}` scope"
            )))
        }
    }

    /// Ends the session of the access token used.
    pub async fn log_out(&self, principal: &Principal, meta: &RequestMeta) -> Result<()> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        revoke_session(&txn, principal.session_id, RevokeReason::Logout, now).await?;
        let entry = AuditEntry::by_user(AuditEvent::Logout, principal.user_id)
            .session(principal.session_id);
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The caller's live sessions, newest first.
    pub async fn list_own_sessions(&self, principal: &Principal) -> Result<Vec<SessionView>> {
        self.live_sessions(principal.user_id, Some(principal.session_id))
            .await
    }

    /// Ends one of the caller's own sessions. Another user's session is "not found".
    pub async fn revoke_own_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let session = sessions::Entity::find_by_id(session_id)
            .filter(sessions::Column::UserId.eq(principal.user_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("session"))?;
        if revoke_session(&txn, session.id, RevokeReason::RevokedByUser, now).await? {
            let entry = AuditEntry::by_user(AuditEvent::SessionRevoked, principal.user_id)
                .session(session.id);
            audit::record(&txn, now, meta, entry).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Ends every session of the caller except the current one ("sign out everywhere
    /// else"); returns how many ended.
    pub async fn revoke_other_sessions(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<u64> {
        let now = self.clock.now();
        let txn = self.begin_revoking().await?;
        let revoked = revoke_user_sessions(
            &txn,
            principal.user_id,
            Some(principal.session_id),
            RevokeReason::RevokedByUser,
            now,
        )
        .await?;
        let entry = AuditEntry::by_user(AuditEvent::SessionRevoked, principal.user_id)
            .session(principal.session_id)
            .details(serde_json::json!({ "other_sessions_ended": revoked }));
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(revoked)
    }

    /// The password rules, for forms that show them.
    pub fn password_rules(&self) -> &crate::settings::PasswordSettings {
        &self.settings.password
    }

    pub(crate) async fn live_sessions(
        &self,
        user_id: Uuid,
        current: Option<Uuid>,
    ) -> Result<Vec<SessionView>> {
        let now = self.clock.now();
        // App sessions are shown through the logins they hang under.
        let rows = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::ParentId.is_null())
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|s| self.session_is_live(s, now))
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }

    pub(crate) fn session_is_live(&self, session: &sessions::Model, now: DateTime<Utc>) -> bool {
        let idle = chrono::Duration::from_std(self.settings.sessions.idle_timeout)
            .unwrap_or(chrono::Duration::MAX);
        session.revoked_at.is_none()
            && session.expires_at > now
            && session
                .last_seen_at
                .checked_add_signed(idle)
                .is_none_or(|limit| limit > now)
    }

    /// When an access token issued at `now` expires.
    pub(crate) fn access_token_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.tokens.ttl()).unwrap_or(chrono::Duration::MAX)
    }

    pub(crate) async fn token_pair(
        &self,
        grant: TokenGrant,
        refresh_token: SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenPair> {
        let session_id = grant
            .session
            .ok_or_else(|| Error::internal("a token pair needs a session"))?;
        let scope = grant.scope.clone();
        let (access_token, _) = self.tokens.issue(grant, now).await?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token: refresh_token.expose_secret().to_owned(),
            session_id,
            scope,
            id_token: None,
        })
    }
}

pub(crate) async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    client_id: &str,
    scope: Option<String>,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    let (token, hash) = new_token()?;
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        client_id: Set(client_id.to_owned()),
        scope: Set(scope),
        token_hash: Set(hash),
        created_at: Set(now),
        rotated_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// Revokes one session and the app sessions under it; false if it was already revoked.
/// Clients holding tokens of an ended session are told through back-channel logout.
pub(crate) async fn revoke_session(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool> {
    let revoked = revoke_one_session(conn, session_id, reason, now).await?;
    let children = sessions::Entity::find()
        .filter(sessions::Column::ParentId.eq(session_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .all(conn)
        .await?;
    for child in children {
        revoke_one_session(conn, child.id, RevokeReason::LoginEnded, now).await?;
    }
    Ok(revoked)
}

async fn revoke_one_session(
    conn: &impl ConnectionTrait,
    session_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool> {
    revocations::lock_feed(conn).await?;
    let result = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(
            sessions::Column::RevokedReason,
            Expr::value(reason.as_str()),
        )
        .filter(sessions::Column::Id.eq(session_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Ok(false);
    }
    if let Some(session) = sessions::Entity::find_by_id(session_id).one(conn).await? {
        revocations::record(conn, session.id, now, session.last_token_expires_at).await?;
        backchannel::enqueue(conn, &session, now).await?;
    }
    Ok(true)
}

/// Revokes every live session of a user, except `keep`; returns how many.
pub(crate) async fn revoke_user_sessions(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut live = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now));
    if let Some(keep) = keep {
        // The kept login keeps its app sessions too.
        live = live.filter(sessions::Column::Id.ne(keep)).filter(
            sea_orm::Condition::any()
                .add(sessions::Column::ParentId.is_null())
                .add(sessions::Column::ParentId.ne(keep)),
        );
    }
    let mut revoked = 0;
    for session in live.all(conn).await? {
        if revoke_session(conn, session.id, reason, now).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}
