//! The Prometheus metrics of one Gatehouse instance: a registry of its own (never the
//! process-wide default one, so that several instances in one process, as in the tests,
//! each count only their own work) and the counters the concepts move.
//!
//! Counters move where the work is done: sign-ups and logins when the operation ends,
//! mail when it is queued, sent, fails or is given up, HTTP requests in the server's
//! middleware. Gauges (active sessions, the database pool, the hashing queue) are read
//! when the metrics are scraped, by `Gatehouse::render_metrics`. Every label takes its
//! values from a fixed set (an outcome, a mail kind, a route pattern), never from what a
//! client sent, so the number of series stays bounded.
//!
//! Names and labels are listed in docs/operations.md ("Metrics").

use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of the HTTP request duration, in seconds: from a cached JWKS read to a
/// password login queued behind other hashes.
const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The counters and gauges of one instance.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    signups: IntCounterVec,
    logins: IntCounterVec,
    revocations: IntCounterVec,
    mail: IntCounterVec,
    pub(crate) sessions_active: IntGauge,
    pub(crate) db_pool_connections: IntGaugeVec,
    pub(crate) db_pool_max: IntGauge,
    db_statements: IntCounterVec,
    pub(crate) hash_queue_depth: IntGauge,
    pub(crate) hashes_in_progress: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What became of a sign-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new account, and its verification mail.
    Created,
    /// The address has an account: its owner is told (within the cooldown).
    ExistingAddress,
}

/// What happened to a mail in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailEvent {
    /// Written to the outbox (in the transaction that promises it).
    Queued,
    /// Accepted by the transport.
    Sent,
    /// One delivery attempt failed (it is retried, or given up).
    Failed,
    /// Given up after its last attempt, or refused for good.
    Dead,
}

impl MailEvent {
    fn name(self) -> &'static str {
        match self {
            MailEvent::Queued => "queued",
            MailEvent::Sent => "sent",
            MailEvent::Failed => "failed",
            MailEvent::Dead => "dead",
        }
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

impl Metrics {
    /// A fresh registry with every metric of the domain and of the HTTP layer.
    pub fn new() -> Self {
        let http_requests = counter(
            "gatehouse_http_requests_total",
            "HTTP requests answered, by method, route pattern and status.",
            &["method", "route", "status"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time from the request's arrival to its response, by method, route pattern and status.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|e| unreachable!("metric gatehouse_http_request_duration_seconds: {e}"));
        let signups = counter(
            "gatehouse_signups_total",
            "Sign-ups, by outcome: created (a new account) or existing_address.",
            &["outcome"],
        );
        let logins = counter(
            "gatehouse_logins_total",
            "Password logins, by outcome.",
            &["outcome"],
        );
        let revocations = counter(
            "gatehouse_session_revocations_total",
            "Sessions revoked by any instance, as this one read them from the revocation feed (so only committed revocations), by reason.",
            &["reason"],
        );
        let mail = counter(
            "gatehouse_mail_total",
            "Mail through the outbox, by kind and event: queued, sent, failed (one attempt), dead.",
            &["kind", "event"],
        );
        let sessions_active = gauge(
            "gatehouse_sessions_active",
            "Sessions neither revoked, expired nor idle past sessions.idle_timeout (all instances: read from the database at scrape time).",
        );
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "gatehouse_db_pool_connections",
                "Connections of this instance's database pool, by state: in_use or idle.",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| unreachable!("metric gatehouse_db_pool_connections: {e}"));
        let db_pool_max = gauge(
            "gatehouse_db_pool_max_connections",
            "The most connections the pool opens (database.max_connections).",
        );
        let db_statements = counter(
            "gatehouse_db_statements_total",
            "SQL statements this instance sent, by pool: reads or writes (on PostgreSQL both are one pool).",
            &["pool"],
        );
        let hash_queue_depth = gauge(
            "gatehouse_password_hash_queue_depth",
            "Password hashes waiting for a hashing slot (at most password.max_queued_hashes).",
        );
        let hashes_in_progress = gauge(
            "gatehouse_password_hashes_in_progress",
            "Password hashes being computed (at most password.max_concurrent_hashes).",
        );
        let registry = Registry::new();
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(signups.clone()),
            Box::new(logins.clone()),
            Box::new(revocations.clone()),
            Box::new(mail.clone()),
            Box::new(sessions_active.clone()),
            Box::new(db_pool_connections.clone()),
            Box::new(db_pool_max.clone()),
            Box::new(db_statements.clone()),
            Box::new(hash_queue_depth.clone()),
            Box::new(hashes_in_progress.clone()),
        ];
        for collector in collectors {
            // A fresh registry and distinct names: registering cannot fail.
            registry
                .register(collector)
                .unwrap_or_else(|e| unreachable!("registering a metric: {e}"));
        }
        Self {
            registry,
            http_requests,
            http_duration,
            signups,
            logins,
            revocations,
            mail,
            sessions_active,
            db_pool_connections,
            db_pool_max,
            db_statements,
            hash_queue_depth,
            hashes_in_progress,
        }
    }

    /// Counts every statement `conn` sends (SeaORM's metric callback, which transactions
    /// begun from it inherit) under `pool`.
    pub(crate) fn count_statements(&self, conn: &mut sea_orm::DatabaseConnection, pool: &str) {
        let statements = self.db_statements.with_label_values(&[pool]);
        conn.set_metric_callback(move |_| statements.inc());
    }

    /// One answered HTTP request. `route` is the matched route pattern
    /// (`/api/v1/admin/users/{id}`), never the path itself.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// One sign-up that ended as `outcome`.
    pub fn signup(&self, outcome: SignupOutcome) {
        let outcome = match outcome {
            SignupOutcome::Created => "created",
            SignupOutcome::ExistingAddress => "existing_address",
        };
        self.signups.with_label_values(&[outcome]).inc();
    }

    /// One password login that ended as `outcome` (`success`, or an error code).
    pub fn login(&self, outcome: &'static str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    /// `count` sessions revoked for `reason`.
    pub fn revoked(&self, reason: &str, count: u64) {
        self.revocations.with_label_values(&[reason]).inc_by(count);
    }

    /// A mail of `kind` went through `event`.
    pub fn mail(&self, kind: &str, event: MailEvent) {
        self.mail.with_label_values(&[kind, event.name()]).inc();
    }

    /// The text exposition of every registered metric and of `more` (the collectors the
    /// hasher and the rate limiter keep), sorted by name.
    pub fn render(&self, more: Vec<MetricFamily>) -> String {
        let mut families = self.registry.gather();
        families.extend(more.into_iter().filter(|f| !f.get_metric().is_empty()));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "encoding the metrics failed");
                String::new()
            })
    }
}
