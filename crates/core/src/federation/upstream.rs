//! Talking to the upstream providers: the authorization URL (code flow with PKCE, `state`
//! and, for OpenID Connect, `nonce`, built by the `oauth2` crate), the code exchange, and
//! who the user is there: the ID token checked against the provider's JWKS (issuer,
//! audience, expiry by the injected clock, nonce), or GitHub's user and email endpoints.
//!
//! Discovery documents are fetched on first use and kept; the key set is kept and
//! fetched again when a token names a key it lacks (key rotation). No redirects are
//! followed (the `oauth2` crate's advice against SSRF), every request has a timeout
//! (`federation.request_timeout`), and no answer is read past
//! `federation.max_response_bytes` (`ProviderHttp`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, RwLock};

use crate::platform::secrets::constant_time_eq;
use crate::settings::{FederationSettings, ProviderKind, ProviderSettings};
use crate::{Error, Result};

const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GITHUB_AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const GITHUB_API_URL: &str = "https://api.github.com";
/// The longest subject stored (OpenID Connect Core 2: at most 255 ASCII characters).
const MAX_SUBJECT_LENGTH: usize = 255;
/// How far an ID token's `exp` may lie behind this server's clock (clock skew).
const ID_TOKEN_LEEWAY: chrono::Duration = chrono::Duration::seconds(60);
/// The ID token signatures accepted: asymmetric only (a client secret is no key).
const ID_TOKEN_ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The token response, with the ID token the `oauth2` crate leaves to extensions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A sign-in started at a provider: what the callback must match, kept in the browser's
/// server-side session until then and used once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FederationFlow {
    pub provider_id: String,
    /// The `state` sent to the provider; the callback must bring it back.
    pub state: String,
    pub pkce_verifier: String,
    /// OpenID Connect: the `nonce` the ID token must carry.
    pub nonce: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Set when a logged-in user started the flow from the account page to link the
    /// provider to their account (it then signs nobody in).
    pub link_to: Option<uuid::Uuid>,
}

/// Who the user is at a provider, as it asserted after the code exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    pub provider_id: String,
    /// The provider's stable identifier (`sub`, GitHub's numeric id): never the email.
    pub subject: String,
    pub email: Option<String>,
    /// Whether the provider says it verified `email`.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// An OpenID Connect provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The claims of an upstream ID token that Gatehouse reads.
#[derive(Debug, Deserialize)]
struct UpstreamClaims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    aud: serde_json::Value,
    #[serde(default)]
    email: Option<String>,
    /// A boolean, or (some providers) the string `"true"`.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
}

/// How many audiences an ID token's `aud` (a string or an array) names.
fn audience_count(aud: &serde_json::Value) -> usize {
    match aud {
        serde_json::Value::Array(many) => many.len(),
        serde_json::Value::Null => 0,
        _ => 1,
    }
}

fn asserted(value: Option<&serde_json::Value>) -> bool {
    matches!(value, Some(serde_json::Value::Bool(true)))
        || matches!(value, Some(serde_json::Value::String(s)) if s == "true")
}

/// The endpoints of a provider, once known.
#[derive(Debug, Clone)]
struct Endpoints {
    authorize: String,
    token: String,
    auth_type: AuthType,
    /// OpenID Connect: the issuer, the key set's URL and userinfo.
    oidc: Option<OidcEndpoints>,
    /// GitHub: the REST API's base URL.
    github_api: Option<String>,
}

#[derive(Debug, Clone)]
struct OidcEndpoints {
    issuer: String,
    jwks_uri: String,
    userinfo: Option<String>,
}

/// One configured provider.
pub struct Provider {
    settings: ProviderSettings,
    redirect_uri: String,
    endpoints: OnceCell<Endpoints>,
    keys: RwLock<Option<JwkSet>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.settings.id)
            .finish_non_exhaustive()
    }
}

/// A provider as the hosted pages show it: its button.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderButton {
    pub id: String,
    pub display_name: String,
}

