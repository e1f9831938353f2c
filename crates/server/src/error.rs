//! The one place where errors become HTTP. The JSON API answers a status, a stable
//! snake_case `error` code and a sentence for humans; the OAuth endpoints answer in
//! RFC 6749 form. A 5xx never shows its cause; the cause chain goes to the log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use chrono::{DateTime, Utc};
use gatehouse_core::Error as CoreError;
use serde::Serialize;

/// The `Retry-After` of a 503 caused by an unavailable dependency (the database), in
/// seconds: long enough for a connection pool to reconnect or a failover to finish,
/// short enough that clients come back soon.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// An error answered to a client of the JSON API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Malformed JSON, a missing or mistyped field, a bad query string.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no such resource")]
    NotFound,
    /// Too many request headers, or too many bytes of them (`server.max_header_*`).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A path or query string longer than `server.max_path_bytes` / `max_query_bytes`.
    #[error("{0}")]
    UriTooLong(String),
}

/// The JSON body of every API error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiErrorBody)]
pub(crate) struct ErrorBody<'a> {
    /// The stable snake_case code; each response of the OpenAPI document lists the codes
    /// it may carry.
    error: &'a str,
    /// A sentence for humans; never parse it.
    message: String,
    /// `account_banned` only (absent from every other error): when the ban ends, `null`
    /// for a ban without end.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>, required = false)]
    banned_until: Option<Option<DateTime<Utc>>>,
}

/// How a domain error is answered, decided here for every rendering: its HTTP status,
/// its stable code on the JSON API and the hosted pages, and its RFC 6749 code on the
/// OAuth endpoints (whose status follows from that code, see [`oauth_status`]).
struct Answer {
    status: StatusCode,
    code: &'static str,
    oauth_code: &'static str,
}

/// The one table of domain errors.
fn answer(error: &CoreError) -> Answer {
    use CoreError as E;
    use StatusCode as S;
    let (status, code, oauth_code) = match error {
        E::InvalidInput { code, .. } => (S::BAD_REQUEST, *code, "invalid_request"),
        E::Conflict { code, .. } => (S::CONFLICT, *code, "invalid_request"),
        E::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials", "invalid_request"),
        E::EmailNotVerified => (S::FORBIDDEN, "email_not_verified", "invalid_request"),
        E::AccountDisabled => (S::FORBIDDEN, "account_disabled", "invalid_request"),
        E::AccountBanned { .. } => (S::FORBIDDEN, "account_banned", "invalid_request"),
        E::InvalidOneTimeToken => (S::BAD_REQUEST, "invalid_token", "invalid_grant"),
        E::InvalidRefreshToken => (S::UNAUTHORIZED, "invalid_refresh_token", "invalid_grant"),
        E::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", "invalid_request"),
        E::Forbidden => (S::FORBIDDEN, "forbidden", "invalid_request"),
        E::InvalidClient => (S::UNAUTHORIZED, "invalid_client", "invalid_client"),
        E::UnauthorizedClient(_) => (S::BAD_REQUEST, "unauthorized_client", "unauthorized_client"),
        E::InvalidScope(_) => (S::BAD_REQUEST, "invalid_scope", "invalid_scope"),
        E::InvalidGrant(_) => (S::BAD_REQUEST, "invalid_grant", "invalid_grant"),
        E::InsufficientScope { .. } => (S::FORBIDDEN, "insufficient_scope", "invalid_request"),
        E::InvalidCurrentPassword => (
            S::BAD_REQUEST,
            "invalid_current_password",
            "invalid_request",
        ),
        E::ReauthenticationRequired => {
            (S::FORBIDDEN, "reauthentication_required", "invalid_request")
        }
        E::ImpersonatedSession => (S::FORBIDDEN, "impersonated_session", "invalid_request"),
        E::InvalidMfaCode => (S::BAD_REQUEST, "invalid_mfa_code", "invalid_request"),
        E::MfaCodeRequired => (S::BAD_REQUEST, "mfa_code_required", "invalid_request"),
        E::NotFound(_) => (S::NOT_FOUND, "not_found", "invalid_request"),
        E::Upstream { .. } => (S::BAD_GATEWAY, "upstream_failed", "server_error"),
        E::TooManyAttempts { .. } => (S::TOO_MANY_REQUESTS, "too_many_attempts", "invalid_request"),
        // RFC 6749 has no code for it: an extension code (section 8.5), the same as the API's.
        E::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate_limited", "rate_limited"),
        E::Overloaded { .. } => (
            S::SERVICE_UNAVAILABLE,
            "overloaded",
            "temporarily_unavailable",
        ),
        // The OAuth endpoints answer the same stable code (an extension code, RFC 6749
        // section 8.5), so that clients of either API match one code for one outage.
        E::Unavailable { reason, .. } => (S::SERVICE_UNAVAILABLE, *reason, *reason),
        E::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error", "server_error"),
    };
    Answer {
        status,
        code,
        oauth_code,
    }
}

