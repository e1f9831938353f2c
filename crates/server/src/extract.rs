//! Extractors: who is calling (a Bearer access token of a live session), from where.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::oauth::clients::ClientCredentials;
use gatehouse_core::{Error as CoreError, Gatehouse, Principal, RequestMeta};
use secrecy::SecretString;

use crate::error::{ApiError, OAuthError};

/// The caller of the account API, proven by `Authorization: Bearer <access token>` of a
/// session that still stands, issued for Gatehouse's API with the `gatehouse:account`
/// scope. A token for another audience is `401` with `WWW-Authenticate: Bearer`; one
/// without the scope is `403 insufficient_scope`.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = api_caller(req);
        Box::pin(async move {
            let (gatehouse, token) = caller?;
            Ok(Authenticated(gatehouse.authenticate_account(&token).await?))
        })
    }
}

/// The caller of the admin API: as [`Authenticated`], with a token for Gatehouse's API;
/// the core then requires the `gatehouse:admin` scope and the admin role.
pub struct AdminCaller(pub Principal);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = api_caller(req);
        Box::pin(async move {
            let (gatehouse, token) = caller?;
            Ok(AdminCaller(gatehouse.authenticate(&token).await?))
        })
    }
}

/// The service and the Bearer token of a request to the JSON API.
fn api_caller(req: &HttpRequest) -> Result<(web::Data<Gatehouse>, String), ApiError> {
    let token = bearer_token(req)
        .ok_or(CoreError::Unauthenticated)?
        .to_owned();
    let gatehouse = req
        .app_data::<web::Data<Gatehouse>>()
        .cloned()
        .ok_or_else(|| CoreError::Internal("Gatehouse is not registered".into()))?;
    Ok((gatehouse, token))
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client's address (see [`crate::client_ip`]) and user agent, for sessions and the
/// audit log.
pub struct ClientMeta(pub RequestMeta);

impl FromRequest for ClientMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ip = crate::client_ip::of(req).map(|ip| ip.to_string());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(ClientMeta(RequestMeta { ip, user_agent })))
    }
}

/// An OAuth request body (`application/x-www-form-urlencoded`). RFC 6749 forbids
/// repeating a parameter; asking for a repeated one is `invalid_request`.
pub struct OAuthForm(pub Vec<(String, String)>);

impl OAuthForm {
    /// The value of a parameter; an empty value counts as absent (RFC 6749 section 3.1).
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!("`{name}` is repeated")));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// A parameter that must be there.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::InvalidRequest(format!("`{name}` is missing")))
    }
}

/// The client's credentials from HTTP Basic (`client_secret_basic`) or from the body
/// (`client_secret_post`, or a public client's bare `client_id`). Using both is refused.
pub fn client_credentials(
    req: &HttpRequest,
    form: Option<&OAuthForm>,
) -> Result<ClientCredentials, OAuthError> {
    let basic = basic_credentials(req)?;
    let posted_id = form.map(|f| f.get("client_id")).transpose()?.flatten();
    let posted_secret = form.map(|f| f.get("client_secret")).transpose()?.flatten();
    match (basic, posted_id) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".to_owned(),
        )),
        (Some(credentials), None) if posted_secret.is_none() => Ok(credentials),
        (None, Some(client_id)) => Ok(ClientCredentials {
            client_id: client_id.to_owned(),
            client_secret: posted_secret.map(|s| SecretString::from(s.to_owned())),
        }),
        _ => Err(CoreError::InvalidClient.into()),
    }
}

/// `Authorization: Basic` with form-urlencoded id and secret (RFC 6749 section 2.3.1).
fn basic_credentials(req: &HttpRequest) -> Result<Option<ClientCredentials>, OAuthError> {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(CoreError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(CoreError::InvalidClient)?;
    Ok(Some(ClientCredentials {
        client_id: form_decode(id)?,
        client_secret: Some(SecretString::from(form_decode(secret)?)),
    }))
}

fn form_decode(component: &str) -> Result<String, OAuthError> {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CoreError::InvalidClient.into())
}