/// Every configured provider, and the HTTP client that talks to them.
#[derive(Debug)]
pub struct Providers {
    providers: Vec<Arc<Provider>>,
    http: ProviderHttp,
}

/// The HTTP client of the providers, for this module's fetches and the `oauth2` crate's
/// code exchange alike: no redirects, a timeout, and an answer larger than
/// `federation.max_response_bytes` is refused rather than read (a provider, or whatever
/// answers in its name, cannot fill this server's memory).
#[derive(Debug)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
    max_response_bytes: usize,
}

/// Why a request to a provider got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderHttpError {
    #[error("the request failed")]
    Request(#[from] reqwest::Error),
    #[error("the answer is larger than federation.max_response_bytes")]
    TooLarge,
    #[error("the answer could not be passed on")]
    Http(#[from] oauth2::http::Error),
}

impl ProviderHttp {
    /// The body of `response`, unless it is (or says it is) larger than the limit.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
    ) -> std::result::Result<Vec<u8>, ProviderHttpError> {
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(ProviderHttpError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(ProviderHttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = Pin<
        Box<
            dyn Future<Output = std::result::Result<oauth2::HttpResponse, Self::Error>> + Send + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.client.execute(request.try_into()?).await?;
            let mut answer = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = self.read_capped(response).await?;
            Ok(answer.body(body)?)
        })
    }
}

impl Providers {
    /// The providers of `[federation]`; `issuer` is this server's public URL (the base
    /// of every callback).
    pub fn new(settings: &FederationSettings, issuer: &str) -> Result<Self> {
        let http = ProviderHttp {
            client: reqwest::Client::builder()
                .timeout(settings.request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("Gatehouse")
                .build()
                .map_err(Error::internal)?,
            max_response_bytes: settings.max_response_bytes,
        };
        let providers = settings
            .providers
            .iter()
            .map(|p| {
                Arc::new(Provider {
                    settings: p.clone(),
                    redirect_uri: format!("{issuer}/login/{}/callback", p.id),
                    endpoints: OnceCell::new(),
                    keys: RwLock::new(None),
                })
            })
            .collect();
        Ok(Self { providers, http })
    }

    /// The buttons of the login and sign-up pages, in configuration order.
    pub fn buttons(&self) -> Vec<ProviderButton> {
        self.providers
            .iter()
            .map(|p| ProviderButton {
                id: p.settings.id.clone(),
                display_name: p.display_name(),
            })
            .collect()
    }

    /// The provider `id` names: 404 for any other.
    pub fn get(&self, id: &str) -> Result<&Arc<Provider>> {
        self.providers
            .iter()
            .find(|p| p.settings.id == id)
            .ok_or(Error::NotFound("identity provider"))
    }

    /// Starts a sign-in: the URL to send the browser to, and the flow to keep.
    pub async fn start(
        &self,
        provider: &Provider,
        now: DateTime<Utc>,
        link_to: Option<uuid::Uuid>,
    ) -> Result<(url::Url, FederationFlow)> {
        let endpoints = provider.endpoints(&self.http).await?;
        let client = provider.client(endpoints)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(provider.scopes().into_iter().map(Scope::new))
            .set_pkce_challenge(challenge);
        let nonce = endpoints
            .oidc
            .as_ref()
            .map(|_| CsrfToken::new_random().secret().clone());
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.clone());
        }
        let (url, state) = request.url();
        let flow = FederationFlow {
            provider_id: provider.settings.id.clone(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce,
            started_at: now,
            link_to,
        };
        Ok((url, flow))
    }

