//! Liveness and readiness.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;

on_both_databases!(readiness_follows_the_database);

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
