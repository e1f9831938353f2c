//! Access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`), signed by the active key
//! of the [`KeyRing`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::platform::clock::Clock;
use crate::tokens::keys::{KeyRing, SigningAlgorithm};
use crate::{Error, Result};

/// The `typ` header of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// The session of a user token; absent on service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// Granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's role when the token was issued (the server itself rereads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// RFC 8693 4.1: the admin acting as the user, on a token of an impersonated session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// The `act` claim: who acts as the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
}

/// The claims of an `id_token_hint` that logout needs.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    /// The client the ID token was issued to.
    pub aud: String,
    pub sid: Option<Uuid>,
}

/// What an access token is issued for.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The user id, or the client id of a service token.
    pub subject: String,
    pub client_id: String,
    pub audience: String,
    pub session: Option<Uuid>,
    pub scope: Option<String>,
    pub role: Option<String>,
    /// The admin acting as the user (impersonation), for the `act` claim.
    pub actor: Option<Uuid>,
}

/// Issues and checks access tokens.
pub struct AccessTokens {
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    issuer: String,
    ttl: Duration,
}

impl AccessTokens {
    pub fn new(keys: Arc<KeyRing>, clock: Arc<dyn Clock>, issuer: String, ttl: Duration) -> Self {
        Self {
            keys,
            clock,
            issuer,
            ttl,
        }
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Lifetime of the tokens issued.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token issued at `now`; returns it with its expiry.
    pub async fn issue(
        &self,
        grant: TokenGrant,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let expires_at =
            now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject,
            aud: grant.audience,
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: Uuid::now_v7().to_string(),
            client_id: grant.client_id,
            sid: grant.session,
            scope: grant.scope,
            role: grant.role,
            act: grant.actor.map(|admin| Actor {
                sub: admin.to_string(),
            }),
        };
        let token = self.keys.sign(ACCESS_TOKEN_TYPE, &claims).await?;
        Ok((token, expires_at))
    }

    /// Decodes a JWT signed by one of the published keys, with the key's algorithm and
    /// this issuer; `typ_allowed` judges the header's `typ`, `adjust` sets the rest of the
    /// checks.
    async fn decode_signed<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ_allowed: impl FnOnce(Option<&str>) -> bool,
        adjust: impl FnOnce(&mut Validation),
    ) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        if !typ_allowed(header.typ.as_deref()) {
            return Err(Error::Unauthenticated);
        }
        let kid = header.kid.ok_or(Error::Unauthenticated)?;
        let (key, algorithm) = self
            .keys
            .verification_key(&kid)
            .await?
            .ok_or(Error::Unauthenticated)?;
        // The key decides the algorithm; a token naming another one is refused.
        if header.alg != algorithm.jws() || !SigningAlgorithm::ALL.contains(&algorithm) {
            return Err(Error::Unauthenticated);
        }
        let mut validation = Validation::new(algorithm.jws());
        validation.set_issuer(&[&self.issuer]);
        // Lifetimes are checked against the injected clock by the callers.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        adjust(&mut validation);
        jsonwebtoken::decode::<T>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|_| Error::Unauthenticated)
    }

    /// Checks that an `id_token_hint` is an ID token this server signed with a key still
    /// published. Its expiry is not checked: a hint may be an old token (RP-Initiated
    /// Logout 1.0, section 2).
    pub async fn verify_id_token_hint(&self, token: &str) -> Result<IdTokenHint> {
        self.decode_signed(
            token,
            |typ| typ.is_none_or(|typ| typ == "JWT"),
            |validation| {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["iss", "aud", "sub"]);
            },
        )
        .await
    }

    /// Checks type, algorithm, signature, issuer, lifetime and (when given) audience.
    /// Whether the session still stands is the caller's question.
    pub async fn verify(&self, token: &str, audience: Option<&str>) -> Result<AccessClaims> {
        let claims: AccessClaims = self
            .decode_signed(
                token,
                |typ| typ == Some(ACCESS_TOKEN_TYPE),
                |validation| {
                    match audience {
                        Some(audience) => validation.set_audience(&[audience]),
                        None => validation.validate_aud = false,
                    }
                    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                },
            )
            .await?;
        let now = self.clock.now().timestamp();
        if claims.exp <= now || claims.nbf > now {
            return Err(Error::Unauthenticated);
        }
        Ok(claims)
    }
}
