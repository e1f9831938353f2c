//! Password hashing: the default parameters, the concurrency limit with 503 + Retry-After,
//! and hashing off the HTTP worker threads.

use gatehouse_entity::users;
use gatehouse_tests::{Backend, TestServer, error_code};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_parameters_are_owasp_argon2id() {
    let server = TestServer::start_with(Backend::Sqlite, &[]).await;
    server
        .verified_user("hd@example.com", "hd password 1")
        .await;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq("hd@example.com"))
        .one(server.gatehouse.db())
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash
    );
}

/// Slow hashes, one at a time, nobody waiting.
const ONE_SLOW_HASH_AT_A_TIME: &str = "[password]\nargon2_memory_kib = 19456\nargon2_iterations = 40\nmax_concurrent_hashes = 1\nmax_queued_hashes = 0\noverload_retry_after = \"2s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let server = TestServer::start_with(Backend::Sqlite, &[ONE_SLOW_HASH_AT_A_TIME]).await;
    let logins = (0..4).map(|i| {
        server.post(
            "/api/v1/login",
            json!({ "email": format!("h{i}@example.com"), "password": "some password" }),
        )
    });
    let responses = futures_util::future::join_all(logins).await;
    let mut refused = 0;
    let mut answered = 0;
    for response in responses {
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "2");
                assert_eq!(error_code(response).await, "overloaded");
                refused += 1;
            }
            StatusCode::UNAUTHORIZED => answered += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(answered >= 1, "at least one login was hashed");
    assert!(
        refused >= 1,
        "the others were refused instead of queued without bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_does_not_block_the_http_worker() {
    // One HTTP worker: if hashing ran on it, nothing else could be served meanwhile.
    let server = TestServer::start_with(Backend::Sqlite, &[ONE_SLOW_HASH_AT_A_TIME]).await;
    let login = tokio::spawn({
        let http = server.http.clone();
        let url = server.url("/api/v1/login");
        async move {
            http.post(url)
                .json(&json!({ "email": "slow@example.com", "password": "some password" }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let hasher = server.gatehouse.hasher();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while hasher.hashes_in_progress() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the login started hashing");

    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        !login.is_finished(),
        "healthz was served while the hash was still running"
    );
    assert_eq!(hasher.hashes_in_progress(), 1);
    assert_eq!(login.await.unwrap(), StatusCode::UNAUTHORIZED);
}
