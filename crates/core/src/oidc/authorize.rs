//! The authorization endpoint's rules: a request is checked (client, exact redirect URI,
//! response type, PKCE, scopes, prompt, max_age), then sent to login, to consent, or back
//! to the app with a code or an error (RFC 6749 4.1, OIDC Core 3.1.2).

use chrono::{DateTime, Utc};
use gatehouse_entity::{authorization_codes, clients, consents};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::oauth::clients::{Client, GrantType};
use crate::oidc::pkce;
use crate::oidc::{AuthorizationRequest, AuthorizeStep, Progress, Prompt, describe_scopes};
use crate::platform::lists::split;
use crate::platform::secrets::new_token;
use crate::tokens::audience::may_have;
use crate::tokens::id_token::ACR_MFA;
use crate::{Gatehouse, Result};

/// The longest value of a parameter of an authorization request that is kept (`state`,
/// `nonce`, `login_hint`...), in bytes.
const MAX_PARAMETER_BYTES: usize = 512;

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
            "acr_values",
        ] {
            match single(params, name) {
                Err(e) => return fail("invalid_request", e),
                // The request is kept in the browser session while the user logs in: no
                // parameter may make that large. Too long a `state` is not sent back.
                Ok(Some(value)) if value.len() > MAX_PARAMETER_BYTES => {
                    return Ok(Err(self.error_redirect(
                        redirect_uri,
                        "invalid_request",
                        &format!("`{name}` is longer than {MAX_PARAMETER_BYTES} bytes"),
                        state.filter(|s| s.len() <= MAX_PARAMETER_BYTES),
                    )));
                }
                Ok(_) => {}
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
        let client = Client(std::sync::Arc::new(client));
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
        if let Err(description) = pkce::check_challenge(
            code_challenge,
            get("code_challenge_method"),
            client.is_confidential(),
        ) {
            return fail("invalid_request", description.to_owned());
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in split(get("scope").unwrap_or("")) {
            if !may_have(&client.0, scope) {
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
            require_mfa: get("acr_values")
                .is_some_and(|values| split(values).any(|v| v == ACR_MFA)),
        };
        Ok(Ok((request, std::sync::Arc::unwrap_or_clone(client.0))))
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
        // An admin's session as the user stays on Gatehouse's own pages: an app's tokens
        // would not say that an admin acts.
        if user.impersonator_id.is_some() {
            // An app asking silently gets an error it can act on, as for no login.
            if request.prompt == Some(Prompt::None) {
                return Ok(self.request_error(
                    request,
                    "login_required",
                    "this browser holds an admin's session as the user, which signs in to no application",
                ));
            }
            return Ok(AuthorizeStep::Refuse {
                message: "This is an admin's session as the user: it cannot sign in to applications. End it to sign in as yourself.".to_owned(),
            });
        }
        // A client that asks for a second factor (`acr_values`) gets no code for a login
        // made without one (OpenID Connect Core Unmet Authentication Requirements 1.0).
        if request.require_mfa && !split(&user.amr).any(|method| method == "mfa") {
            return Ok(self.request_error(
                request,
                "unmet_authentication_requirements",
                "this application requires two-factor authentication, and this login had none",
            ));
        }
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
        .insert(&self.writer)
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
}
