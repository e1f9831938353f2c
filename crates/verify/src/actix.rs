//! The actix-web extractor (feature `actix`).
//!
//! [`BearerClaims`] reads `Authorization: Bearer <token>`, verifies the token with the
//! [`Verifier`] registered as `web::Data<Verifier>`, and hands the handler the claims. When
//! that fails the request never reaches the handler: [`BearerError`] answers it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use crate::{Claims, Verifier, VerifyError};

/// The claims of the request's verified bearer token.
///
/// Uses [`Verifier::verify_or_introspect`] when introspection is configured, else
/// [`Verifier::verify`].
///
/// ```no_run
/// use actix_web::{App, HttpServer, get, web};
/// use gatehouse_verify::{BearerClaims, Verifier};
///
/// #[get("/me")]
/// async fn me(BearerClaims(claims): BearerClaims) -> String {
///     format!("hello {}", claims.sub)
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let verifier = Verifier::builder("https://id.example.com")
///     .audience("notes-api")
///     .discover()
///     .await
///     .map_err(std::io::Error::other)?;
/// let verifier = web::Data::new(verifier);
/// HttpServer::new(move || App::new().app_data(verifier.clone()).service(me))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BearerClaims(pub Claims);

/// Why [`BearerClaims`] refused a request, and the response that says so.
///
/// - a missing or malformed `Authorization` header: `401`, `WWW-Authenticate: Bearer`
///   (RFC 6750 §3.1: no error code when no token was sent), body
///   `{"error":"missing_token","message":...}`;
/// - a refused token: `401`, `WWW-Authenticate: Bearer error="invalid_token"`, body
///   `{"error":"invalid_token","message":...}` with the [`VerifyError`] text;
/// - the issuer unreachable ([`VerifyError::Fetch`]): `503` `temporarily_unavailable`, so
///   clients do not throw away a good token for our outage; no cause in the body;
/// - no `web::Data<Verifier>` or a [`VerifyError::Config`]: `500` `server_error`.
///
/// ```
/// use actix_web::{ResponseError, http::StatusCode};
/// use gatehouse_verify::{BearerError, VerifyError};
///
/// let err = BearerError::Invalid(VerifyError::Expired);
/// assert_eq!(err.status_code(), StatusCode::UNAUTHORIZED);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No `Authorization: Bearer` header, or one that is not a single bearer token.
    #[error("missing bearer token")]
    MissingToken,
    /// The token was refused, or could not be checked.
    #[error(transparent)]
    Invalid(VerifyError),
    /// The app registered no `web::Data<Verifier>`.
    #[error("no Verifier is registered as web::Data<Verifier>")]
    NoVerifier,
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingToken => StatusCode::UNAUTHORIZED,
            Self::Invalid(VerifyError::Fetch(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Invalid(VerifyError::Config(_)) | Self::NoVerifier => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Invalid(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, message) = match self {
            Self::MissingToken => ("missing_token", self.to_string()),
            Self::Invalid(VerifyError::Fetch(_)) => (
                "temporarily_unavailable",
                "tokens cannot be verified right now".to_owned(),
            ),
            Self::Invalid(VerifyError::Config(_)) | Self::NoVerifier => (
                "server_error",
                "token verification is misconfigured".to_owned(),
            ),
            Self::Invalid(err) => ("invalid_token", err.to_string()),
        };
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "bearer token verification failed on our side");
        }
        let mut response = HttpResponse::build(status);
        match self {
            Self::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::Invalid(err) if err.is_token_error() => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": code, "message": message }))
    }
}

impl FromRequest for BearerClaims {
    type Error = BearerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .map(|data| data.get_ref().clone());
        let token = bearer_token(req.headers()).map(str::to_owned);
        Box::pin(async move {
            let token = token.ok_or(BearerError::MissingToken)?;
            let verifier = verifier.ok_or(BearerError::NoVerifier)?;
            verifier
                .verify_or_introspect(&token)
                .await
                .map(BearerClaims)
                .map_err(BearerError::Invalid)
        })
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}
