//! A user's own sessions: list them, end one, log out. A revoked session is refused at
//! once, for its access token and its refresh token alike.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    logout_ends_the_session_at_once,
    users_list_and_end_their_own_sessions_only,
);

async fn logout_ends_the_session_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tokens = server
        .verified_user("pa@example.com", "pa password 1")
        .await;
    let other = server.log_in("pa@example.com", "pa password 1").await;

    let response = server
        .post_as(&tokens.access, "/api/v1/logout", json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let me = server.get_as(&tokens.access, "/api/v1/me").await;
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "the unexpired access token is refused"
    );
    assert_eq!(error_code(me).await, "unauthenticated");
    for path in ["/api/v1/sessions", "/api/v1/admin/users"] {
        assert_eq!(
            server.get_as(&tokens.access, path).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        server.get_as(&other.access, "/api/v1/me").await.status(),
        StatusCode::OK,
        "other sessions stay"
    );
}

async fn users_list_and_end_their_own_sessions_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let laptop = server
        .verified_user("qa@example.com", "qa password 1")
        .await;
    let phone = server
        .http
        .post(server.url("/api/v1/login"))
        .header("user-agent", "PhoneApp/1.0")
        .json(&json!({ "email": "qa@example.com", "password": "qa password 1" }))
        .send()
        .await
        .unwrap();
    let phone = gatehouse_tests::Tokens::from(phone.json::<Value>().await.unwrap());
    let stranger = server
        .verified_user("qb@example.com", "qb password 1")
        .await;

    let sessions: Vec<Value> = server
        .get_as(&laptop.access, "/api/v1/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop.session_id.to_string());
    let phone_row = sessions
        .iter()
        .find(|s| s["id"] == phone.session_id.to_string())
        .unwrap();
    assert_eq!(phone_row["user_agent"], "PhoneApp/1.0");
    assert_eq!(phone_row["ip"], "127.0.0.1");
    for field in ["created_at", "last_seen_at", "expires_at"] {
        assert!(phone_row[field].as_str().is_some(), "{field}");
    }

    let foreign = server
        .delete_as(
            &laptop.access,
            &format!("/api/v1/sessions/{}", stranger.session_id),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server.get_as(&stranger.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    let ended = server
        .delete_as(
            &laptop.access,
            &format!("/api/v1/sessions/{}", phone.session_id),
        )
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server.get_as(&phone.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": phone.refresh }),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    let sessions: Vec<Value> = server
        .get_as(&laptop.access, "/api/v1/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
}
