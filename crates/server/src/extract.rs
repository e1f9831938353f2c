//! Extractors: who is calling (a Bearer access token of a live session), from where.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use gatehouse_core::{Error as CoreError, Gatehouse, Principal, RequestMeta};

use crate::error::ApiError;

/// The caller, proven by `Authorization: Bearer <access token>` of a session that still
/// stands. Anything else is `401` with `WWW-Authenticate: Bearer`.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let gatehouse = req.app_data::<web::Data<Gatehouse>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(CoreError::Unauthenticated)?;
            let gatehouse = gatehouse
                .ok_or_else(|| CoreError::Internal("Gatehouse is not registered".into()))?;
            Ok(Authenticated(gatehouse.authenticate(&token).await?))
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether to believe `Forwarded` / `X-Forwarded-For` for the client address.
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedHeaders(pub bool);

/// The client's address and user agent, for sessions and the audit log.
pub struct ClientMeta(pub RequestMeta);

impl FromRequest for ClientMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req
            .app_data::<web::Data<TrustForwardedHeaders>>()
            .is_some_and(|t| t.0);
        let ip = if trust {
            req.connection_info()
                .realip_remote_addr()
                .map(|addr| strip_port(addr).to_owned())
        } else {
            req.peer_addr().map(|addr| addr.ip().to_string())
        };
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(ClientMeta(RequestMeta { ip, user_agent })))
    }
}

fn strip_port(addr: &str) -> &str {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(_) => addr
            .rsplit_once(':')
            .map_or(addr, |(ip, _)| ip.trim_matches(['[', ']'])),
        Err(_) => addr,
    }
}
