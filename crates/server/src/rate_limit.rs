//! Applying the rate limits ([`gatehouse_core::rate_limit`]) to requests.
//!
//! - Per client IP, by route class: the [`enforce`] middleware classifies every request
//!   ([`classify`]), counts it against its class for the client IP ([`crate::client_ip`])
//!   and refuses it over the limit, rendered as the route renders its errors (JSON API,
//!   RFC 6749 body, error page). A hosted form post is not refused there: the refusal
//!   waits for the handler, which re-renders the form with the message.
//! - Per account, in the handlers that know the account, through the [`RateLimits`]
//!   extractor (`limits.account(RateClass::Login, &email).await?`).
//!
//! Every response of a counted request carries `RateLimit-Policy` and `RateLimit` for
//! each limit it was counted against (see [`crate::error::rate_limit_headers`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use gatehouse_core::rate_limit::{Decision, RateClass, RateKey, RateLimiter};
use gatehouse_core::settings::RateLimitSettings;
use gatehouse_core::{Email, Error as CoreError, Gatehouse};

use crate::error::{ApiError, OAuthError, PageError, rate_limit_headers};

/// How a route answers its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// The JSON API (`{"error": "rate_limited", ...}`).
    Api,
    /// The OAuth endpoints (RFC 6749 body).
    OAuth,
    /// A hosted page: the error page.
    Page,
    /// A hosted form post: the handler re-renders the form.
    Form,
}

/// The class of a request and how its refusal is rendered; `None`: not counted (the
/// health probes and the stylesheet).
pub fn classify(method: &Method, path: &str) -> Option<(RateClass, Rendering)> {
    use RateClass as C;
    use Rendering as R;
    let post = method == Method::POST;
    Some(match path {
        "/healthz" | "/readyz" | "/assets/gatehouse.css" => return None,
        "/api/v1/login" if post => (C::Login, R::Api),
        "/api/v1/signup" if post => (C::Signup, R::Api),
        "/api/v1/email/verify/resend" | "/api/v1/password/forgot" | "/api/v1/me/email" if post => {
            (C::Mail, R::Api)
        }
        "/api/v1/password/reset" if post => (C::PasswordReset, R::Api),
        "/api/v1/token/refresh" if post => (C::Token, R::Api),
        "/oauth2/token" | "/oauth2/revoke" => (C::Token, R::OAuth),
        "/oauth2/introspect" => (C::Introspect, R::OAuth),
        "/login" if post => (C::Login, R::Form),
        "/signup" if post => (C::Signup, R::Form),
        "/verify-email/resend" | "/forgot-password" | "/account/email" if post => {
            (C::Mail, R::Form)
        }
        "/reset-password" if post => (C::PasswordReset, R::Form),
        // A sign-in at an upstream provider, its start and its callback: logins.
        _ if path.starts_with("/login/") && path != "/login/mfa" => (C::Login, R::Page),
        _ if path.starts_with("/oauth2/authorize") || path == "/consent" => (C::Authorize, R::Page),
        _ if path.starts_with("/api/")
            || path.starts_with("/oauth2/")
            || path.starts_with("/.well-known/") =>
        {
            (C::Api, R::Api)
        }
        _ => (C::Api, R::Page),
    })
}

/// The limits a request was counted against, and a per-IP refusal that waits for a
/// form handler.
#[derive(Default)]
struct Counted {
    decisions: Vec<Decision>,
    pending_refusal: Option<CoreError>,
}

type Shared = Rc<RefCell<Counted>>;

/// The middleware: the per-IP check of the request's class, and the `RateLimit` headers
/// on the response.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limiter = limiter_of(req.request()).filter(|l| l.enabled());
    // The path as the router matches it (percent-decoded), not the raw one: otherwise
    // `/api/v1/%6Cogin` would reach the login handler counted as `api`.
    let class = classify(req.method(), req.match_info().as_str());
    let (Some(limiter), Some((class, rendering))) = (limiter, class) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let counted = Shared::default();
    req.extensions_mut().insert(counted.clone());
    if let Some(ip) = crate::client_ip::of(req.request()) {
        match limiter.enforce(class, &RateKey::Ip(ip)).await {
            Ok(decision) => counted.borrow_mut().decisions.extend(decision),
            Err(error) => {
                if let CoreError::RateLimited(decision) = &error {
                    counted.borrow_mut().decisions.push((**decision).clone());
                }
                if rendering == Rendering::Form {
                    counted.borrow_mut().pending_refusal = Some(error);
                } else {
                    let response = match rendering {
                        Rendering::Api => ApiError::Core(error).error_response(),
                        Rendering::OAuth => OAuthError::Core(error).error_response(),
                        Rendering::Page | Rendering::Form => {
                            PageError::Core(error).error_response()
                        }
                    };
                    let mut response = req.into_response(response);
                    add_headers(&counted, &mut response);
                    return Ok(response);
                }
            }
        }
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    add_headers(&counted, &mut response);
    Ok(response)
}

fn add_headers(counted: &Shared, response: &mut ServiceResponse<BoxBody>) {
    let counted = counted.borrow();
    for (name, value) in rate_limit_headers(&counted.decisions) {
        response.headers_mut().insert(name, value);
    }
    // A form re-rendered after a refusal is no error response: say when to come back.
    let refused = counted.decisions.iter().find(|d| !d.allowed);
    if let Some(wait) = refused.and_then(|d| d.retry_after)
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
}

