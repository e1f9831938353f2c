//! ID tokens (OIDC Core 2): for an app session with the `openid` scope, at the code
//! exchange and on a refresh (12.2: the same `sub`, `aud`, `sid` and `auth_time`, no
//! `nonce`), with `at_hash` in the hash of the signing algorithm, and how the user
//! authenticated: `amr` (RFC 8176) and `acr` ([`ACR_MFA`] after a second factor).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use gatehouse_entity::users;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;

use crate::platform::lists::split;
use crate::tokens::keys::SigningAlgorithm;
use crate::{Gatehouse, Result};

/// The `acr` of a login with a second factor (requested with `acr_values`).
pub const ACR_MFA: &str = "urn:gatehouse:acr:mfa";
/// The `acr` of a login with a password alone.
pub const ACR_PASSWORD: &str = "urn:gatehouse:acr:pwd";

/// The `acr` of a session whose `amr` (space-separated) is `amr`.
pub fn acr_of(amr: &str) -> &'static str {
    if split(amr).any(|method| method == "mfa") {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// Whom and what an ID token is for.
pub(crate) struct IdTokenFor<'a> {
    pub user: &'a users::Model,
    pub client_id: &'a str,
    /// The granted scopes, space-separated.
    pub scope: &'a str,
    pub session_id: Uuid,
    pub auth_time: DateTime<Utc>,
    /// How the user authenticated (the session's `amr`; none: a password).
    pub amr: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    pub now: DateTime<Utc>,
}

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    /// RFC 8176 methods: `pwd`, and `otp` and `mfa` after a second factor.
    amr: Vec<&'a str>,
    acr: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: String,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// OIDC Core 3.1.3.6: the left half of the hash of the access token, with the hash of
/// the signing algorithm (SHA-512 for Ed25519).
fn at_hash(access_token: &str, algorithm: SigningAlgorithm) -> String {
    let digest = match algorithm {
        SigningAlgorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

impl Gatehouse {
    /// An ID token for an app session, when its scopes include `openid` (OIDC Core 2 and
    /// 12.2: on a refresh, the same `sub`, `aud`, `sid` and `auth_time`, and no `nonce`).
    pub(crate) async fn id_token(&self, to: IdTokenFor<'_>) -> Result<Option<String>> {
        let scopes: Vec<&str> = split(to.scope).collect();
        if !scopes.contains(&"openid") {
            return Ok(None);
        }
        let expires_at = self.access_token_expiry(to.now);
        let with_email = scopes.contains(&"email");
        let amr = to.amr.unwrap_or("pwd");
        let claims_for = |algorithm| IdTokenClaims {
            iss: &self.settings.issuer,
            sub: to.user.id.to_string(),
            aud: to.client_id,
            exp: expires_at.timestamp(),
            iat: to.now.timestamp(),
            auth_time: to.auth_time.timestamp(),
            amr: split(amr).collect(),
            acr: acr_of(amr),
            nonce: to.nonce,
            sid: to.session_id.to_string(),
            at_hash: at_hash(to.access_token, algorithm),
            email: with_email.then_some(to.user.email.as_str()),
            email_verified: with_email.then_some(to.user.email_verified_at.is_some()),
            name: if scopes.contains(&"profile") {
                to.user.name.as_deref()
            } else {
                None
            },
        };
        Ok(Some(self.tokens.keys().sign_with("JWT", claims_for).await?))
    }
}
