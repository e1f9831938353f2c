//! Prometheus metrics: after a journey (sign-up, logins that succeed and fail, a
//! revocation) `GET /metrics` shows each counter moved by what happened, with the route
//! pattern as the label, never the path; the public listener serves it only with the
//! bearer token; a separate `metrics.bind` listener serves it alone, and then the public
//! listener has none.

use std::time::Duration;

use gatehouse_core::Role;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, on_both_databases};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

on_both_databases!(
    a_journey_moves_every_counter_by_what_happened,
    the_public_listener_serves_metrics_only_with_the_token,
    a_separate_listener_serves_metrics_and_the_public_one_does_not,
    rate_limit_refusals_are_counted_by_class_and_scope,
    failed_and_dead_mail_is_counted,
    sessions_past_their_lifetime_or_idle_are_not_active,
    each_endpoint_sends_the_statements_it_needs_and_no_more,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_gauges_show_the_queue() {
    the_hashing_gauges_show_the_queue_on(Backend::Sqlite).await
}

const TOKEN: &str = "metrics token of the journeys";

fn with_token() -> String {
    format!("[metrics]\nenabled = true\nbearer_token = \"{TOKEN}\"\n")
}

async fn start(backend: Backend, layers: &[&str]) -> TestServer {
    let mut all = vec![FAST_HASHING];
    all.extend_from_slice(layers);
    TestServer::start_with(backend, &all).await
}

/// The scrape of the public listener, with the token.
async fn scrape(server: &TestServer) -> Metrics {
    let response = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Metrics(response.text().await.unwrap())
}

/// A scrape's text.
struct Metrics(String);

impl Metrics {
    /// The value of the sample `name` whose labels include all of `labels`, summed over
    /// the samples that match; 0 when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (sample, label_text) = match series.split_once('{') {
                    Some((sample, rest)) => (sample, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let matches = sample == name
                    && labels.iter().all(|(key, value)| {
                        label_text
                            .split(',')
                            .any(|pair| pair == format!("{key}=\"{value}\""))
                    });
                matches.then(|| value.parse::<f64>().unwrap())
            })
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.lines().any(|line| line.starts_with(name))
    }
}

