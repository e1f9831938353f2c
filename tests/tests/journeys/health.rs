//! Liveness and readiness.

use gatehouse_server::error::UNAVAILABLE_RETRY_AFTER_SECONDS;
use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    readiness_follows_the_database,
    an_unreachable_database_answers_503_with_retry_after,
);

async fn readiness_follows_the_database(backend: Backend) {
    let server = TestServer::start(backend).await;
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.headers().contains_key("x-request-id"));

    server.gatehouse.db().close_by_ref().await.unwrap();
    let down = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(down).await, "database_unreachable");
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Every 503 tells clients when to come back: the readiness probe, the JSON API and the
/// OAuth endpoints alike.
async fn an_unreachable_database_answers_503_with_retry_after(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.gatehouse.db().close_by_ref().await.unwrap();

    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    let login = server
        .post(
            "/api/v1/login",
            json!({ "email": "ann@example.com", "password": "ann password" }),
        )
        .await;
    let token = server
        .post_form(
            "/oauth2/token",
            ("some-client", "some secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    for (what, response, code) in [
        ("readyz", ready, "database_unreachable"),
        ("login", login, "database_unreachable"),
        ("token", token, "database_unreachable"),
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert_eq!(
            response.headers()["retry-after"],
            UNAVAILABLE_RETRY_AFTER_SECONDS.to_string().as_str(),
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{what}");
    }
}