    /// Ends a sign-in: checks the callback against its flow (`state` in constant time,
    /// the issuer it names), exchanges the code and finds out who the user is.
    pub async fn finish(
        &self,
        provider: &Provider,
        flow: FederationFlow,
        callback: Callback,
        now: DateTime<Utc>,
        flow_timeout: std::time::Duration,
    ) -> Result<UpstreamIdentity> {
        let state_matches = callback
            .state
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
        let timeout = chrono::Duration::from_std(flow_timeout).unwrap_or_default();
        if flow.provider_id != provider.settings.id
            || !state_matches
            || flow.started_at + timeout < now
        {
            return Err(invalid_state());
        }
        if let Some(error) = callback.error {
            return Err(Error::InvalidInput {
                code: "federation_cancelled",
                message: format!(
                    "{} did not sign you in ({}); try again",
                    provider.display_name(),
                    short(&error)
                ),
            });
        }
        let endpoints = provider.endpoints(&self.http).await?;
        // RFC 9207: a provider that names itself must be the one this flow went to.
        if let (Some(iss), Some(oidc)) = (&callback.iss, &endpoints.oidc)
            && iss != &oidc.issuer
        {
            return Err(provider.failed("the callback names another issuer"));
        }
        let code = callback.code.ok_or_else(invalid_state)?;
        let token = provider
            .client(endpoints)?
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                provider.failed(&format!("the code exchange failed: {}", exchange_error(&e)))
            })?;
        let access_token = SecretString::from(token.access_token().secret().clone());
        match (&endpoints.oidc, &endpoints.github_api) {
            (Some(oidc), _) => {
                let id_token = token
                    .extra_fields()
                    .id_token
                    .clone()
                    .ok_or_else(|| provider.failed("the token response has no ID token"))?;
                let nonce = flow.nonce.unwrap_or_default();
                self.oidc_identity(provider, oidc, &id_token, &nonce, &access_token, now)
                    .await
            }
            (None, Some(api)) => self.github_identity(provider, api, &access_token).await,
            (None, None) => Err(Error::internal("a provider without a way to read its user")),
        }
    }

    async fn oidc_identity(
        &self,
        provider: &Provider,
        oidc: &OidcEndpoints,
        id_token: &str,
        nonce: &str,
        access_token: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<UpstreamIdentity> {
        let claims = self.checked_claims(provider, oidc, id_token, now).await?;
        let nonce_matches = claims
            .nonce
            .as_deref()
            .is_some_and(|n| !nonce.is_empty() && constant_time_eq(n.as_bytes(), nonce.as_bytes()));
        if !nonce_matches {
            return Err(provider.failed("the ID token's nonce is not this sign-in's"));
        }
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT_LENGTH {
            return Err(provider.failed("the ID token's subject is empty or too long"));
        }
        let mut identity = UpstreamIdentity {
            provider_id: provider.settings.id.clone(),
            subject: claims.sub,
            email: claims.email,
            email_verified: asserted(claims.email_verified.as_ref()),
            name: claims.name,
        };
        if identity.email.is_none()
            && let Some(userinfo) = &oidc.userinfo
        {
            let info: serde_json::Value = provider
                .fetch_json(&self.http, userinfo, Some(access_token))
                .await?;
            if info.get("sub").and_then(|s| s.as_str()) != Some(identity.subject.as_str()) {
                return Err(provider.failed("userinfo describes another user"));
            }
            identity.email = info
                .get("email")
                .and_then(|e| e.as_str())
                .map(str::to_owned);
            identity.email_verified = asserted(info.get("email_verified"));
            if identity.name.is_none() {
                identity.name = info.get("name").and_then(|n| n.as_str()).map(str::to_owned);
            }
        }
        if identity.email.is_none() {
            identity.email_verified = false;
        }
        Ok(identity)
    }

    /// The ID token's claims once its signature (a key of the provider's JWKS), issuer,
    /// audience and expiry are checked.
    async fn checked_claims(
        &self,
        provider: &Provider,
        oidc: &OidcEndpoints,
        id_token: &str,
        now: DateTime<Utc>,
    ) -> Result<UpstreamClaims> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| provider.failed("the ID token is malformed"))?;
        if !ID_TOKEN_ALGORITHMS.contains(&header.alg) {
            return Err(provider.failed("the ID token is not signed with a public-key algorithm"));
        }
        let (key, jwk) = self.key_for(provider, oidc, header.kid.as_deref()).await?;
        if !key_allows(&jwk, header.alg) {
            return Err(provider.failed("the ID token's algorithm is not its key's"));
        }
        let mut validation = Validation::new(header.alg);
        // Google also writes its issuer without the scheme (its documentation says so).
        let bare_issuer = oidc.issuer.trim_start_matches("https://");
        match provider.settings.kind {
            ProviderKind::Google => validation.set_issuer(&[oidc.issuer.as_str(), bare_issuer]),
            _ => validation.set_issuer(&[&oidc.issuer]),
        }
        validation.set_audience(&[&provider.settings.client_id]);
        // Expiry by the injected clock, below, not the system's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        let claims = jsonwebtoken::decode::<UpstreamClaims>(id_token, &key, &validation)
            .map_err(|e| provider.failed(&format!("the ID token was refused ({e})")))?
            .claims;
        if DateTime::from_timestamp(claims.exp, 0).is_none_or(|exp| exp + ID_TOKEN_LEEWAY < now) {
            return Err(provider.failed("the ID token has expired"));
        }
        // OpenID Connect Core 3.1.3.7: with several audiences, `azp` names this client.
        if audience_count(&claims.aud) > 1
            && claims.azp.as_deref() != Some(&provider.settings.client_id)
        {
            return Err(provider.failed("the ID token was issued to another client"));
        }
        Ok(claims)
    }

    /// The provider's key `kid` names (the only one, without a `kid`); the key set is
    /// fetched again once when it lacks the key.
    async fn key_for(
        &self,
        provider: &Provider,
        oidc: &OidcEndpoints,
        kid: Option<&str>,
    ) -> Result<(DecodingKey, jsonwebtoken::jwk::Jwk)> {
        for refetch in [false, true] {
            if refetch || provider.keys.read().await.is_none() {
                let fetched: JwkSet = provider
                    .fetch_json(&self.http, &oidc.jwks_uri, None)
                    .await?;
                *provider.keys.write().await = Some(fetched);
            }
            let keys = provider.keys.read().await;
            let found = keys.as_ref().and_then(|set| match kid {
                Some(kid) => set.find(kid),
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            });
            if let Some(jwk) = found {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|_| provider.failed("the provider's key cannot be used"))?;
                return Ok((key, jwk.clone()));
            }
        }
        Err(provider.failed("the ID token is signed by a key the provider does not publish"))
    }

    /// GitHub: the user (`/user`) and their primary address (`/user/emails`, with
    /// whether GitHub verified it).
    async fn github_identity(
        &self,
        provider: &Provider,
        api: &str,
        access_token: &SecretString,
    ) -> Result<UpstreamIdentity> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            login: Option<String>,
        }
        #[derive(Deserialize)]
        struct Address {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let user: User = provider
            .fetch_json(&self.http, &format!("{api}/user"), Some(access_token))
            .await?;
        let addresses: Vec<Address> = provider
            .fetch_json(
                &self.http,
                &format!("{api}/user/emails"),
                Some(access_token),
            )
            .await?;
        let primary = addresses.into_iter().find(|a| a.primary);
        Ok(UpstreamIdentity {
            provider_id: provider.settings.id.clone(),
            subject: user.id.to_string(),
            email_verified: primary.as_ref().is_some_and(|a| a.verified),
            email: primary.map(|a| a.email),
            name: user.name.or(user.login),
        })
    }
}