/// The status of an RFC 6749 error code: `invalid_client` is 401 (RFC 6749 5.2), the
/// server's own trouble 500 or 503, every other mistake 400.
fn oauth_status(oauth_code: &str) -> StatusCode {
    match oauth_code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl ApiError {
    /// The stable code clients match on (listed in docs/http-api.md).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound => "not_found",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::Core(e) => answer(e).code,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::Core(e) => answer(e).status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status.is_server_error() {
            log_cause_chain(self.code(), self);
            match self {
                ApiError::Core(CoreError::Overloaded { .. }) => self.to_string(),
                _ => "the server could not handle this request; try again later".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if let ApiError::Core(e) = self {
            add_challenge_headers(&mut response, e);
        }
        let banned_until = match self {
            ApiError::Core(CoreError::AccountBanned { until }) => Some(*until),
            _ => None,
        };
        response.json(ErrorBody {
            error: self.code(),
            message,
            banned_until,
        })
    }
}

/// `WWW-Authenticate` for authentication failures, `Retry-After` when overloaded,
/// throttled or unavailable (every 503 carries one).
fn add_challenge_headers(response: &mut HttpResponseBuilder, error: &CoreError) {
    match error {
        CoreError::Unauthenticated => {
            response.insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
        }
        CoreError::InsufficientScope { scope, .. } => {
            let challenge = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        CoreError::InvalidClient => {
            response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="gatehouse""#));
        }
        CoreError::Overloaded { retry_after } | CoreError::TooManyAttempts { retry_after } => {
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.insert_header((header::RETRY_AFTER, value));
            }
        }
        CoreError::Unavailable { .. } => {
            response.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER_SECONDS));
        }
        CoreError::RateLimited(decision) => {
            let wait = decision.retry_after.unwrap_or_default();
            response.insert_header((header::RETRY_AFTER, whole_seconds(wait).max(1)));
            for (name, value) in rate_limit_headers(std::slice::from_ref(&**decision)) {
                response.insert_header((name, value));
            }
        }
        _ => {}
    }
}

/// An error of the OAuth endpoints, answered in RFC 6749 form:
/// `{"error": ..., "error_description": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("grant_type `{0}` is not supported")]
    UnsupportedGrantType(String),
}

/// The JSON body of every OAuth error (RFC 6749 section 5.2).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthErrorBody<'a> {
    /// The RFC 6749 / 7009 / 7662 code; each response of the OpenAPI document lists the
    /// codes it may carry.
    error: &'a str,
    error_description: String,
}

impl OAuthError {
    /// The RFC 6749 / 7009 / 7662 error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::Core(e) => answer(e).oauth_code,
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::Core(e @ CoreError::Unavailable { .. }) => answer(e).status,
            _ => oauth_status(self.code()),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let description = if status.is_server_error() {
            log_cause_chain(self.code(), self);
            "the server could not handle this request; try again later".to_owned()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if let OAuthError::Core(e) = self {
            add_challenge_headers(&mut response, e);
        }
        response.json(OAuthErrorBody {
            error: self.code(),
            error_description: description,
        })
    }
}

fn log_cause_chain(code: &str, error: &dyn std::error::Error) {
    let mut chain = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    tracing::error!(code, cause = %chain.join(": "), "request failed");
}

