//! Putting the server together: the domain service from the configuration, then the
//! actix-web application around it.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service as _};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};
use gatehouse_core::identity::hashing::PasswordHasher;
use gatehouse_core::mail::Mailer;
use gatehouse_core::platform::db::{self, DatabaseOptions};
use gatehouse_core::sessions::backchannel::BackchannelSender;
use gatehouse_core::tokens::access::AccessTokens;
use gatehouse_core::tokens::keys::KeyRing;
use gatehouse_core::{Clock, Gatehouse};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::browser::{Pages, session_middleware};
use crate::client_ip::ClientIpRules;
use crate::config::{Config, ConfigError, Mode};
use crate::error::{ApiError, OAuthError};
use crate::migrations;
use crate::request_limits::{self, RequestLimits};
use crate::routes;
use crate::routes::revocations::KeepaliveInterval;
use crate::telemetry::RequestSpan;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Core(#[from] gatehouse_core::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Connects to the database (migrating it when `database.auto_migrate`), loads or creates
/// the signing key, and builds the domain service.
pub async fn build_gatehouse(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Gatehouse, StartupError> {
    let db = db::connect(&database_options(config)).await?;
    if config.database.auto_migrate {
        migrations::migrate(db.writes()).await?;
    }
    let master_key = config.master_key()?;
    let derived_keys = master_key.derived_keys()?;
    let rate_limit_keys = master_key.keyed_hashes();
    let settings = config.core_settings();
    let hasher = PasswordHasher::new(&config.password)?;
    let mailer = Mailer::new(&config.mail, &settings.issuer, &master_key)?;
    let keys = KeyRing::load_or_create(
        &db,
        clock.clone(),
        master_key,
        config.keys.clone(),
        config.tokens.signing_alg,
        config.tokens.access_token_ttl,
    )
    .await?;
    let tokens = AccessTokens::new(
        Arc::new(keys),
        clock.clone(),
        settings.issuer.clone(),
        config.tokens.access_token_ttl,
    );
    let gatehouse = Gatehouse::new(
        db,
        clock.clone(),
        Arc::new(hasher),
        Arc::new(mailer),
        Arc::new(tokens),
        derived_keys,
        settings,
    )?;
    gatehouse.ensure_api_client().await?;
    let limiter =
        gatehouse_core::rate_limit::RateLimiter::new(&config.rate_limit, clock, rate_limit_keys)?;
    Ok(gatehouse.with_rate_limiter(limiter))
}

/// The database options of a configuration.
pub fn database_options(config: &Config) -> DatabaseOptions {
    DatabaseOptions {
        url: config.database.url.clone(),
        max_connections: config.database.max_connections,
        connect_timeout: config.database.connect_timeout,
        sqlite_checkpoint_interval: config.database.sqlite_checkpoint_interval,
    }
}

/// The HTTP server on an already bound listener; run it by awaiting it.
pub fn http_server(
    config: &Config,
    gatehouse: Gatehouse,
    listener: TcpListener,
) -> Result<Server, StartupError> {
    let gatehouse = web::Data::new(gatehouse);
    let client_ip_rules = web::Data::new(
        ClientIpRules::from_settings(&config.server).map_err(|e| ConfigError::Unsafe(vec![e]))?,
    );
    let keepalive = web::Data::new(KeepaliveInterval(config.revocations.keepalive_interval));
    let body_limit = config.server.max_body_bytes;
    let production = config.mode == Mode::Production;
    let pages = web::Data::new(Pages::new(&config.pages, gatehouse.federation_buttons()));
    let cookie_key = *config.master_key()?.cookie_signing_key();
    let browser_idle_timeout = config.browser_sessions.idle_timeout;
    let content_security_policy = content_security_policy(&config.pages.logo_url);
    let request_limits = web::Data::new(RequestLimits::from_settings(&config.server));
    let metrics_access = web::Data::new(crate::metrics::MetricsAccess::new(
        config.metrics.bearer_token.as_ref(),
    ));
    let public_metrics = config.metrics.on_public_listener();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(gatehouse.clone())
            .app_data(metrics_access.clone())
            .app_data(pages.clone())
            .app_data(client_ip_rules.clone())
            .app_data(keepalive.clone())
            .app_data(request_limits.clone())
            .app_data(json_config(body_limit))
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(
                web::QueryConfig::default().error_handler(|e: QueryPayloadError, _| {
                    ApiError::InvalidRequest(format!("query string: {e}")).into()
                }),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_: PathError, _| ApiError::NotFound.into()),
            )
            .app_data(web::FormConfig::default().limit(body_limit).error_handler(
                move |e: UrlencodedError, _| match e {
                    UrlencodedError::Overflow { .. } => {
                        ApiError::PayloadTooLarge { limit: body_limit }.into()
                    }
                    other => OAuthError::InvalidRequest(format!("form body: {other}")).into(),
                },
            ))
            .configure(routes::configure)
            .configure(|cfg| {
                if public_metrics {
                    crate::metrics::configure(cfg);
                }
            })
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound)
            }))
            .wrap(actix_web::middleware::from_fn(crate::rate_limit::enforce))
            .wrap(session_middleware(
                gatehouse.get_ref().clone(),
                browser_idle_timeout,
                &cookie_key,
            ))
            .wrap(actix_web::middleware::from_fn(
                crate::error::session_store_failures,
            ))
            .wrap(actix_web::middleware::from_fn(request_limits::enforce))
            .wrap(security_headers(production, &content_security_policy))
            .wrap_fn(|req, service| {
                let request_id = req.extensions().get::<RequestId>().copied();
                let response = service.call(req);
                async move {
                    let mut response = response.await?;
                    if let Some(value) =
                        request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
                    {
                        response
                            .headers_mut()
                            .insert(HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(response)
                }
            })
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(actix_web::middleware::from_fn(crate::metrics::record))
    })
    .shutdown_timeout(config.server.shutdown_timeout.as_secs());
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        workers => workers,
    };
    // The limit is per worker: each takes its share of the total (at least one).
    let per_worker = (config.server.max_connections / workers).max(1);
    server = server.workers(workers).max_connections(per_worker);
    Ok(server.listen(listener)?.run())
}

