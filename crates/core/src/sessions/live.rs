//! The live-session check: whether an access token's session still stands (not revoked,
//! expired or idle, its account enabled and not banned). Every authenticated request, userinfo, the
//! pages and introspection go through it.
//!
//! It reads the session row and its user from `LiveSessions`, the rows read within
//! `read_cache.ttl` (see `crate::platform::read_cache`), so that a valid token needs no
//! database round-trip. Every transaction that revokes sessions or changes a user commits
//! through `Gatehouse::commit_revoking`, which empties the view before the request
//! answers; a revocation made by another instance drops its session when the revocation
//! feed brings it, and a demotion or a disabled account there is seen within the TTL.
//! Liveness itself (expiry, idle timeout, a disabled or banned account) is judged on every
//! check with the injected clock, so a kept session still ends on time.

use chrono::{DateTime, Utc};
use gatehouse_entity::{sessions, users};
use sea_orm::{ConnectionTrait, EntityTrait};

use std::sync::Arc;

use crate::identity::types::Role;
use crate::platform::read_cache::ReadCache;
use crate::sessions::Principal;
use crate::tokens::api_scopes::{ACCOUNT_SCOPE, ADMIN_SCOPE, API_SCOPE_LIST, ApiAccess};
use crate::{Error, Gatehouse, Result};

/// A session row and its user, as read from the database.
pub(crate) type SessionRows = Arc<(sessions::Model, users::Model)>;

/// Recently read sessions, by id.
pub(crate) type LiveSessions = ReadCache<uuid::Uuid, SessionRows>;

/// Whether an admin's ban of `user` holds at `now`: a ban is stored and it has no end, or
/// its end is still ahead. A ban whose end passed no longer holds, without anyone lifting it.
pub(crate) fn banned_now(user: &users::Model, now: DateTime<Utc>) -> bool {
    user.banned_at.is_some() && user.banned_until.is_none_or(|until| until > now)
}

/// Whether `session` still stands at `now`: not revoked, expired, or idle for longer than
/// `idle_timeout`.
pub(crate) fn session_stands(
    session: &sessions::Model,
    now: DateTime<Utc>,
    idle_timeout: std::time::Duration,
) -> bool {
    let idle = chrono::Duration::from_std(idle_timeout).unwrap_or(chrono::Duration::MAX);
    session.revoked_at.is_none()
        && session.expires_at > now
        && session
            .last_seen_at
            .checked_add_signed(idle)
            .is_none_or(|limit| limit > now)
}

/// Whether `user`'s sessions may be used at `now`: the account is neither disabled nor
/// banned. Banning revokes the sessions; this also refuses one a racing login opened.
pub(crate) fn account_usable(user: &users::Model, now: DateTime<Utc>) -> bool {
    user.disabled_at.is_none() && !banned_now(user, now)
}

