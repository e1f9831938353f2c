//! Rate limits: every class refuses over its limit with `429 rate_limited`, `Retry-After`
//! and the `RateLimit-Policy` / `RateLimit` headers, rendered as the route renders its
//! errors (JSON API, RFC 6749 body, the hosted form again); requests under the limit
//! carry `RateLimit`; GCRA has no window boundary that opens a second burst; per-account
//! limits hold across client IPs; only trusted proxies' forwarded headers are believed;
//! two instances on one Redis count together; an unreachable Redis fails closed (503) or
//! open as configured.

use std::time::Duration;

use gatehouse_core::Clock as _;
use gatehouse_server::config::Config;
use gatehouse_tests::pages::{PageWalker, csrf_token};
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code, on_both_databases};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// A `[rate_limit.<class>]` section.
fn limit(class: &str, per_ip: u32, per_account: u32, period: &str) -> String {
    format!(
        "[rate_limit.{class}]\nenabled = true\nper_ip = {per_ip}\nper_account = {per_account}\nperiod = \"{period}\"\n"
    )
}

/// A Redis backend with a key prefix of this test's own.
fn redis(prefix: &str, on_error: &str, url: &str) -> String {
    format!(
        "[rate_limit]\nbackend = \"redis\"\nredis_url = \"{url}\"\nredis_key_prefix = \"{prefix}\"\non_backend_error = \"{on_error}\"\n"
    )
}

