//! OpenID Connect: the authorization endpoint's rules, authorization codes with PKCE,
//! ID tokens, userinfo, remembered consent and RP-initiated logout.
//!
//! A browser login (a session opened on the hosted pages) approves authorization
//! requests. Each code exchanged opens an app session under that login: the `sid` of the
//! app's ID token and access tokens. Ending the login ends its app sessions; ending an
//! app session (consent withdrawn, a replayed code) ends only that app's tokens. Either
//! way the app hears of it through back-channel logout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use gatehouse_entity::{authorization_codes, clients, consents, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;

use crate::api_scopes::API_SCOPES;
use crate::audit::{self, AuditEntry, AuditEvent, RequestMeta};
use crate::clients::{Client, GrantType, split, token_audience};
use crate::keys::SigningAlgorithm;
use crate::secrets::{constant_time_eq, new_token, token_hash};
use crate::sessions::{Principal, RevokeReason, insert_refresh_token, revoke_session};
use crate::signing::TokenGrant;
use crate::{Error, Gatehouse, Result};

/// The scopes every client may ask for, with what they mean to the user.
pub const STANDARD_SCOPES: [(&str, &str); 4] = [
    ("openid", "Know which account is yours"),
    ("email", "See your email address"),
    ("profile", "See your name"),
    (
        "offline_access",
        "Stay connected to your account while you are away",
    ),
];

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
#[derive(Debug, Serialize)]
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

/// Whom and what an ID token is for.
pub(crate) struct IdTokenFor<'a> {
    pub user: &'a users::Model,
    pub client_id: &'a str,
    /// The granted scopes, space-separated.
    pub scope: &'a str,
    pub session_id: Uuid,
    pub auth_time: DateTime<Utc>,
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

/// The single value of a parameter; `Err` names a repeated one (RFC 6749 3.1).
fn single<'a>(
    params: &'a [(String, String)],
    name: &str,
) -> std::result::Result<Option<&'a str>, String> {
    let mut values = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v).filter(|v| !v.is_empty())),
        (Some(_), Some(_)) => Err(format!("`{name}` is repeated")),
    }
}

/// `BASE64URL(SHA-256(verifier))` as RFC 7636 4.6 computes it.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 4.1: 43 to 128 unreserved characters.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
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

impl Gatehouse {
    /// Checks an authorization request and decides its next step for the browser whose
    /// login session is `login` (none if nobody is logged in there).
    pub async fn authorize(
        &self,
        params: &[(String, String)],
        login: Option<Uuid>,
    ) -> Result<AuthorizeStep> {
        match self.check_authorization_request(params).await? {
            Ok((request, client)) => {
                self.decide(&request, &client, login, Progress::default())
                    .await
            }
            Err(step) => Ok(step),
        }
    }