impl Gatehouse {
    /// The principal behind an access token for Gatehouse's own API, if its session
    /// still stands: `aud` must be `tokens.default_audience` (else `Unauthenticated`) and
    /// the token must carry the account or the admin scope (else `InsufficientScope`).
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let (claims, user) = self
            .user_token(access_token, Some(&self.settings.tokens.default_audience))
            .await?;
        let access = ApiAccess::of_scope(claims.scope.as_deref());
        if !access.account && !access.admin {
            return Err(Error::InsufficientScope {
                scope: API_SCOPE_LIST,
                message: format!(
                    "this API needs a token with the `{ACCOUNT_SCOPE}` or `{ADMIN_SCOPE}` scope"
                ),
            });
        }
        Ok(Principal {
            user_id: user.id,
            session_id: claims.sid.ok_or(Error::Unauthenticated)?,
            role: Role::from_stored(&user.role),
            access,
            impersonator_id: claims
                .act
                .as_ref()
                .map(|actor| actor.sub.parse())
                .transpose()
                .map_err(|_| Error::Unauthenticated)?,
        })
    }

    /// Admin rights as stored now, read inside an admin's write transaction, and a recent
    /// authentication of the admin's session (`auth.fresh_age`). The check
    /// that let the request in may have used rows up to `read_cache.ttl` old (a demotion
    /// made through another instance): an admin's write must not ride on that, or a
    /// demoted admin could undo the demotion, or demote the admin who made it, within it.
    pub(crate) async fn require_admin_now(
        &self,
        conn: &impl ConnectionTrait,
        admin: &Principal,
    ) -> Result<()> {
        admin.require_admin()?;
        let (session, user) = self
            .live_session(conn, admin.session_id)
            .await?
            .filter(|(_, user)| user.id == admin.user_id)
            .ok_or(Error::Unauthenticated)?;
        if Role::from_stored(&user.role) != Role::Admin {
            return Err(Error::Forbidden);
        }
        // Every admin write is a sensitive action (step-up).
        self.require_fresh_session(&session)
    }

    /// [`Self::authenticate`] for the account API: the token must carry the account scope.
    pub async fn authenticate_account(&self, access_token: &str) -> Result<Principal> {
        let principal = self.authenticate(access_token).await?;
        if principal.access.account {
            Ok(principal)
        } else {
            Err(Error::InsufficientScope {
                scope: ACCOUNT_SCOPE,
                message: format!("the account API needs a token with the `{ACCOUNT_SCOPE}` scope"),
            })
        }
    }

    pub(crate) fn session_is_live(&self, session: &sessions::Model, now: DateTime<Utc>) -> bool {
        session_stands(session, now, self.settings.sessions.idle_timeout)
    }

    /// A session that still stands (not revoked, expired or idle) and its usable user
    /// (enabled, not banned).
    pub(crate) async fn live_session(
        &self,
        conn: &impl ConnectionTrait,
        session_id: uuid::Uuid,
    ) -> Result<Option<(sessions::Model, users::Model)>> {
        let Some((session, Some(user))) = sessions::Entity::find_by_id(session_id)
            .find_also_related(users::Entity)
            .one(conn)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now();
        let live = self.session_is_live(&session, now) && account_usable(&user, now);
        Ok(live.then_some((session, user)))
    }

    /// A session that still stands and its usable user, from [`LiveSessions`] when they
    /// were read within `read_cache.ttl`, else from the database. Outside any
    /// transaction: for request checks only.
    pub(crate) async fn cached_live_session(
        &self,
        session_id: uuid::Uuid,
    ) -> Result<Option<SessionRows>> {
        let rows = match self.live_sessions.get(&session_id) {
            Some(rows) => rows,
            None => {
                let ticket = self.live_sessions.ticket();
                let Some((session, Some(user))) = sessions::Entity::find_by_id(session_id)
                    .find_also_related(users::Entity)
                    .one(&self.db)
                    .await?
                else {
                    return Ok(None);
                };
                let rows = Arc::new((session, user));
                self.live_sessions
                    .keep(ticket, session_id, Arc::clone(&rows));
                rows
            }
        };
        let (session, user) = &*rows;
        let now = self.clock.now();
        let live = self.session_is_live(session, now) && account_usable(user, now);
        Ok(live.then_some(rows))
    }

    /// The user of a session that still stands.
    pub(crate) async fn live_session_user(
        &self,
        session_id: uuid::Uuid,
    ) -> Result<Option<users::Model>> {
        Ok(self
            .cached_live_session(session_id)
            .await?
            .map(|rows| rows.1.clone()))
    }

    /// The claims and user of a user's access token whose session still stands; any
    /// audience when `audience` is `None`. Service tokens (no session) are refused.
    pub(crate) async fn user_token(
        &self,
        access_token: &str,
        audience: Option<&str>,
    ) -> Result<(crate::tokens::access::AccessClaims, users::Model)> {
        let claims = self.tokens.verify(access_token, audience).await?;
        let sid = claims.sid.ok_or(Error::Unauthenticated)?;
        let user = self
            .live_session_user(sid)
            .await?
            .filter(|user| user.id.to_string() == claims.sub)
            .ok_or(Error::Unauthenticated)?;
        Ok((claims, user))
    }
}