/// An error on a hosted page that the page itself cannot show next to a field: a plain
/// HTML page with the status. Causes of 5xx go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A form posted without this browser's CSRF token.
    #[error(
        "This form has expired or did not come from this site. Go back, reload the page and try again."
    )]
    Csrf,
    #[error("the page could not be rendered: {0}")]
    Template(#[from] minijinja::Error),
    #[error("the browser session could not be read: {0}")]
    Session(String),
    /// The page needs a login; the browser is sent to the login page.
    #[error("log in first")]
    LoginRequired,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Core(e) => answer(e).status,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Template(_) | PageError::Session(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PageError::LoginRequired => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let PageError::LoginRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            log_cause_chain("page_error", self);
            "The service is unavailable for a moment. Please try again shortly.".to_owned()
        } else if status.is_server_error() {
            log_cause_chain("page_error", self);
            "Something went wrong on our side. Please try again in a moment.".to_owned()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if let PageError::Core(e) = self {
            add_challenge_headers(&mut response, e);
        }
        let heading = status.canonical_reason().unwrap_or("Error");
        response
            .content_type(actix_web::http::header::ContentType::html())
            .body(format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{heading}</title><link rel=\"stylesheet\" href=\"/assets/gatehouse.css\">\
                 </head><body><main class=\"container\"><div class=\"card\"><h1>{heading}</h1>\
                 <p>{}</p></div></main></body></html>",
                html_escape(&message)
            ))
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A domain error a form shows next to one of its fields (or at its top: `form`), in
/// plain words, with the status of the re-rendered page. `password_field` names the
/// form's password input. `None`: not a form mistake.
pub fn form_error(
    error: &CoreError,
    password_field: &'static str,
) -> Option<(StatusCode, &'static str, String)> {
    let status = answer(error).status;
    let (field, message) = match error {
        CoreError::InvalidInput { code, message } => {
            let field = match *code {
                "invalid_email" | "email_unchanged" => "email",
                "password_too_short" | "password_too_long" => password_field,
                "invalid_name" => "name",
                _ => "form",
            };
            // "password: must have at least 12 characters" -> "Must have at least 12 characters."
            let text = message.split_once(": ").map_or(message.as_str(), |(_, t)| t);
            let mut chars = text.chars();
            let sentence = chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default();
            (field, format!("{}.", sentence.trim_end_matches('.')))
        }
        CoreError::InvalidCredentials => ("form", "The email or password is wrong.".to_owned()),
        CoreError::InvalidCurrentPassword => (
            password_field,
            "The password is wrong.".to_owned(),
        ),
        CoreError::MfaCodeRequired => (
            "code",
            "Enter a code from your authenticator app, or a recovery code.".to_owned(),
        ),
        CoreError::InvalidMfaCode => (
            "code",
            "This code is wrong or was already used. Wait for the next one, or use a recovery code."
                .to_owned(),
        ),
        CoreError::EmailNotVerified => (
            "form",
            "Your email address is not verified yet. Open the link we sent you, or ask for a new one."
                .to_owned(),
        ),
        CoreError::AccountDisabled => (
            "form",
            "This account is disabled. Contact the administrator.".to_owned(),
        ),
        CoreError::AccountBanned { until } => (
            "form",
            match until {
                Some(until) => format!(
                    "This account is banned until {}. Contact the administrator.",
                    until.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => "This account is banned. Contact the administrator.".to_owned(),
            },
        ),
        CoreError::InvalidOneTimeToken => (
            "token",
            "This link is invalid, already used or expired. Ask for a new one.".to_owned(),
        ),
        CoreError::TooManyAttempts { retry_after } => (
            "form",
            format!(
                "Too many failed attempts. Try again in {} minutes.",
                retry_after.as_secs().div_ceil(60).max(1)
            ),
        ),
        CoreError::Overloaded { .. } => (
            "form",
            "The server is busy. Try again in a moment.".to_owned(),
        ),
        CoreError::Conflict { code, .. } if *code == "email_taken" => (
            "form",
            "Another account uses this email address now.".to_owned(),
        ),
        CoreError::Conflict { code, .. } if *code == "admin_cannot_be_deleted" => (
            "form",
            "An admin account cannot be deleted. Ask another admin to remove your admin role first."
                .to_owned(),
        ),
        CoreError::Conflict { code, .. } if *code == "mfa_enrolment_not_started" => (
            "form",
            "This setup is no longer waiting for a code. Start again.".to_owned(),
        ),
        CoreError::Conflict { code, .. } if *code == "mfa_already_enabled" => (
            "form",
            "Two-factor authentication is already on.".to_owned(),
        ),
        CoreError::RateLimited(decision) => (
            "form",
            format!(
                "Too many requests. Try again in {} seconds.",
                whole_seconds(decision.retry_after.unwrap_or_default()).max(1)
            ),
        ),
        _ => return None,
    };
    Some((status, field, message))
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit-headers draft) for the rate
/// limits a request was counted against: one list item per policy, named
/// `<class>-<scope>` (`"login-ip";q=60;w=60` and `"login-ip";r=59;t=1`).
pub fn rate_limit_headers(
    decisions: &[gatehouse_core::rate_limit::Decision],
) -> Vec<(header::HeaderName, HeaderValue)> {
    if decisions.is_empty() {
        return Vec::new();
    }
    let policies = decisions
        .iter()
        .map(|d| {
            format!(
                "\"{}\";q={};w={}",
                d.policy(),
                d.limit,
                whole_seconds(d.window).max(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let states = decisions
        .iter()
        .map(|d| {
            format!(
                "\"{}\";r={};t={}",
                d.policy(),
                d.remaining,
                whole_seconds(d.reset)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    [("ratelimit-policy", policies), ("ratelimit", states)]
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                header::HeaderName::from_static(name),
                HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
}

/// A duration in whole seconds, rounded up (a client waiting that long is not early).
fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// What the session store ran into while a request ran (see [`session_store_failures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionStoreFailure {
    /// The database did not answer.
    Unavailable,
    /// Anything else (logged where it happened).
    Internal,
}

tokio::task_local! {
    /// Set while a request runs when the session store failed (see
    /// [`session_store_failures`]).
    static SESSION_STORE_FAILURE: std::cell::Cell<Option<SessionStoreFailure>>;
}

/// Called by the session store on a failure: when the request runs under
/// [`session_store_failures`], records the failure and returns true (the store then
/// carries on as if it had succeeded, and the answer is replaced). Outside it (no such
/// request), false: the store reports the error itself.
pub fn absorb_session_store_failure(error: &CoreError) -> bool {
    let failure = if matches!(error, CoreError::Unavailable { .. }) {
        SessionStoreFailure::Unavailable
    } else {
        tracing::error!(error = %error, "the browser session store failed");
        SessionStoreFailure::Internal
    };
    SESSION_STORE_FAILURE
        .try_with(|cell| cell.set(Some(failure)))
        .is_ok()
}

/// Wraps the session middleware: actix-session answers a bare, bodyless 500 when its
/// store fails. When the store failed, the answer (whatever the handler made of an empty
/// session, and any cookie) is replaced by what every other request answers then: with
/// the database unavailable, a 503 with `database_unreachable` and `Retry-After`;
/// otherwise a 500 `internal_error`. JSON under `/api/`, the probes and discovery, RFC
/// 6749 JSON on the OAuth endpoints but the browser-facing authorize, the HTML error page
/// elsewhere.
pub async fn session_store_failures(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let (result, failure) = SESSION_STORE_FAILURE
        .scope(std::cell::Cell::new(None), async {
            let result = next.call(req).await;
            (result, SESSION_STORE_FAILURE.with(std::cell::Cell::get))
        })
        .await;
    let response = result?;
    let error = match failure {
        None => return Ok(response.map_into_left_body()),
        Some(SessionStoreFailure::Unavailable) => CoreError::Unavailable {
            reason: "database_unreachable",
            source: Some("the browser session could not be read or written".into()),
        },
        Some(SessionStoreFailure::Internal) => {
            CoreError::Internal("the browser session could not be read or written".into())
        }
    };
    let path = response.request().path();
    let answer = if path.starts_with("/api/")
        || path.starts_with("/.well-known/")
        || ["/readyz", "/healthz"].contains(&path)
    {
        ApiError::Core(error).error_response()
    } else if path.starts_with("/oauth2/") && !path.starts_with("/oauth2/authorize") {
        OAuthError::Core(error).error_response()
    } else {
        PageError::Core(error).error_response()
    };
    Ok(response.into_response(answer).map_into_right_body())
}