    async fn check_authorization_request(
        &self,
        params: &[(String, String)],
    ) -> Result<std::result::Result<(AuthorizationRequest, clients::Model), AuthorizeStep>> {
        let refuse = |message: String| Ok(Err(AuthorizeStep::Refuse { message }));
        let client_id = match single(params, "client_id") {
            Ok(Some(id)) => id,
            Ok(None) => return refuse("The request names no application (client_id).".to_owned()),
            Err(e) => return refuse(format!("The request is malformed: {e}.")),
        };
        let Some(client) = clients::Entity::find_by_id(client_id).one(&self.db).await? else {
            return refuse("The application that sent you here is not registered.".to_owned());
        };
        let redirect_uri = match single(params, "redirect_uri") {
            Ok(Some(uri)) => uri,
            Ok(None) => return refuse("The request names no redirect_uri.".to_owned()),
            Err(e) => return refuse(format!("The request is malformed: {e}.")),
        };
        if !split(&client.redirect_uris).any(|registered| registered == redirect_uri) {
            return refuse(format!(
                "The address {redirect_uri} is not registered for {}.",
                client.name
            ));
        }
        // From here on errors go back to the client.
        let state = single(params, "state").ok().flatten();
        let fail = |error: &str, description: String| {
            Ok(Err(self.error_redirect(
                redirect_uri,
                error,
                &description,
                state,
            )))
        };
        for name in [
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "prompt",
            "max_age",
            "login_hint",
            "response_mode",
        ] {
            if let Err(e) = single(params, name) {
                return fail("invalid_request", e);
            }
        }
        let get = |name: &str| single(params, name).ok().flatten();
        if get("request").is_some() {
            return fail(
                "request_not_supported",
                "request objects are not supported".to_owned(),
            );
        }
        if get("request_uri").is_some() {
            return fail(
                "request_uri_not_supported",
                "request_uri is not supported".to_owned(),
            );
        }
        let client = Client(client);
        if !client.allows(GrantType::AuthorizationCode) {
            return fail(
                "unauthorized_client",
                "this client may not use the authorization code flow".to_owned(),
            );
        }
        match get("response_type") {
            Some("code") => {}
            None => return fail("invalid_request", "response_type is required".to_owned()),
            Some(other) => {
                return fail(
                    "unsupported_response_type",
                    format!("response_type `{other}` is not supported; use `code`"),
                );
            }
        }
        if get("response_mode").is_some_and(|mode| mode != "query") {
            return fail(
                "invalid_request",
                "only response_mode=query is supported".to_owned(),
            );
        }
        let Some(state) = state else {
            return fail(
                "invalid_request",
                "state is required (a value that ties the response to the app's request)"
                    .to_owned(),
            );
        };
        let code_challenge = get("code_challenge");
        match (code_challenge, get("code_challenge_method")) {
            (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {}
            (Some(_), Some("S256")) => {
                return fail("invalid_request", "code_challenge is malformed".to_owned());
            }
            (Some(_), _) => {
                return fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)".to_owned(),
                );
            }
            (None, Some(_)) => {
                return fail("invalid_request", "code_challenge is missing".to_owned());
            }
            (None, None) if !client.is_confidential() => {
                return fail(
                    "invalid_request",
                    "PKCE is required for public clients: send code_challenge with code_challenge_method=S256"
                        .to_owned(),
                );
            }
            (None, None) => {}
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in split(get("scope").unwrap_or("")) {
            let known = STANDARD_SCOPES.iter().any(|(name, _)| *name == scope)
                || client.scopes().any(|s| s == scope);
            if !known {
                return fail(
                    "invalid_scope",
                    format!("scope `{scope}` is not allowed for this client"),
                );
            }
            // offline_access means refresh tokens; without that grant it is ignored
            // (OpenID Connect Core 11).
            let ignored = scope == "offline_access" && !client.allows(GrantType::RefreshToken);
            if !ignored && !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        let prompt = match get("prompt") {
            None => None,
            Some(prompt) => {
                let values: Vec<&str> = split(prompt).collect();
                if values.contains(&"none") && values.len() > 1 {
                    return fail(
                        "invalid_request",
                        "prompt=none cannot be combined with other values".to_owned(),
                    );
                }
                if values.contains(&"none") {
                    Some(Prompt::None)
                } else if values.contains(&"login") || values.contains(&"select_account") {
                    Some(Prompt::Login)
                } else if values.contains(&"consent") {
                    Some(Prompt::Consent)
                } else {
                    return fail(
                        "invalid_request",
                        format!("prompt `{prompt}` is not supported"),
                    );
                }
            }
        };
        let max_age = match get("max_age").map(str::parse::<i64>) {
            None => None,
            Some(Ok(age)) if age >= 0 => Some(age),
            Some(_) => {
                return fail(
                    "invalid_request",
                    "max_age must be a number of seconds".to_owned(),
                );
            }
        };
        let request = AuthorizationRequest {
            client_id: client.id().to_owned(),
            client_name: client.0.name.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: state.to_owned(),
            nonce: get("nonce").map(str::to_owned),
            code_challenge: code_challenge.map(str::to_owned),
            prompt,
            max_age,
            login_hint: get("login_hint").map(str::to_owned),
        };
        Ok(Ok((request, client.0)))
    }

    /// Decides the next step of a checked request: login, consent, or a code.
    pub async fn continue_authorization(
        &self,
        request: &AuthorizationRequest,
        login: Option<Uuid>,
        progress: Progress,
    ) -> Result<AuthorizeStep> {
        let Some(client) = clients::Entity::find_by_id(request.client_id.as_str())
            .one(&self.db)
            .await?
        else {
            return Ok(AuthorizeStep::Refuse {
                message: "The application that sent you here is not registered.".to_owned(),
            });
        };
        self.decide(request, &client, login, progress).await
    }

    async fn decide(
        &self,
        request: &AuthorizationRequest,
        client: &clients::Model,
        login: Option<Uuid>,
        progress: Progress,
    ) -> Result<AuthorizeStep> {
        let now = self.clock.now();
        let user = match login {
            Some(login) => self.login_user(login).await?,
            None => None,
        };
        let fresh_enough = |auth_time: DateTime<Utc>| {
            request
                .max_age
                .is_none_or(|max_age| (now - auth_time).num_seconds() <= max_age)
        };
        let user = match user {
            Some(user)
                if progress.logged_in
                    || (request.prompt != Some(Prompt::Login) && fresh_enough(user.auth_time)) =>
            {
                user
            }
            _ if request.prompt == Some(Prompt::None) => {
                return Ok(self.request_error(
                    request,
                    "login_required",
                    "the user is not logged in",
                ));
            }
            _ => return Ok(AuthorizeStep::Login(request.clone())),
        };
        if !progress.consented {
            let granted = consents::Entity::find_by_id((user.user_id, request.client_id.clone()))
                .one(&self.db)
                .await?;
            let covered = granted.is_some_and(|consent| {
                request
                    .scopes
                    .iter()
                    .all(|s| split(&consent.scope).any(|g| g == s))
            });
            let ask = request.prompt == Some(Prompt::Consent) || (!client.first_party && !covered);
            if ask && request.prompt == Some(Prompt::None) {
                return Ok(self.request_error(
                    request,
                    "consent_required",
                    "the user has not allowed this application yet",
                ));
            }
            if ask {
                return Ok(AuthorizeStep::Consent {
                    request: request.clone(),
                    scopes: describe_scopes(&request.scopes),
                });
            }
        }
        let (code, code_hash) = new_token()?;
        let ttl = chrono::Duration::from_std(self.settings.oidc.authorization_code_ttl)
            .unwrap_or_default();
        authorization_codes::ActiveModel {
            code_hash: Set(code_hash),
            client_id: Set(request.client_id.clone()),
            user_id: Set(user.user_id),
            session_id: Set(user.session_id),
            redirect_uri: Set(request.redirect_uri.clone()),
            scope: Set(request.scopes.join(" ")),
            nonce: Set(request.nonce.clone()),
            code_challenge: Set(request.code_challenge.clone()),
            auth_time: Set(user.auth_time),
            created_at: Set(now),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            issued_session_id: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(AuthorizeStep::Redirect(self.redirect_with(
            &request.redirect_uri,
            &[("code", code.expose_secret()), ("state", &request.state)],
        )))
    }

    /// The redirect that tells the client the request failed.
    pub fn request_error(
        &self,
        request: &AuthorizationRequest,
        error: &str,
        description: &str,
    ) -> AuthorizeStep {
        self.error_redirect(
            &request.redirect_uri,
            error,
            description,
            Some(&request.state),
        )
    }

    fn error_redirect(
        &self,
        redirect_uri: &str,
        error: &str,
        description: &str,
        state: Option<&str>,
    ) -> AuthorizeStep {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        AuthorizeStep::Redirect(self.redirect_with(redirect_uri, &params))
    }

    /// The client's URI with the response parameters and `iss` (RFC 9207) added.
    fn redirect_with(&self, redirect_uri: &str, params: &[(&str, &str)]) -> String {
        match url::Url::parse(redirect_uri) {
            Ok(mut url) => {
                {
                    let mut query = url.query_pairs_mut();
                    for (name, value) in params {
                        query.append_pair(name, value);
                    }
                    query.append_pair("iss", &self.settings.issuer);
                }
                url.into()
            }
            // Registered URIs are validated absolute URLs; this cannot happen.
            Err(_) => redirect_uri.to_owned(),
        }
    }

    /// Remembers that the user allowed the client these scopes (added to earlier ones).
    pub async fn grant_consent(
        &self,
        user_id: Uuid,
        request: &AuthorizationRequest,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
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
        let entry = AuditEntry::by_user(AuditEvent::ConsentWithdrawn, principal.user_id)
            .session(principal.session_id)
            .details(json!({ "client_id": client_id, "sessions_ended": app_sessions.len() }));
        audit::record(&txn, now, meta, entry).await?;
        txn.commit().await?;
        Ok(())
    }

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
        let txn = self.db.begin().await?;
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
        match (&row.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !is_pkce_value(verifier)
                    || !constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
                {
                    return Err(invalid("code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(invalid("code_verifier is required")),
            // RFC 9700 2.1.1: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => {
                return Err(invalid(
                    "code_verifier sent, but the request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        let (login, user) = self
            .live_session(&txn, row.session_id)
            .await?
            .ok_or_else(|| invalid("the login that approved the code has ended"))?;
        let scopes: Vec<&str> = split(&row.scope).collect();
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
        }
        .insert(&txn)
        .await?;
        let wants_refresh =
            scopes.contains(&"offline_access") || client.0.always_issue_refresh_token;
        let refresh_token = if wants_refresh && client.allows(GrantType::RefreshToken) {
            let scope = Some(row.scope.clone()).filter(|s| !s.is_empty());
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
            .details(json!({ "client_id": client.id(), "scope": row.scope }));
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
                    scope: Some(row.scope.clone()).filter(|s| !s.is_empty()),
                    role: Some(user.role.clone()),
                },
                now,
            )
            .await?;
        let id_token = self
            .id_token(IdTokenFor {
                user: &user,
                client_id: client.id(),
                scope: &row.scope,
                session_id: app_session,
                auth_time: row.auth_time,
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
            scope: row.scope,
        })
    }

    /// An ID token for an app session, when its scopes include `openid` (OIDC Core 2 and
    /// 12.2: on a refresh, the same `sub`, `aud`, `sid` and `auth_time`, and no `nonce`).
    pub(crate) async fn id_token(&self, to: IdTokenFor<'_>) -> Result<Option<String>> {
        let scopes: Vec<&str> = split(to.scope).collect();
        if !scopes.contains(&"openid") {
            return Ok(None);
        }
        let expires_at = self.access_token_expiry(to.now);
        let with_email = scopes.contains(&"email");
        let claims_for = |algorithm| IdTokenClaims {
            iss: &self.settings.issuer,
            sub: to.user.id.to_string(),
            aud: to.client_id,
            exp: expires_at.timestamp(),
            iat: to.now.timestamp(),
            auth_time: to.auth_time.timestamp(),
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
        txn.commit().await?;
        tracing::warn!(client_id = %code.client_id, "authorization code replayed; its tokens were revoked");
        Ok(())
    }

    /// OIDC Core 5.3: the claims about the user that the access token's scopes allow.
    pub async fn userinfo(&self, access_token: &str) -> Result<Value> {
        let (claims, user) = self.user_token(access_token, None).await?;
        let scopes: Vec<&str> = claims
            .scope
            .as_deref()
            .map(|s| split(s).collect())
            .unwrap_or_default();
        if !scopes.contains(&"openid") {
            return Err(Error::InsufficientScope(
                "userinfo needs a token with the openid scope".to_owned(),
            ));
        }
        let mut answer = json!({ "sub": claims.sub });
        if scopes.contains(&"email") {
            answer["email"] = json!(user.email);
            answer["email_verified"] = json!(user.email_verified_at.is_some());
        }
        if scopes.contains(&"profile") {
            answer["name"] = json!(user.name);
        }
        Ok(answer)
    }

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
            let entry = AuditEntry::by_user(AuditEvent::Logout, session.user_id).session(login);
            audit::record(&txn, now, meta, entry).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