/// Scrapes until `name{labels}` reaches `at_least` (the mail worker counts a sent mail
/// right after the SMTP server took it), for at most 10 s.
async fn scrape_until(
    server: &TestServer,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> Metrics {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let metrics = scrape(server).await;
            if metrics.value(name, labels) >= at_least {
                return metrics;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} {labels:?} never reached {at_least}"))
}

async fn a_journey_moves_every_counter_by_what_happened(backend: Backend) {
    let server = start(backend, &[&with_token()]).await;
    // The revocation feed's first read only sets where this instance starts counting.
    server.gatehouse.poll_revocations().await.unwrap();
    let before = scrape(&server).await;
    assert_eq!(before.value("gatehouse_signups_total", &[]), 0.0);
    assert_eq!(before.value("gatehouse_sessions_active", &[]), 0.0);
    let hashes_before = before.value("gatehouse_password_hash_duration_seconds_count", &[]);

    // One sign-up, verified; one sign-up with the same address; one login that works
    // and one with a wrong password.
    let ann = server
        .verified_user("ann@example.com", "ann password 1")
        .await;
    let again = server
        .post(
            "/api/v1/signup",
            json!({ "email": "ann@example.com", "password": "another password" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    server
        .mail
        .wait_for("ann@example.com", "Sign-up attempt")
        .await;
    let wrong = server
        .post(
            "/api/v1/login",
            json!({ "email": "ann@example.com", "password": "not the password" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let during = scrape(&server).await;
    assert_eq!(during.value("gatehouse_sessions_active", &[]), 1.0);

    // Revoke the session by id: a route with a path parameter.
    let session = ann.session_id.to_string();
    let revoked = server
        .delete_as(&ann.access, &format!("/api/v1/sessions/{session}"))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    server.gatehouse.poll_revocations().await.unwrap();
    let unmatched = server
        .http
        .get(server.url("/no/such/page-4f1d2c"))
        .send()
        .await
        .unwrap();
    assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);

    let after = scrape_until(
        &server,
        "gatehouse_mail_total",
        &[("kind", "account_exists"), ("event", "sent")],
        1.0,
    )
    .await;
    let signups = |outcome| after.value("gatehouse_signups_total", &[("outcome", outcome)]);
    assert_eq!(signups("created"), 1.0);
    assert_eq!(signups("existing_address"), 1.0);
    let logins = |outcome| after.value("gatehouse_logins_total", &[("outcome", outcome)]);
    assert_eq!(logins("success"), 1.0);
    assert_eq!(logins("invalid_credentials"), 1.0);
    assert_eq!(after.value("gatehouse_logins_total", &[]), 2.0);
    assert_eq!(
        after.value(
            "gatehouse_session_revocations_total",
            &[("reason", "revoked_by_user")]
        ),
        1.0
    );
    assert_eq!(after.value("gatehouse_session_revocations_total", &[]), 1.0);
    assert_eq!(after.value("gatehouse_sessions_active", &[]), 0.0);
    for kind in ["verify_email", "account_exists"] {
        assert_eq!(
            after.value(
                "gatehouse_mail_total",
                &[("kind", kind), ("event", "queued")]
            ),
            1.0,
            "{kind}"
        );
    }
    let after = scrape_until(
        &server,
        "gatehouse_mail_total",
        &[("kind", "verify_email"), ("event", "sent")],
        1.0,
    )
    .await;
    assert_eq!(
        after.value("gatehouse_mail_total", &[("event", "failed")]),
        0.0
    );
    // Two sign-ups hash once each; the two logins verify once each.
    assert_eq!(
        after.value("gatehouse_password_hash_duration_seconds_count", &[]) - hashes_before,
        4.0
    );
    assert_eq!(after.value("gatehouse_password_hash_queue_depth", &[]), 0.0);
    assert!(after.has("gatehouse_password_hashes_in_progress"));
    assert_eq!(after.value("gatehouse_db_pool_max_connections", &[]), 5.0);
    assert!(after.value("gatehouse_db_pool_connections", &[("state", "idle")]) >= 0.0);
    assert!(after.has("gatehouse_db_pool_connections{state=\"in_use\"}"));

    // Requests by route pattern, method and status; the path itself is no label.
    let requests = |method, route, status| {
        after.value(
            "gatehouse_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "/api/v1/login", "200"), 1.0);
    assert_eq!(requests("POST", "/api/v1/login", "401"), 1.0);
    assert_eq!(requests("POST", "/api/v1/signup", "202"), 2.0);
    assert_eq!(requests("DELETE", "/api/v1/sessions/{id}", "204"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(
        after.value(
            "gatehouse_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/api/v1/login"),
                ("status", "401")
            ],
        ),
        1.0
    );
    assert!(!after.0.contains(&session), "a session id became a label");
    assert!(!after.0.contains("page-4f1d2c"), "a path became a label");
}

async fn the_public_listener_serves_metrics_only_with_the_token(backend: Backend) {
    let server = start(backend.clone(), &[&with_token()]).await;
    let without = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    let wrong = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("metrics token of the journeyz")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let prefix = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(&TOKEN[..TOKEN.len() - 1])
        .send()
        .await
        .unwrap();
    assert_eq!(prefix.status(), StatusCode::UNAUTHORIZED);
    let right = scrape(&server).await;
    assert!(right.has("gatehouse_sessions_active"));
    // The refused scrapes were counted like any request, under the route pattern.
    assert_eq!(
        right.value(
            "gatehouse_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        3.0
    );

    // Off by default: no /metrics at all.
    let off = TestServer::start(backend).await;
    let response = off.http.get(off.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn a_separate_listener_serves_metrics_and_the_public_one_does_not(backend: Backend) {
    let server = start(
        backend,
        &["[metrics]\nenabled = true\nbind = \"127.0.0.1:0\"\n"],
    )
    .await;
    let metrics_url = server.metrics_url.clone().expect("a metrics listener");
    let public = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let healthz = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);

    let response = server
        .http
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = Metrics(response.text().await.unwrap());
    let requests = |route, status| {
        metrics.value(
            "gatehouse_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/healthz", "200"), 1.0);
    assert_eq!(requests("unmatched", "404"), 1.0);
    // The metrics listener serves nothing else.
    let other = server
        .http
        .get(format!("{metrics_url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

async fn rate_limit_refusals_are_counted_by_class_and_scope(backend: Backend) {
    let server = start(
        backend,
        &[
            &with_token(),
            "[rate_limit.signup]\nenabled = true\nper_ip = 1\nper_account = 1000\nperiod = \"1h\"\n",
        ],
    )
    .await;
    let signup = |email: &'static str| {
        server.post(
            "/api/v1/signup",
            json!({ "email": email, "password": "a fine password" }),
        )
    };
    assert_eq!(
        signup("one@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    for email in ["two@example.com", "three@example.com"] {
        assert_eq!(signup(email).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let metrics = scrape(&server).await;
    assert_eq!(
        metrics.value(
            "gatehouse_rate_limit_rejections_total",
            &[("class", "signup"), ("scope", "ip")]
        ),
        2.0
    );
    assert_eq!(
        metrics.value("gatehouse_rate_limit_rejections_total", &[]),
        2.0
    );
    assert_eq!(
        metrics.value("gatehouse_signups_total", &[("outcome", "created")]),
        1.0
    );
}

async fn failed_and_dead_mail_is_counted(backend: Backend) {
    let server = start(
        backend,
        &[&with_token(), "[mail.outbox]\nmax_attempts = 2\n"],
    )
    .await;
    server
        .gatehouse
        .create_user(
            "dead@example.com",
            SecretString::from("a password 1"),
            Role::User,
            true,
        )
        .await
        .unwrap();
    server.mail.stop();
    let forgot = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "dead@example.com" }),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let reset = |event| [("kind", "reset_password"), ("event", event)];
    let tried = scrape_until(&server, "gatehouse_mail_total", &reset("failed"), 1.0).await;
    assert_eq!(tried.value("gatehouse_mail_total", &reset("queued")), 1.0);
    assert_eq!(tried.value("gatehouse_mail_total", &reset("dead")), 0.0);
    // Past the first retry (mail.outbox.first_retry_after): the last attempt fails too.
    server.advance(Duration::from_secs(31));
    let dead = scrape_until(&server, "gatehouse_mail_total", &reset("dead"), 1.0).await;
    assert_eq!(dead.value("gatehouse_mail_total", &reset("failed")), 2.0);
    assert_eq!(dead.value("gatehouse_mail_total", &reset("dead")), 1.0);
    assert_eq!(dead.value("gatehouse_mail_total", &reset("sent")), 0.0);
}

async fn sessions_past_their_lifetime_or_idle_are_not_active(backend: Backend) {
    // Past its lifetime (the idle timeout is longer).
    let short = start(
        backend.clone(),
        &[
            &with_token(),
            "[sessions]\nlifetime = \"1h\"\nidle_timeout = \"7d\"\n",
        ],
    )
    .await;
    short
        .verified_user("ann@example.com", "ann password 1")
        .await;
    let active = |m: &Metrics| m.value("gatehouse_sessions_active", &[]);
    assert_eq!(active(&scrape(&short).await), 1.0);
    short.advance(Duration::from_secs(61 * 60));
    assert_eq!(active(&scrape(&short).await), 0.0);

    // Idle past sessions.idle_timeout (7 days), well within its lifetime (30 days).
    let idle = start(backend, &[&with_token()]).await;
    idle.verified_user("bo@example.com", "bo password 12").await;
    assert_eq!(active(&scrape(&idle).await), 1.0);
    idle.advance(Duration::from_secs(6 * 24 * 3600));
    assert_eq!(active(&scrape(&idle).await), 1.0);
    idle.advance(Duration::from_secs(24 * 3600 + 60));
    assert_eq!(active(&scrape(&idle).await), 0.0);
}

/// Slow hashes, one at a time, one waiting at most.
const ONE_SLOW_HASH_AND_ONE_WAITING: &str = "[password]\nargon2_memory_kib = 19456\nargon2_iterations = 40\nmax_concurrent_hashes = 1\nmax_queued_hashes = 1\n";

async fn the_hashing_gauges_show_the_queue_on(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[FAST_HASHING, ONE_SLOW_HASH_AND_ONE_WAITING, &with_token()],
    )
    .await;
    let login = |i: usize| {
        let http = server.http.clone();
        let url = server.url("/api/v1/login");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({ "email": format!("q{i}@example.com"), "password": "some password" }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let first = login(1);
    let hasher = server.gatehouse.hasher();
    tokio::time::timeout(Duration::from_secs(10), async {
        while hasher.hashes_in_progress() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first login started hashing");
    let second = login(2);
    tokio::time::timeout(Duration::from_secs(10), async {
        while hasher.hashes_waiting() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the second login waits for the slot");
    let busy = scrape(&server).await;
    assert_eq!(
        busy.value("gatehouse_password_hashes_in_progress", &[]),
        1.0
    );
    assert_eq!(busy.value("gatehouse_password_hash_queue_depth", &[]), 1.0);
    assert_eq!(first.await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(second.await.unwrap(), StatusCode::UNAUTHORIZED);
    let idle = scrape(&server).await;
    assert_eq!(
        idle.value("gatehouse_password_hashes_in_progress", &[]),
        0.0
    );
    assert_eq!(idle.value("gatehouse_password_hash_queue_depth", &[]), 0.0);
    assert_eq!(
        idle.value("gatehouse_password_hash_duration_seconds_count", &[]),
        2.0
    );
}

/// The statements each request sends, from `gatehouse_db_statements_total`: the figures
/// docs/performance.md lists. A check that gains a query fails here. Background work that
/// would send statements meanwhile (the outbox, the revocation poll, key reloads,
/// back-channel delivery) is put off for the test's length, and each figure is the fewest
/// of several tries: what still runs in the background can only add to a try.
async fn each_endpoint_sends_the_statements_it_needs_and_no_more(backend: Backend) {
    let quiet = "[mail.outbox]\npoll_interval = \"1h\"\n[revocations]\npoll_interval = \"1h\"\n\
                 [keys]\nreload_interval = \"50m\"\n[backchannel_logout]\npoll_interval = \"1h\"\n";
    let server = start(backend, &[&with_token(), quiet]).await;
    let admin = server.admin("root@example.com").await;
    let (client, secret) = server.service_client(&admin, &["orders:read"]).await;
    let ann = server.admin("ann@example.com").await;
    let counter = Statements::new(&server).await;

    let me = || async {
        for _ in 0..CACHED_CHECKS {
            let response = server.get_as(&ann.access, "/api/v1/me").await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let introspect = || async {
        for _ in 0..CACHED_CHECKS {
            let response = server
                .post_form(
                    "/oauth2/introspect",
                    (&client, &secret),
                    &[("token", &ann.access)],
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["active"], true);
        }
    };
    let service_token = || async {
        for _ in 0..CACHED_CHECKS {
            let response = server
                .post_form(
                    "/oauth2/token",
                    (&client, &secret),
                    &[("grant_type", "client_credentials")],
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    // The first of each reads the session, its user and the client once (kept for
    // read_cache.ttl); the checks after need none. A try that outlives the TTL (a slow,
    // busy machine) reads them again, so these take the fewest of many short tries.
    assert_eq!(counter.fewest_of(10, me).await, 0.0, "GET /api/v1/me");
    assert_eq!(
        counter.fewest_of(10, introspect).await,
        0.0,
        "POST /oauth2/introspect"
    );
    assert_eq!(
        counter.fewest_of(10, service_token).await,
        0.0,
        "POST /oauth2/token client_credentials"
    );

    // Each refresh presents the token the one before it got.
    let chain = std::sync::Mutex::new(ann.refresh.clone());
    let refresh = || async {
        let presented = chain.lock().unwrap().clone();
        let refreshed = server
            .post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": presented }),
            )
            .await;
        assert_eq!(refreshed.status(), StatusCode::OK);
        let body: serde_json::Value = refreshed.json().await.unwrap();
        *chain.lock().unwrap() = body["refresh_token"].as_str().unwrap().to_owned();
    };
    assert_eq!(
        counter.fewest(refresh).await,
        REFRESH_STATEMENTS,
        "POST /api/v1/token/refresh"
    );
    let login = || async {
        server.log_in("ann@example.com", "admin password 1").await;
    };
    assert_eq!(
        counter.fewest(login).await,
        LOGIN_STATEMENTS,
        "POST /api/v1/login"
    );
}

/// Reads `gatehouse_db_statements_total` around requests.
struct Statements<'a> {
    server: &'a TestServer,
    /// What one scrape costs (it counts the active sessions): the fewest of five.
    scrape: f64,
}

impl<'a> Statements<'a> {
    async fn new(server: &'a TestServer) -> Self {
        let mut counter = Self {
            server,
            scrape: 0.0,
        };
        let mut scrape = f64::INFINITY;
        for _ in 0..5 {
            let before = counter.total().await;
            scrape = scrape.min(counter.total().await - before);
        }
        counter.scrape = scrape;
        counter
    }

    async fn total(&self) -> f64 {
        scrape(self.server)
            .await
            .value("gatehouse_db_statements_total", &[])
    }

    /// The fewest statements `action` sent in three tries.
    async fn fewest<F, Fut>(&self, action: F) -> f64
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.fewest_of(3, action).await
    }

    /// The fewest statements `action` sent in `tries` tries.
    async fn fewest_of<F, Fut>(&self, tries: usize, action: F) -> f64
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut fewest = f64::INFINITY;
        for _ in 0..tries {
            let before = self.total().await;
            action().await;
            fewest = fewest.min(self.total().await - before - self.scrape);
        }
        fewest
    }
}

/// Token checks in one try of a cached path: few, so that a try fits in the cache's TTL
/// even on a busy machine.
const CACHED_CHECKS: usize = 3;
/// Refresh, in its group's write transaction: one joined read of token, session and
/// user, the session touch, the claim and the next token (the client's row is read within
/// `read_cache.ttl`).
const REFRESH_STATEMENTS: f64 = 4.0;
/// Password login: the account and its lock and device reads, then one write transaction
/// (session, refresh token, device token, audit entry, lock bookkeeping).
const LOGIN_STATEMENTS: f64 = 10.0;