/// Whether a JWK may check a signature of `alg`: its own `alg`, if it names one, is that
/// signature algorithm (an encryption key's is none).
fn key_allows(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> bool {
    jwk.common
        .key_algorithm
        .is_none_or(|own| own.to_string().parse::<Algorithm>().ok() == Some(alg))
}

/// What is wrong with `url` as a provider endpoint, if anything: it must be https, or
/// http to a loopback host where `allow_loopback_http` (outside production: a provider
/// on the same machine, in development and tests).
pub fn endpoint_problem(url: &str, allow_loopback_http: bool) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) if parsed.host().is_some() && parsed.username().is_empty() => parsed,
        _ => return Some(format!("`{url}` is not an http(s) URL with a host")),
    };
    let loopback = matches!(
        parsed.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match parsed.scheme() {
        "https" => None,
        "http" if loopback && allow_loopback_http => None,
        "http" if loopback => Some(format!(
            "`{url}` is not https; production talks to providers over https only"
        )),
        _ => Some(format!("`{url}` must be an https:// URL")),
    }
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207: the issuer of the answer.
    pub iss: Option<String>,
    /// RFC 6749 4.1.2.1: the user refused, or the provider could not sign them in.
    pub error: Option<String>,
}

fn invalid_state() -> Error {
    Error::InvalidInput {
        code: "invalid_federation_state",
        message: "this sign-in is not the one this browser started, was already used or \
                  took too long; start again from the login page"
            .to_owned(),
    }
}