fn limiter_of(req: &HttpRequest) -> Option<Arc<RateLimiter>> {
    req.app_data::<web::Data<Gatehouse>>()
        .and_then(|g| g.rate_limiter().cloned())
}

/// The per-account limits, for the handlers that know the account. Also hands a form
/// handler the per-IP refusal the middleware kept for it.
pub struct RateLimits {
    limiter: Option<Arc<RateLimiter>>,
    counted: Option<Shared>,
}

impl FromRequest for RateLimits {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(RateLimits {
            limiter: limiter_of(req).filter(|l| l.enabled()),
            counted: req.extensions().get::<Shared>().cloned(),
        }))
    }
}

impl RateLimits {
    /// Counts the request against `class` for `account` (already normalised); a refusal
    /// (or the per-IP refusal of this form post) is [`CoreError::RateLimited`].
    pub async fn account(&self, class: RateClass, account: &str) -> Result<(), CoreError> {
        if let Some(refusal) = self
            .counted
            .as_ref()
            .and_then(|c| c.borrow_mut().pending_refusal.take())
        {
            return Err(refusal);
        }
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let outcome = limiter.enforce(class, &RateKey::account(account)).await;
        if let Some(counted) = &self.counted {
            match &outcome {
                Ok(Some(decision)) => counted.borrow_mut().decisions.push(decision.clone()),
                Err(CoreError::RateLimited(decision)) => {
                    counted.borrow_mut().decisions.push((**decision).clone());
                }
                _ => {}
            }
        }
        outcome.map(drop)
    }

    /// As [`RateLimits::account`], keyed by the normalised form of an email address;
    /// an address that does not parse is not counted (the operation refuses it).
    pub async fn email(&self, class: RateClass, raw: &str) -> Result<(), CoreError> {
        match Email::parse(raw) {
            Ok(email) => self.account(class, email.as_str()).await,
            Err(_) => self.account_refusal_only(),
        }
    }

    /// The per-account limit of the OAuth endpoints, for an authenticated client: a
    /// confidential client by its id (only it can authenticate as it); a public client,
    /// which anyone can name, by its id and the client IP, so that a stranger naming it
    /// cannot spend the quota of all its users.
    pub async fn client(
        &self,
        class: RateClass,
        client: &gatehouse_core::oauth::clients::Client,
        meta: &gatehouse_core::RequestMeta,
    ) -> Result<(), CoreError> {
        if client.is_confidential() {
            self.account(class, client.id()).await
        } else {
            let ip = meta.ip.as_deref().unwrap_or("unknown");
            self.account(class, &format!("{}@{ip}", client.id())).await
        }
    }

    /// The per-account `login` limit, under the key the core gives a login attempt (the
    /// address, or the address and a trusted device: see
    /// [`Gatehouse::login_rate_key`]).
    pub async fn login(
        &self,
        gatehouse: &Gatehouse,
        raw_email: &str,
        device_token: Option<&str>,
    ) -> Result<(), CoreError> {
        if self.limiter.is_none() {
            return self.account_refusal_only();
        }
        match gatehouse.login_rate_key(raw_email, device_token).await? {
            Some(key) => self.account(RateClass::Login, &key).await,
            None => self.account_refusal_only(),
        }
    }

    /// Only the per-IP refusal kept for this form post, if any.
    fn account_refusal_only(&self) -> Result<(), CoreError> {
        match self
            .counted
            .as_ref()
            .and_then(|c| c.borrow_mut().pending_refusal.take())
        {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// The configuration problems of `[rate_limit]`.
pub fn problems(settings: &RateLimitSettings) -> Vec<String> {
    let mut problems = Vec::new();
    for class in RateClass::ALL {
        let c = match class {
            RateClass::Login => &settings.login,
            RateClass::Signup => &settings.signup,
            RateClass::Mail => &settings.mail,
            RateClass::PasswordReset => &settings.password_reset,
            RateClass::Token => &settings.token,
            RateClass::Introspect => &settings.introspect,
            RateClass::Authorize => &settings.authorize,
            RateClass::Api => &settings.api,
        };
        if c.enabled && (c.per_ip > 0 || c.per_account > 0) && c.period.is_zero() {
            problems.push(format!(
                "rate_limit.{}.period: must be longer than zero",
                class.name()
            ));
        }
    }
    if settings.redis_timeout.is_zero() {
        problems.push("rate_limit.redis_timeout: must be longer than zero".to_owned());
    }
    if settings.backend == gatehouse_core::settings::RateLimitBackendKind::Redis {
        use secrecy::ExposeSecret;
        if let Err(e) = redis_url_check(settings.redis_url.expose_secret()) {
            problems.push(format!("rate_limit.redis_url: {e}"));
        }
    }
    problems
}

fn redis_url_check(url: &str) -> Result<(), String> {
    // Never the URL itself in the message: it may hold a password.
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    match parsed.scheme() {
        "redis" | "rediss" | "valkey" | "valkeys" | "redis+unix" | "unix" => Ok(()),
        other => Err(format!(
            "`{other}://` is not a Redis URL (redis:// or rediss://)"
        )),
    }
}
