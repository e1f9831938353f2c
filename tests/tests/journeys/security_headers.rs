//! Security headers on every response; HSTS in production only.

use gatehouse_tests::{Backend, FAST_HASHING, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    for path in [
        "/healthz",
        "/api/v1/me",
        "/no/such/page",
        "/.well-known/jwks.json",
    ] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "no script is allowed: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS in development: {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_adds_hsts() {
    // TLS is terminated in front of Gatehouse in production; the header is what matters here.
    let production = "mode = \"production\"\nissuer = \"https://auth.example.com\"\n";
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, production]).await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}