/// The Content-Security-Policy of every response: no script at all, no framing, styles
/// and images from this server (and the configured logo's origin). There is no
/// `form-action`: browsers apply it to the redirect after a form post, which on the
/// consent and login pages goes to the app's registered redirect URI.
fn content_security_policy(logo_url: &str) -> String {
    let logo_origin = url::Url::parse(logo_url)
        .ok()
        .filter(|url| url.scheme() == "https")
        .map(|url| format!(" {}", url.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:{logo_origin}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Headers on every response (a handler may set its own `Cache-Control`); production
/// adds HSTS.
fn security_headers(production: bool, content_security_policy: &str) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, content_security_policy));
    if production {
        headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |e: JsonPayloadError, _| {
            let error = match e {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge { limit }
                }
                JsonPayloadError::ContentType => ApiError::InvalidRequest(
                    "the body must be JSON (Content-Type: application/json)".to_owned(),
                ),
                JsonPayloadError::Deserialize(e) => {
                    ApiError::InvalidRequest(format!("invalid JSON body: {e}"))
                }
                other => ApiError::InvalidRequest(format!("unreadable body: {other}")),
            };
            error.into()
        })
}

/// The background work of one instance, for as long as the process runs: the purge of
/// expired rows, scheduled key rotation, the revocation feed's poller, and back-channel
/// logout delivery.
pub fn spawn_background(
    gatehouse: Gatehouse,
    config: &Config,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartupError> {
    let sender = Arc::new(BackchannelSender::new(gatehouse.clone())?);
    let purge_interval = config.maintenance.purge_interval;
    let backchannel = {
        let period = config.backchannel_logout.poll_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = sender.send_due().await {
                    tracing::warn!(error = %e, "sending back-channel logout notices failed");
                }
            }
        })
    };
    // Mail worker: sends queued mail when woken after a commit, and polls for retries.
    let mail_worker = tokio::spawn(gatehouse.clone().run_mail_worker());
    Ok(vec![
        backchannel,
        mail_worker,
        every(
            config.maintenance.purge_interval,
            gatehouse.clone(),
            move |g| async move {
                match g.purge_if_due(purge_interval).await {
                    Ok(Some(report)) => tracing::info!(?report, "purged expired rows"),
                    Ok(None) => tracing::debug!("another instance purged this interval"),
                    Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
                }
            },
        ),
        every(
            config.keys.reload_interval,
            gatehouse.clone(),
            |g| async move {
                if let Err(e) = g.access_tokens().keys().rotate_if_due().await {
                    tracing::warn!(error = %e, "checking for a due key rotation failed");
                }
            },
        ),
        every(
            config.revocations.poll_interval,
            gatehouse.clone(),
            |g| async move {
                if let Err(e) = g.poll_revocations().await {
                    tracing::warn!(error = %e, "polling the revocation feed failed");
                }
            },
        ),
        // PostgreSQL LISTEN for revocations (ends at once on SQLite); retried every
        // poll interval after a failure, the poll covering meanwhile.
        every(
            config.revocations.poll_interval,
            gatehouse,
            |g| async move {
                if let Err(e) = g.listen_for_revocations().await {
                    tracing::warn!(error = %e, "listening for revocations failed");
                }
            },
        ),
    ])
}

fn every<F, Fut>(
    period: std::time::Duration,
    gatehouse: Gatehouse,
    work: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Gatehouse) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            work(gatehouse.clone()).await;
        }
    })
}