async fn start(layers: &[&str]) -> TestServer {
    let mut all = vec![FAST_HASHING];
    all.extend_from_slice(layers);
    TestServer::start_with(Backend::Sqlite, &all).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header on a {} answer", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn api_login(server: &TestServer, email: &str, forwarded_for: Option<&str>) -> Response {
    let mut request = server
        .http
        .post(server.url("/api/v1/login"))
        .json(&json!({ "email": email, "password": "wrong password" }));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// A refusal: 429, Retry-After, both headers naming the policy, the JSON error.
async fn assert_refused_json(response: Response, policy: &str, quota: u32, window: u64) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    assert!(
        header(&response, "ratelimit-policy")
            .contains(&format!("\"{policy}\";q={quota};w={window}")),
        "{}",
        header(&response, "ratelimit-policy")
    );
    assert!(
        header(&response, "ratelimit").contains(&format!("\"{policy}\";r=0;t=")),
        "{}",
        header(&response, "ratelimit")
    );
    assert_eq!(error_code(response).await, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_over_the_ip_limit_is_refused_and_under_it_carries_ratelimit() {
    let server = start(&[&limit("login", 2, 100, "60s")]).await;
    let first = api_login(&server, "a@example.com", None).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&first, "ratelimit-policy"),
        "\"login-ip\";q=2;w=60, \"login-account\";q=100;w=60"
    );
    assert!(header(&first, "ratelimit").starts_with("\"login-ip\";r=1;t="));
    let second = api_login(&server, "b@example.com", None).await;
    assert!(header(&second, "ratelimit").starts_with("\"login-ip\";r=0;t="));
    assert_refused_json(
        api_login(&server, "c@example.com", None).await,
        "login-ip",
        2,
        60,
    )
    .await;
    // Other classes count on their own.
    let other = server
        .http
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert!(header(&other, "ratelimit").starts_with("\"api-ip\";r="));
    // The quota comes back with time.
    server.advance(Duration::from_secs(30));
    assert_eq!(
        api_login(&server, "d@example.com", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_opens_no_second_burst_at_a_window_boundary() {
    // 4 per minute: one every 15 s, bursts of at most 4.
    let server = start(&[&limit("api", 4, 0, "60s")]).await;
    // Just before a whole minute, where a fixed window would start afresh.
    let now = server.clock.now().timestamp();
    server.advance(Duration::from_secs((60 - now.rem_euclid(60) - 1) as u64));
    let get = || async {
        server
            .http
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .status()
    };
    for _ in 0..4 {
        assert_eq!(get().await, StatusCode::OK);
    }
    assert_eq!(get().await, StatusCode::TOO_MANY_REQUESTS);
    // Across the boundary: still refused (a fixed window would allow 4 more now).
    server.advance(Duration::from_secs(2));
    assert_eq!(get().await, StatusCode::TOO_MANY_REQUESTS);
    // One emission interval after the burst: exactly one more.
    server.advance(Duration::from_secs(13));
    assert_eq!(get().await, StatusCode::OK);
    assert_eq!(get().await, StatusCode::TOO_MANY_REQUESTS);
    // A whole quiet period: the whole burst again, and no more.
    server.advance(Duration::from_secs(60));
    for _ in 0..4 {
        assert_eq!(get().await, StatusCode::OK);
    }
    assert_eq!(get().await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_account_login_limit_holds_across_client_ips_and_letter_case() {
    let server = start(&[
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &limit("login", 100, 2, "60s"),
    ])
    .await;
    assert_eq!(
        api_login(&server, "victim@example.com", Some("198.51.100.1"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_login(&server, "Victim@Example.COM", Some("198.51.100.2"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_refused_json(
        api_login(&server, "victim@example.com", Some("198.51.100.3")).await,
        "login-account",
        2,
        60,
    )
    .await;
    // Another account from the same IPs is not affected.
    assert_eq!(
        api_login(&server, "other@example.com", Some("198.51.100.3"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_choose_its_ip_with_forwarded_headers() {
    // No trusted proxies: the socket peer is the client, whatever the headers say.
    let server = start(&[&limit("login", 2, 100, "60s")]).await;
    for (i, spoofed) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let response = server
            .http
            .post(server.url("/api/v1/login"))
            .header("x-forwarded-for", *spoofed)
            .header("forwarded", format!("for={spoofed}"))
            .json(&json!({ "email": format!("u{i}@example.com"), "password": "wrong password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = server
        .http
        .post(server.url("/api/v1/login"))
        .header("x-forwarded-for", "203.0.113.3")
        .header("forwarded", "for=203.0.113.3")
        .json(&json!({ "email": "u3@example.com", "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_refused_json(response, "login-ip", 2, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_chain_the_right_most_untrusted_address_is_the_client() {
    let server = start(&[
        "[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
        &limit("login", 1, 100, "60s"),
    ])
    .await;
    // The client wrote 6.6.6.6 itself; the edge proxy appended the address it saw.
    let first = api_login(
        &server,
        "a@example.com",
        Some("6.6.6.6, 198.51.100.7, 10.0.0.2"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    // A new made-up left part does not make it a new client.
    let again = api_login(
        &server,
        "b@example.com",
        Some("7.7.7.7, 198.51.100.7, 10.0.0.3"),
    )
    .await;
    assert_refused_json(again, "login-ip", 1, 60).await;
    // A different real client behind the same proxies has its own quota.
    let other = api_login(&server, "c@example.com", Some("198.51.100.8, 10.0.0.2")).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_mail_and_password_reset_count_per_address_and_token() {
    let server = start(&[
        &limit("signup", 100, 1, "1h"),
        &limit("mail", 100, 3, "1h"),
        &limit("password_reset", 100, 1, "15m"),
    ])
    .await;
    let signup = |email: &'static str| {
        server.post(
            "/api/v1/signup",
            json!({ "email": email, "password": "a long password" }),
        )
    };
    assert_eq!(
        signup("new@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    assert_refused_json(signup("NEW@example.com").await, "signup-account", 1, 3600).await;
    // The mail class counts per recipient: the sign-up was one, two more pass.
    let resend = server
        .post(
            "/api/v1/email/verify/resend",
            json!({ "email": "new@example.com" }),
        )
        .await;
    assert_eq!(resend.status(), StatusCode::ACCEPTED);
    let forgot = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "new@example.com" }),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let bomb = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "new@example.com" }),
        )
        .await;
    assert_refused_json(bomb, "mail-account", 3, 3600).await;
    // Another recipient is not affected.
    let other = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "else@example.com" }),
        )
        .await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    // One reset token: one try per period.
    let reset = || {
        server.post(
            "/api/v1/password/reset",
            json!({ "token": "guessed", "password": "a new long password" }),
        )
    };
    assert_ne!(reset().await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_refused_json(reset().await, "password_reset-account", 1, 900).await;
}

async fn oauth_refused(response: Response, policy: &str) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
    assert!(header(&response, "ratelimit-policy").contains(&format!("\"{policy}\";q=")));
    assert!(header(&response, "ratelimit").contains(&format!("\"{policy}\";r=0;t=")));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert!(body.get("message").is_none(), "an RFC 6749 body: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_endpoints_answer_in_rfc_6749_form_per_ip_and_per_client() {
    let server = start(&[
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &limit("token", 100, 2, "60s"),
        &limit("introspect", 1, 100, "60s"),
    ])
    .await;
    let admin = server.admin("admin@example.com").await;
    let (id, secret) = server.service_client(&admin, &[]).await;
    let token = |ip: &'static str| {
        server
            .http
            .post(server.url("/oauth2/token"))
            .header("x-forwarded-for", ip)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // Per client, across IPs.
    assert_eq!(
        token("198.51.100.1").await.unwrap().status(),
        StatusCode::OK
    );
    let second = token("198.51.100.2").await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert!(header(&second, "ratelimit").contains("\"token-account\";r=0;t="));
    oauth_refused(token("198.51.100.3").await.unwrap(), "token-account").await;
    // Introspection per IP.
    let introspect = || server.post_form("/oauth2/introspect", (&id, &secret), &[("token", "x")]);
    assert_eq!(introspect().await.status(), StatusCode::OK);
    oauth_refused(introspect().await, "introspect-ip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_login_form_comes_back_with_a_message() {
    let server = start(&[&limit("login", 1, 100, "60s")]).await;
    let walker = PageWalker::new();
    let first = walker
        .log_in(&server.base_url, "a@example.com", "wrong password")
        .await;
    assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    let refused = walker
        .log_in(&server.base_url, "a@example.com", "wrong password")
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "retry-after").parse::<u64>().unwrap() >= 1);
    assert!(header(&refused, "ratelimit").contains("\"login-ip\";r=0;t="));
    let html = refused.text().await.unwrap();
    assert!(html.contains("Too many requests. Try again in"), "{html}");
    // The form itself, ready for another try, with what was typed.
    assert!(!csrf_token(&html).is_empty());
    assert!(html.contains("a@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_limits_let_everything_through() {
    let server = start(&[
        &limit("login", 1, 1, "60s"),
        "[rate_limit]\nenabled = false\n",
    ])
    .await;
    for _ in 0..3 {
        let response = api_login(&server, "a@example.com", None).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().get("ratelimit").is_none());
    }
    // One class off, the others on.
    let server = start(&[
        &limit("login", 1, 1, "60s"),
        "[rate_limit.login]\nenabled = false\n",
        &limit("api", 1, 0, "60s"),
    ])
    .await;
    for _ in 0..3 {
        assert_ne!(
            api_login(&server, "a@example.com", None).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let get = || {
        server
            .http
            .get(server.url("/.well-known/openid-configuration"))
            .send()
    };
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(get().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn two_instances_on_one_redis_count_together(backend: Backend) {
    let prefix = format!("gatehouse-test-{}:", uuid::Uuid::new_v4());
    let redis = redis(&prefix, "closed", "redis://127.0.0.1:6379");
    let login = limit("login", 3, 100, "60s");
    let first = TestServer::start_with(backend, &[FAST_HASHING, &redis, &login]).await;
    let second = first.another_instance().await;
    assert_eq!(
        api_login(&first, "a@example.com", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_login(&second, "b@example.com", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let third = api_login(&first, "c@example.com", None).await;
    assert!(header(&third, "ratelimit").starts_with("\"login-ip\";r=0;t="));
    assert_refused_json(
        api_login(&second, "d@example.com", None).await,
        "login-ip",
        3,
        60,
    )
    .await;
    // The shared (manual) clock moves both: one emission interval frees one request.
    first.advance(Duration::from_secs(20));
    assert_eq!(
        api_login(&second, "e@example.com", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_refused_json(
        api_login(&first, "f@example.com", None).await,
        "login-ip",
        3,
        60,
    )
    .await;
}

async fn an_unreachable_redis_fails_closed_or_open(backend: Backend) {
    let prefix = format!("gatehouse-test-{}:", uuid::Uuid::new_v4());
    // Nothing listens on port 1.
    let closed = redis(&prefix, "closed", "redis://127.0.0.1:1");
    let server = TestServer::start_with(backend.clone(), &[FAST_HASHING, &closed]).await;
    for _ in 0..3 {
        let response = api_login(&server, "a@example.com", None).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
        assert_eq!(error_code(response).await, "rate_limit_unavailable");
    }
    let token = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = token.json().await.unwrap();
    // The same stable code as the JSON API (an RFC 6749 extension code).
    assert_eq!(body["error"], "rate_limit_unavailable");
    let limiter = server.gatehouse.rate_limiter().unwrap();
    assert_eq!(limiter.backend_errors(), 4, "every failed check is counted");
    let logged = gatehouse_tests::logs::captured()
        .matches(&prefix_free_outage_message())
        .count();
    assert!(logged >= 1, "the outage is logged");

    let open = redis(&prefix, "open", "redis://127.0.0.1:1");
    let server = TestServer::start_with(
        backend,
        &[FAST_HASHING, &open, &limit("login", 1, 1, "60s")],
    )
    .await;
    for _ in 0..3 {
        let response = api_login(&server, "a@example.com", None).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "fail open: requests pass unlimited"
        );
        assert!(response.headers().get("ratelimit").is_none());
    }
    assert_eq!(server.gatehouse.rate_limiter().unwrap().backend_errors(), 6);
}

fn prefix_free_outage_message() -> String {
    "the rate limit backend does not answer".to_owned()
}

on_both_databases!(
    two_instances_on_one_redis_count_together,
    an_unreachable_redis_fails_closed_or_open
);

#[test]
fn the_removed_trust_forwarded_headers_is_refused_naming_trusted_proxies() {
    let error = Config::load_with(None, &["[server]\ntrust_forwarded_headers = true\n"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.trusted_proxies"), "{error}");
    let error = Config::load_with(
        None,
        &["[server]\ntrusted_proxies = [\"not an address\"]\n"],
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("server.trusted_proxies"), "{error}");
    let error = Config::load_with(
        None,
        &["mode = \"production\"\n[server]\ntrusted_proxies = [\"0.0.0.0/0\"]\n"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("server.trusted_proxies: `0.0.0.0/0` trusts every address"),
        "{error}"
    );
}

/// A stranger hammering an address spends the address's login quota, not the owner's:
/// a client with a device token of that account is counted under its own key (found by
/// attacking the per-account limit: without this it undid the lockout's device rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_spend_the_login_quota_of_the_owners_device() {
    let server = start(&[
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &limit("login", 100, 2, "60s"),
    ])
    .await;
    server
        .verified_user("owner@example.com", "owner's password")
        .await;
    let login = |body: Value| {
        server
            .http
            .post(server.url("/api/v1/login"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&body)
            .send()
    };
    // The owner's app logged in once before (verified_user used one of the two requests
    // of the address's quota; this is the second) and kept its device token.
    let first = login(json!({ "email": "owner@example.com", "password": "owner's password" }))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let device_token = first.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The stranger finds the address's quota used up...
    assert_refused_json(
        api_login(&server, "owner@example.com", Some("203.0.113.9")).await,
        "login-account",
        2,
        60,
    )
    .await;
    // ...and a made-up device token does not open a quota of its own.
    let forged = login(json!({
        "email": "owner@example.com",
        "password": "wrong password",
        "device_token": format!("{}x", &device_token[..device_token.len() - 1]),
    }))
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    // The owner's app, with its device token, still logs in.
    let owner = login(json!({
        "email": "owner@example.com",
        "password": "owner's password",
        "device_token": device_token,
    }))
    .await
    .unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
}

/// A percent-encoded path reaches the same handler and is counted in the same class
/// (found by attacking the classifier: `/api/v1/%6Cogin` used to count as `api`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_path_is_counted_in_the_class_of_its_route() {
    let server = start(&[&limit("login", 1, 100, "60s")]).await;
    assert_eq!(
        api_login(&server, "someone@example.com", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let encoded = server
        .http
        .post(format!("{}/api/v1/%6Cogin", server.base_url))
        .json(&json!({ "email": "someone@example.com", "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_refused_json(encoded, "login-ip", 1, 60).await;
}

/// A public client can be named by anyone: its per-client quota is counted per client
/// IP too, so a stranger naming it cannot refuse its users their tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_naming_a_public_client_cannot_spend_its_users_quota() {
    let server = start(&[
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &limit("token", 100, 2, "60s"),
    ])
    .await;
    let admin = server.admin("admin@example.com").await;
    let (client_id, _) = server
        .register_client(
            &admin,
            json!({
                "name": "Public app",
                "type": "public",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": [],
                "redirect_uris": ["http://127.0.0.1:9/callback"],
            }),
        )
        .await;
    let token = |ip: &'static str| {
        server
            .http
            .post(server.url("/oauth2/token"))
            .header("x-forwarded-for", ip)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "not a token"),
                ("client_id", client_id.as_str()),
            ])
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            token("203.0.113.9").await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    oauth_refused(token("203.0.113.9").await.unwrap(), "token-account").await;
    // A user of the app elsewhere still reaches the grant (and is told about its token).
    assert_eq!(
        token("198.51.100.20").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}
