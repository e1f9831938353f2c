//! OpenID Connect: the authorization endpoint's rules, authorization codes with PKCE,
//! userinfo, remembered consent and RP-initiated logout (ID tokens are in
//! [`crate::tokens::id_token`], back-channel logout in [`crate::sessions::backchannel`]).
//!
//! A browser login (a session opened on the hosted pages) approves authorization
//! requests. Each code exchanged opens an app session under that login: the `sid` of the
//! app's ID token and access tokens. Ending the login ends its app sessions; ending an
//! app session (consent withdrawn, a replayed code) ends only that app's tokens. Either
//! way the app hears of it through back-channel logout.
//!
//! - [`authorize`]: checks a request and decides its next step (login, consent, a code).
//! - [`pkce`]: the PKCE rules (RFC 7636, S256 only).
//! - [`consent`]: remembered consent, granted and withdrawn.
//! - [`codes`]: the code exchange at the token endpoint.
//! - [`userinfo`]: the claims an access token's scopes allow.
//! - [`logout`]: RP-initiated logout.

pub mod authorize;
pub mod codes;
pub mod consent;
pub mod logout;
pub mod pkce;
pub mod userinfo;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tokens::api_scopes::API_SCOPES;

pub use crate::tokens::api_scopes::STANDARD_SCOPES;

/// What the user is asked to do again, from the `prompt` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    /// Fail instead of showing any page.
    None,
    /// Ask for the password even with a login in the browser.
    Login,
    /// Ask for consent even if it was given before.
    Consent,
}

/// A checked authorization request, kept in the browser session while the user logs in
/// or answers the consent page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The client's name, for the pages.
    pub client_name: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<Prompt>,
    /// Seconds since the password was entered beyond which it must be entered again.
    pub max_age: Option<i64>,
    /// The email to prefill on the login page.
    pub login_hint: Option<String>,
    /// `acr_values` asked for a login with a second factor ([`crate::tokens::id_token::ACR_MFA`]).
    #[serde(default)]
    pub require_mfa: bool,
}

/// A scope as the consent page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeInfo {
    pub name: String,
    pub description: String,
}

/// What happens next with an authorization request.
#[derive(Debug)]
pub enum AuthorizeStep {
    /// The client or redirect URI cannot be trusted: show this on an error page and
    /// never redirect (no open redirector).
    Refuse { message: String },
    /// Send the browser to this URL of the client: a code, or an error (RFC 6749 4.1.2).
    Redirect(String),
    /// Show the login page, then continue.
    Login(AuthorizationRequest),
    /// Show the consent page, then continue.
    Consent {
        request: AuthorizationRequest,
        scopes: Vec<ScopeInfo>,
    },
}

/// What the user did since the request arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// The user entered their password for this request.
    pub logged_in: bool,
    /// The user allowed the request on the consent page.
    pub consented: bool,
}

/// The token endpoint's answer to an authorization code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeTokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

/// An app the user allowed, for the account page.
#[derive(Debug, Clone, Serialize)]
pub struct AppConsent {
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    pub granted_at: DateTime<Utc>,
}

/// A checked RP-initiated logout request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogoutRequest {
    pub client_name: Option<String>,
    /// Where to send the browser afterwards (the registered URI, with `state`).
    pub redirect: Option<String>,
    /// The login the `id_token_hint` was issued under.
    pub hint_login: Option<Uuid>,
}

/// The scopes as the consent page shows them.
pub fn describe_scopes(scopes: &[String]) -> Vec<ScopeInfo> {
    scopes
        .iter()
        .map(|name| ScopeInfo {
            name: name.clone(),
            description: STANDARD_SCOPES
                .iter()
                .chain(API_SCOPES.iter())
                .find(|(standard, _)| standard == name)
                .map_or_else(
                    || format!("Use the “{name}” permission"),
                    |(_, d)| (*d).to_owned(),
                ),
        })
        .collect()
}
