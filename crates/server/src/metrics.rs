//! `GET /metrics` and the middleware that counts every request.
//!
//! The request metrics are labelled with the route *pattern* the router matched
//! (`/api/v1/admin/users/{id}`), never the path: a label per path would let any client
//! create series without bound. Requests no route matched share `route="unmatched"`, and
//! methods other than the standard ones share `method="OTHER"`.
//!
//! `/metrics` is served on the public listener (`metrics.bind` unset) or on a listener
//! of its own ([`metrics_server`]); with `metrics.bearer_token` set, only to requests
//! carrying that token.

use std::net::TcpListener;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::platform::metrics::CONTENT_TYPE;
use gatehouse_core::platform::secrets::{constant_time_eq, token_hash};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::error::ApiError;

/// Who may read `/metrics`.
#[derive(Clone)]
pub struct MetricsAccess {
    /// The SHA-256 of `metrics.bearer_token`, when one is set: compared with the hash
    /// of the presented token, so the comparison takes the same time whatever its length.
    token_hash: Option<String>,
}

impl MetricsAccess {
    pub fn new(token: Option<&SecretString>) -> Self {
        Self {
            token_hash: token.map(|token| token_hash(token.expose_secret())),
        }
    }

    fn allows(&self, req: &HttpRequest) -> bool {
        let Some(expected) = &self.token_hash else {
            return true;
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        presented.is_some_and(|token| {
            constant_time_eq(token_hash(token).as_bytes(), expected.as_bytes())
        })
    }
}

/// Registers `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

/// The metrics of this instance, in the Prometheus text format.
async fn scrape(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
    access: web::Data<MetricsAccess>,
) -> HttpResponse {
    if !access.allows(&req) {
        return ApiError::Core(gatehouse_core::Error::Unauthenticated).error_response();
    }
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(gatehouse.render_metrics().await)
}

/// The listener of `metrics.bind`: `/metrics` and nothing else (404).
pub fn metrics_server(
    config: &Config,
    gatehouse: Gatehouse,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let gatehouse = web::Data::new(gatehouse);
    let access = web::Data::new(MetricsAccess::new(config.metrics.bearer_token.as_ref()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gatehouse.clone())
            .app_data(access.clone())
            .configure(configure)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound)
            }))
    })
    .workers(1)
    .shutdown_timeout(config.server.shutdown_timeout.as_secs());
    Ok(server.listen(listener)?.run())
}

/// Counts each request in `gatehouse_http_requests_total` and times it in
/// `gatehouse_http_request_duration_seconds`, by method, route pattern and status.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let gatehouse = req.app_data::<web::Data<Gatehouse>>().cloned();
    let method = method_label(req.method());
    let response = next.call(req).await;
    if let Some(gatehouse) = gatehouse {
        let (route, status) = match &response {
            Ok(response) => (
                response
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned()),
                response.status().as_u16(),
            ),
            Err(error) => (
                "unmatched".to_owned(),
                error.as_response_error().status_code().as_u16(),
            ),
        };
        gatehouse
            .metrics()
            .http_request(method, &route, status, started.elapsed().as_secs_f64());
    }
    response
}

/// The method as a label: one of the standard methods, or `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_become_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let made_up = Method::from_bytes(b"SURPRISE").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
    }

    #[test]
    fn the_token_must_match_exactly() {
        let access = MetricsAccess::new(Some(&SecretString::from("a long metrics token")));
        let with = |value: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request()
        };
        assert!(access.allows(&with("Bearer a long metrics token")));
        assert!(access.allows(&with("bearer a long metrics token")));
        assert!(!access.allows(&with("Bearer a long metrics toke")));
        assert!(!access.allows(&with("Basic a long metrics token")));
        assert!(!access.allows(&actix_web::test::TestRequest::default().to_http_request()));
        let open = MetricsAccess::new(None);
        assert!(open.allows(&actix_web::test::TestRequest::default().to_http_request()));
    }
}
