//! What a database reader learns: no CSRF token of the hosted pages (the state holds a
//! seed the token is an HMAC of), and no address behind the login-failure counters
//! (keyed by an HMAC under a key derived from the master key, not a plain hash).

use gatehouse_entity::{browser_sessions, login_failures};
use gatehouse_tests::pages::{PageWalker, csrf_token};
use gatehouse_tests::{Backend, TestServer, on_both_databases};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    the_stored_session_state_cannot_forge_a_form,
    failure_counters_do_not_reveal_the_address,
);

async fn the_stored_session_state_cannot_forge_a_form(backend: Backend) {
    let server = TestServer::start(backend).await;
    let walker = PageWalker::new();
    let page = walker.get(&server.url("/forgot-password")).await;
    let token = csrf_token(&page.text().await.unwrap());

    let rows = browser_sessions::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let state = &rows[0].state;
    assert!(!state.contains(&token), "the CSRF token is stored: {state}");

    // Every value the database holds, posted as the token, is refused.
    let entries: std::collections::HashMap<String, String> = serde_json::from_str(state).unwrap();
    for value in entries.values() {
        let stored: Value = serde_json::from_str(value).unwrap_or(json!(value));
        let forged = walker
            .post(
                &server.url("/forgot-password"),
                &[
                    ("csrf_token", stored.as_str().unwrap_or_default()),
                    ("email", "ada@example.com"),
                ],
            )
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
    let real = walker
        .post(
            &server.url("/forgot-password"),
            &[("csrf_token", &token), ("email", "ada@example.com")],
        )
        .await;
    assert_eq!(real.status(), StatusCode::OK);
}

async fn failure_counters_do_not_reveal_the_address(backend: Backend) {
    let server = TestServer::start(backend).await;
    let refused = server
        .post(
            "/api/v1/login",
            json!({ "email": "ada@example.com", "password": "wrong password 1" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let keys: Vec<String> = login_failures::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.key_hash)
        .collect();
    assert_eq!(keys.len(), 1, "one counter for the address");
    let guesses: Vec<String> = [
        "email:ada@example.com",
        "login_email:ada@example.com",
        "ada@example.com",
        "ip:127.0.0.1",
        "login_ip:127.0.0.1",
    ]
    .iter()
    .map(|guess| hex_sha256(guess))
    .collect();
    for key in &keys {
        assert!(!guesses.contains(key), "{key} is an unkeyed hash");
    }
}

fn hex_sha256(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
