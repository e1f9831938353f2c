//! The OAuth token, introspection and revocation endpoints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    client_credentials_issue_service_tokens,
    token_endpoint_errors_follow_rfc_6749,
    refresh_grant_rotates_tokens_of_the_client,
    introspection_tells_active_from_inactive,
    revocation_ends_sessions,
);

fn claims(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn oauth_error(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].as_str().is_some(), "{body}");
    body["error"].as_str().unwrap().to_owned()
}

async fn client_credentials_issue_service_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server
        .register_client(
            &admin,
            json!({ "name": "svc", "type": "confidential", "grant_types": ["client_credentials"],
                    "scopes": ["orders:read", "orders:write"], "audience": "orders-api" }),
        )
        .await;
    let secret = secret.unwrap();

    let basic = server
        .post_form(
            "/oauth2/token",
            (&id, &secret),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders:read"),
            ],
        )
        .await;
    assert_eq!(basic.status(), StatusCode::OK);
    assert_eq!(basic.headers()["cache-control"], "no-store");
    let body: Value = basic.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "orders:read");
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let c = claims(token);
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["aud"], "orders-api");
    assert_eq!(c["iss"], server.base_url.as_str());
    assert!(c.get("sid").is_none(), "service tokens have no session");
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert!(!c[claim].is_null(), "{claim}");
    }

    let posted = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK, "client_secret_post");
    assert_eq!(
        posted.json::<Value>().await.unwrap()["scope"],
        "orders:read orders:write",
        "all scopes by default"
    );

    // A service token is not a user's token: the user API refuses it.
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn token_endpoint_errors_follow_rfc_6749(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server.service_client(&admin, &["a"]).await;

    let wrong = server
        .post_form(
            "/oauth2/token",
            (&id, "wrong secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(oauth_error(wrong).await, "invalid_client");
    let unknown = server
        .post_form(
            "/oauth2/token",
            ("nobody", "x"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(oauth_error(unknown).await, "invalid_client");
    let anonymous = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let both = server
        .http
        .post(server.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(both).await, "invalid_request");

    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("grant_type", "password")], "unsupported_grant_type"),
        (&[], "invalid_request"),
        (
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            "invalid_request",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "a b")],
            "invalid_scope",
        ),
        (
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            "unauthorized_client",
        ),
    ];
    for (form, code) in cases {
        let response = server
            .post_form("/oauth2/token", (&id, &secret), form)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(oauth_error(response).await, code, "{form:?}");
    }

    // A public client has no secret, and may not use client_credentials.
    let public = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gatehouse-api"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(public).await, "unauthorized_client");
    let public_with_secret = server
        .post_form(
            "/oauth2/token",
            ("gatehouse-api", "guess"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(oauth_error(public_with_secret).await, "invalid_client");
}

async fn refresh_grant_rotates_tokens_of_the_client(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (other, other_secret) = server
        .register_client(
            &admin,
            json!({ "name": "other", "type": "confidential", "grant_types": ["client_credentials", "refresh_token"] }),
        )
        .await;
    let other_secret = other_secret.unwrap();
    let user = server
        .verified_user("rt@example.com", "rt password 1")
        .await;

    // The JSON API's tokens belong to the public client `gatehouse-api`.
    let refreshed = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "gatehouse-api"),
            ("refresh_token", &user.refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    assert_ne!(body["refresh_token"], user.refresh.as_str());
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["client_id"],
        "gatehouse-api"
    );

    // Another client cannot use them.
    let stolen = server
        .post_form(
            "/oauth2/token",
            (&other, &other_secret),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(stolen).await, "invalid_grant");
}

async fn introspection_tells_active_from_inactive(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server.service_client(&admin, &["a"]).await;
    let introspect = |token: String| {
        let server = &server;
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let response = server
                .post_form("/oauth2/introspect", (&id, &secret), &[("token", &token)])
                .await;
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{token}: {text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };

    let user = server
        .verified_user("in@example.com", "in password 1")
        .await;
    let active = introspect(user.access.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sid"], user.session_id.to_string());
    assert_eq!(active["client_id"], "gatehouse-api");
    assert_eq!(active["token_type"], "Bearer");
    assert!(active["exp"].as_i64().is_some());
    let refresh = introspect(user.refresh.clone()).await;
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");

    let service: Value = server
        .post_form(
            "/oauth2/token",
            (&id, &secret),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();
    let service_token = service["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(service_token.clone()).await["active"], true);

    let foreign = TestServer::start(Backend::Sqlite).await;
    let stranger = foreign
        .verified_user("in@example.com", "in password 1")
        .await;
    for garbage in [
        "garbage",
        "a.b.c",
        stranger.access.as_str(),
        stranger.refresh.as_str(),
    ] {
        assert_eq!(
            introspect(garbage.to_owned()).await,
            json!({ "active": false }),
            "{garbage}"
        );
    }

    // Rotated beyond the grace window, a refresh token is inactive.
    server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": user.refresh }),
        )
        .await;
    server.advance(std::time::Duration::from_secs(11));
    assert_eq!(introspect(user.refresh.clone()).await["active"], false);

    server
        .post_as(&user.access, "/api/v1/logout", json!({}))
        .await;
    assert_eq!(
        introspect(user.access.clone()).await,
        json!({ "active": false }),
        "revoked session"
    );

    let other = server.log_in("in@example.com", "in password 1").await;
    server.advance(std::time::Duration::from_secs(601));
    assert_eq!(
        introspect(other.access.clone()).await["active"],
        false,
        "expired"
    );
    assert_eq!(
        introspect(service_token).await["active"],
        false,
        "expired service token"
    );

    // Only confidential clients may introspect.
    let public = server
        .http
        .post(server.url("/oauth2/introspect"))
        .form(&[
            ("token", other.refresh.as_str()),
            ("client_id", "gatehouse-api"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(public).await, "invalid_client");
}

async fn revocation_ends_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (id, secret) = server.service_client(&admin, &[]).await;

    let by_access = server
        .verified_user("rv@example.com", "rv password 1")
        .await;
    let response = server
        .post_form(
            "/oauth2/revoke",
            (&id, &secret),
            &[("token", &by_access.access)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server
            .get_as(&by_access.access, "/api/v1/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": by_access.refresh }),
        )
        .await;
    assert_eq!(error_code(refresh).await, "invalid_refresh_token");

    // A refresh token is revoked only by the client it was issued to.
    let by_refresh = server.log_in("rv@example.com", "rv password 1").await;
    let not_yours = server
        .post_form(
            "/oauth2/revoke",
            (&id, &secret),
            &[("token", &by_refresh.refresh)],
        )
        .await;
    assert_eq!(not_yours.status(), StatusCode::OK);
    assert_eq!(
        server
            .get_as(&by_refresh.access, "/api/v1/me")
            .await
            .status(),
        StatusCode::OK
    );
    let own = server
        .http
        .post(server.url("/oauth2/revoke"))
        .form(&[
            ("token", by_refresh.refresh.as_str()),
            ("client_id", "gatehouse-api"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(
        server
            .get_as(&by_refresh.access, "/api/v1/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let unknown = server
        .post_form(
            "/oauth2/revoke",
            (&id, &secret),
            &[("token", "no such token")],
        )
        .await;
    assert_eq!(
        unknown.status(),
        StatusCode::OK,
        "RFC 7009: unknown tokens are not an error"
    );
    let unauthenticated = server
        .post_form("/oauth2/revoke", (&id, "wrong"), &[("token", "x")])
        .await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}
