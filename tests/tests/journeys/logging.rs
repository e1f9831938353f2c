//! A whole journey's logs hold no password, token or hash of either.

use gatehouse_core::platform::secrets::token_hash;
use gatehouse_entity::users;
use gatehouse_tests::{Backend, TestServer, logs, token_of};
use sea_orm::EntityTrait;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut secrets: Vec<String> = vec![
        "first secret pw".into(),
        "second secret pw".into(),
        "third secret pw".into(),
    ];

    let verify_link = server.sign_up("log@example.com", "first secret pw").await;
    let verify_token = token_of(&verify_link);
    server
        .http
        .get(server.url(&format!("/verify-email?token={verify_token}")))
        .send()
        .await
        .unwrap();
    server
        .post("/api/v1/email/verify", json!({ "token": verify_token }))
        .await;
    server
        .post(
            "/api/v1/login",
            json!({ "email": "log@example.com", "password": "wrong secret pw" }),
        )
        .await;
    secrets.push("wrong secret pw".into());
    let tokens = server.log_in("log@example.com", "first secret pw").await;
    server.get_as(&tokens.access, "/api/v1/me").await;
    let refreshed: serde_json::Value = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    // A reused, stale refresh token is logged as an incident, without the token.
    server.advance(std::time::Duration::from_secs(11));
    server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    let relogin = server.log_in("log@example.com", "first secret pw").await;
    let new_access = relogin.access.clone();
    server
        .post_as(
            &new_access,
            "/api/v1/password/change",
            json!({ "current_password": "first secret pw", "new_password": "second secret pw" }),
        )
        .await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "log@example.com" }),
        )
        .await;
    let reset_token = token_of(
        &server
            .mail
            .wait_for("log@example.com", "Reset your")
            .await
            .link(),
    );
    server
        .post(
            "/api/v1/password/reset",
            json!({ "token": reset_token, "password": "third secret pw" }),
        )
        .await;
    // A reused, stale refresh token is logged as an incident, without the token.
    server.advance(std::time::Duration::from_secs(11));
    server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    let last = server.log_in("log@example.com", "third secret pw").await;
    server
        .post_as(&last.access, "/api/v1/logout", json!({}))
        .await;

    let refreshed_access = refreshed["access_token"].as_str().unwrap().to_owned();
    for token in [
        &verify_token,
        &reset_token,
        &tokens.refresh,
        &new_refresh,
        &relogin.refresh,
    ] {
        secrets.push(token.to_string());
        secrets.push(token_hash(token));
    }
    for access in [&tokens.access, &refreshed_access, &new_access, &last.access] {
        secrets.push(access.to_string());
        // The signature part alone, too.
        secrets.push(access.rsplit('.').next().unwrap().to_owned());
    }
    for user in users::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap()
    {
        secrets.push(user.password_hash.clone());
        // The salt and hash parts of the PHC string.
        secrets.extend(user.password_hash.rsplit('$').take(2).map(str::to_owned));
    }

    let captured = logs::captured();
    assert!(
        captured.contains("request completed"),
        "the capture works: {captured}"
    );
    assert!(
        captured.contains("/api/v1/password/reset"),
        "requests are logged"
    );
    assert!(
        captured.contains("refresh token reused"),
        "the incident is logged"
    );
    for secret in &secrets {
        assert!(
            !captured.contains(secret.as_str()),
            "the log contains a secret: {secret}"
        );
    }
}
