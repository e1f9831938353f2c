//! Many requests that write, all at once: on SQLite, which has one writer, they queue for
//! Gatehouse's one write connection and every one of them succeeds; none fails on a lock
//! (503 `database_unreachable`) or with a 500. Concurrent refreshes of different sessions,
//! admins clearing a login lock (a transaction that reads, then writes) and logins, at
//! once; the same on PostgreSQL.

use futures_util::future::join_all;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, Tokens, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(concurrent_writes_all_succeed);

const REFRESHES: usize = 32;
const UNLOCKS: usize = 16;
const LOGINS: usize = 16;
/// Five failures lock an address, without a slow-down before.
const LOCKOUT: &str = "[lockout]\nmax_failures = 5\nslow_down_after = 1000\n";

async fn concurrent_writes_all_succeed(backend: Backend) {
    let server = TestServer::start_with(backend, &[FAST_HASHING, LOCKOUT]).await;
    let admin = server.admin("cw-admin@example.com").await;
    let user = server
        .verified_user("cw@example.com", "cw password 1")
        .await;
    let mut sessions = vec![user];
    while sessions.len() < REFRESHES {
        sessions.push(server.log_in("cw@example.com", "cw password 1").await);
    }
    let locked = server
        .verified_user("cw-locked@example.com", "cw locked password 1")
        .await;
    let me: Value = server
        .get_as(&locked.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let lock_path = format!("/api/v1/admin/users/{}/lock", me["id"].as_str().unwrap());
    // One account per concurrent login: concurrent logins to one address each reserve a
    // failure before hashing, and the lockout refuses those beyond its limit.
    for i in 0..LOGINS {
        server
            .verified_user(&format!("cw-login-{i}@example.com"), "cw login password 1")
            .await;
    }

    for round in 0..2 {
        // A lock to clear: five wrong passwords (the fifth starts it).
        for _ in 0..5 {
            let failed = server
                .post(
                    "/api/v1/login",
                    json!({ "email": "cw-locked@example.com", "password": "a guess" }),
                )
                .await;
            assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        }
        let refused = server
            .post(
                "/api/v1/login",
                json!({ "email": "cw-locked@example.com", "password": "cw locked password 1" }),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "locked");

        let refreshes = join_all(sessions.iter().map(|tokens| {
            server.post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": tokens.refresh }),
            )
        }));
        let unlocks = join_all((0..UNLOCKS).map(|_| server.delete_as(&admin.access, &lock_path)));
        let logins = join_all((0..LOGINS).map(|i| {
            server.post(
                "/api/v1/login",
                json!({ "email": format!("cw-login-{i}@example.com"), "password": "cw login password 1" }),
            )
        }));
        let (refreshes, unlocks, logins) = tokio::join!(refreshes, unlocks, logins);

        let mut next = Vec::new();
        for (i, response) in refreshes.into_iter().enumerate() {
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}, refresh {i}"
            );
            next.push(Tokens::from(response.json::<Value>().await.unwrap()));
        }
        for (i, response) in unlocks.into_iter().enumerate() {
            assert_eq!(
                response.status(),
                StatusCode::NO_CONTENT,
                "round {round}, unlock {i}"
            );
        }
        for (i, response) in logins.into_iter().enumerate() {
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}, login {i}"
            );
        }
        // The lock is over: its owner logs in again.
        server
            .log_in("cw-locked@example.com", "cw locked password 1")
            .await;
        sessions = next;
    }

    // Every rotated token is the one the chain continues with: each still refreshes.
    for (i, tokens) in sessions.iter().enumerate() {
        let response = server
            .post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": tokens.refresh }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "chain {i}");
    }
}