/// At most 64 printable characters of a provider's text, for an error message.
fn short(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The `oauth2` crate's error of a code exchange, without any secret: the provider's
/// error code, or the kind of failure.
fn exchange_error(
    error: &oauth2::RequestTokenError<ProviderHttpError, BasicErrorResponse>,
) -> String {
    match error {
        oauth2::RequestTokenError::ServerResponse(answer) => short(answer.error().as_ref()),
        oauth2::RequestTokenError::Request(ProviderHttpError::TooLarge) => {
            "the token endpoint answered more than federation.max_response_bytes".to_owned()
        }
        oauth2::RequestTokenError::Request(_) => "the token endpoint did not answer".to_owned(),
        oauth2::RequestTokenError::Parse(_, _) => "the token response is malformed".to_owned(),
        oauth2::RequestTokenError::Other(_) => "the token response was refused".to_owned(),
    }
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    pub fn display_name(&self) -> String {
        self.settings
            .display_name
            .clone()
            .unwrap_or_else(|| match self.settings.kind {
                ProviderKind::Github => "GitHub".to_owned(),
                ProviderKind::Google => "Google".to_owned(),
                ProviderKind::Oidc => self.settings.id.clone(),
            })
    }

    fn failed(&self, message: &str) -> Error {
        Error::Upstream {
            provider: self.display_name(),
            message: message.to_owned(),
        }
    }

    fn scopes(&self) -> Vec<String> {
        self.settings.scopes.clone().unwrap_or_else(|| {
            match self.settings.kind {
                ProviderKind::Github => vec!["read:user", "user:email"],
                ProviderKind::Google | ProviderKind::Oidc => vec!["openid", "email", "profile"],
            }
            .into_iter()
            .map(str::to_owned)
            .collect()
        })
    }

    fn client(&self, endpoints: &Endpoints) -> Result<OAuthClient> {
        let bad = |e: url::ParseError| self.failed(&format!("an endpoint is not a URL ({e})"));
        let secret = self
            .settings
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default();
        Ok(
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_client_secret(ClientSecret::new(secret))
                .set_auth_uri(AuthUrl::new(endpoints.authorize.clone()).map_err(bad)?)
                .set_token_uri(TokenUrl::new(endpoints.token.clone()).map_err(bad)?)
                .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone()).map_err(bad)?)
                .set_auth_type(endpoints.auth_type.clone()),
        )
    }

    /// The endpoints: GitHub's (or the configured ones), or the discovery document of an
    /// OpenID Connect provider, fetched once (a failed fetch is tried again next time).
    async fn endpoints(&self, http: &ProviderHttp) -> Result<&Endpoints> {
        self.endpoints
            .get_or_try_init(|| async {
                match self.settings.kind {
                    ProviderKind::Github => Ok(Endpoints {
                        authorize: self
                            .github_url(&self.settings.authorize_url, GITHUB_AUTHORIZE_URL),
                        token: self.github_url(&self.settings.token_url, GITHUB_TOKEN_URL),
                        auth_type: AuthType::RequestBody,
                        oidc: None,
                        github_api: Some(self.github_url(&self.settings.api_url, GITHUB_API_URL)),
                    }),
                    ProviderKind::Google | ProviderKind::Oidc => self.discover(http).await,
                }
            })
            .await
    }

    fn github_url(&self, configured: &Option<String>, default: &str) -> String {
        configured
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }

    async fn discover(&self, http: &ProviderHttp) -> Result<Endpoints> {
        let issuer = self
            .settings
            .issuer
            .as_deref()
            .unwrap_or(GOOGLE_ISSUER)
            .trim_end_matches('/')
            .to_owned();
        let url = format!("{issuer}/.well-known/openid-configuration");
        let discovery: Discovery = self.fetch_json(http, &url, None).await?;
        // OpenID Connect Discovery 4.3: the document must name the issuer it was asked for.
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(self.failed("the discovery document names another issuer"));
        }
        // The endpoints the document names get the client secret, the access token and
        // the keys ID tokens are checked with: https, or http on loopback only when the
        // configured issuer itself is (checked at start).
        let loopback_issuer = issuer.starts_with("http://");
        let named = [
            Some(&discovery.authorization_endpoint),
            Some(&discovery.token_endpoint),
            Some(&discovery.jwks_uri),
            discovery.userinfo_endpoint.as_ref(),
        ];
        if let Some(problem) = named
            .into_iter()
            .flatten()
            .find_map(|url| endpoint_problem(url, loopback_issuer))
        {
            return Err(self.failed(&format!("the discovery document names {problem}")));
        }
        let methods = discovery
            .token_endpoint_auth_methods_supported
            .unwrap_or_default();
        let auth_type = if methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic")
        {
            AuthType::BasicAuth
        } else {
            AuthType::RequestBody
        };
        Ok(Endpoints {
            authorize: discovery.authorization_endpoint,
            token: discovery.token_endpoint,
            auth_type,
            oidc: Some(OidcEndpoints {
                issuer: discovery.issuer,
                jwks_uri: discovery.jwks_uri,
                userinfo: discovery.userinfo_endpoint,
            }),
            github_api: None,
        })
    }

    /// GETs `url` as JSON (with `access_token` as a bearer token, if given); a failure
    /// names the URL without its query and the status, never a body or a token.
    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        http: &ProviderHttp,
        url: &str,
        access_token: Option<&SecretString>,
    ) -> Result<T> {
        let mut request = http
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = access_token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await;
        // The URL without its query: a provider's URL is no secret, a query might be.
        let shown = url.split('?').next().unwrap_or_default();
        let response = response.map_err(|_| self.failed(&format!("{shown} did not answer")))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(self.failed(&format!("{shown} answered {status}")));
        }
        let body = http.read_capped(response).await.map_err(|e| match e {
            ProviderHttpError::TooLarge => self.failed(&format!(
                "{shown} answered more than federation.max_response_bytes"
            )),
            _ => self.failed(&format!("{shown} answered something unreadable")),
        })?;
        serde_json::from_slice(&body)
            .map_err(|_| self.failed(&format!("{shown} answered something unreadable")))
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_problem;

    #[test]
    fn provider_endpoints_are_https_or_loopback_where_allowed() {
        assert_eq!(endpoint_problem("https://accounts.google.com", false), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:8080", true), None);
        assert_eq!(endpoint_problem("http://localhost:8080/jwks", true), None);
        assert!(endpoint_problem("http://127.0.0.1:8080", false).is_some());
        assert!(endpoint_problem("http://idp.example.com", true).is_some());
        assert!(endpoint_problem("https://user@idp.example.com", true).is_some());
        assert!(endpoint_problem("file:///etc/passwd", true).is_some());
        assert!(endpoint_problem("not a url", true).is_some());
    }
}
