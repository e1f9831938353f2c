//! Who a token is for: an app's access token from the code flow opens the app's own
//! resource and userinfo, never Gatehouse's account or admin API, even when the user is
//! an admin; only a client an admin registered for that API (its audience and scopes)
//! gets tokens the API takes.

use gatehouse_tests::pages::PageWalker;
use gatehouse_tests::{Backend, TestServer, Tokens, decode_claims, error_code, on_both_databases};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

on_both_databases!(
    an_apps_token_is_no_key_to_the_account_or_admin_api,
    a_first_party_app_without_the_api_audience_is_refused_too,
    a_client_registered_for_the_api_gets_tokens_it_takes,
    the_builtin_login_token_opens_the_api,
    a_scope_taken_off_a_client_is_gone_from_its_next_tokens,
);

const APP: &str = "http://127.0.0.1:9/callback";
const ADMIN_PASSWORD: &str = "admin password 1";

/// A confidential code-flow client (no PKCE needed) registered by `admin`.
async fn code_client(server: &TestServer, admin: &Tokens, extra: Value) -> (String, String) {
    let mut registration = json!({
        "name": "Third-party app", "type": "confidential",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [APP],
    });
    for (key, value) in extra.as_object().unwrap() {
        registration[key] = value.clone();
    }
    let (id, secret) = server.register_client(admin, registration).await;
    (id, secret.unwrap())
}

/// The admin signs in to the app through the hosted pages; the app exchanges the code.
async fn app_tokens(server: &TestServer, client: &(String, String), scope: &str) -> Value {
    let admin = ("root@example.com", ADMIN_PASSWORD);
    app_tokens_of(server, client, scope, admin).await
}

/// A user signs in to the app through the hosted pages; the app exchanges the code.
async fn app_tokens_of(
    server: &TestServer,
    client: &(String, String),
    scope: &str,
    (email, password): (&str, &str),
) -> Value {
    let mut url = Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", client.0.as_str()),
        ("redirect_uri", APP),
        ("response_type", "code"),
        ("scope", scope),
        ("state", "s1"),
    ]);
    let callback = PageWalker::new()
        .authorize(url.as_str(), APP, email, password)
        .await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let response = server
        .post_form(
            "/oauth2/token",
            (&client.0, &client.1),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The statuses of the account and admin API for a token.
async fn api_statuses(server: &TestServer, token: &str) -> Vec<(&'static str, StatusCode)> {
    let new_client = json!({ "name": "stolen", "type": "confidential",
                             "grant_types": ["client_credentials"] });
    vec![
        (
            "/api/v1/me",
            server.get_as(token, "/api/v1/me").await.status(),
        ),
        (
            "/api/v1/sessions",
            server.get_as(token, "/api/v1/sessions").await.status(),
        ),
        (
            "/api/v1/admin/users",
            server.get_as(token, "/api/v1/admin/users").await.status(),
        ),
        (
            "POST /api/v1/admin/clients",
            server
                .post_as(token, "/api/v1/admin/clients", new_client)
                .await
                .status(),
        ),
        (
            "POST /api/v1/password/change",
            server
                .post_as(
                    token,
                    "/api/v1/password/change",
                    json!({ "current_password": ADMIN_PASSWORD, "new_password": "taken over 123" }),
                )
                .await
                .status(),
        ),
    ]
}

async fn userinfo_status(server: &TestServer, token: &str) -> StatusCode {
    server.get_as(token, "/oauth2/userinfo").await.status()
}

fn assert_refused(statuses: &[(&str, StatusCode)]) {
    for (path, status) in statuses {
        assert!(
            *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN,
            "{path} answered {status} to an app's token"
        );
    }
}

async fn an_apps_token_is_no_key_to_the_account_or_admin_api(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let client = code_client(&server, &admin, json!({})).await;
    let tokens = app_tokens(&server, &client, "openid email offline_access").await;
    let access = tokens["access_token"].as_str().unwrap();

    let claims = decode_claims(access);
    assert_eq!(claims["aud"], client.0.as_str(), "the token is for the app");
    assert_refused(&api_statuses(&server, access).await);
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    // Refreshed, it is still the app's token.
    let refreshed: Value = server
        .post_form(
            "/oauth2/token",
            (&client.0, &client.1),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(decode_claims(access)["aud"], client.0.as_str());
    assert_refused(&api_statuses(&server, access).await);

    // Nothing was done in the admin's name.
    let clients: Value = server
        .get_as(&admin.access, "/api/v1/admin/clients")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = clients
        .as_array()
        .or_else(|| clients["clients"].as_array())
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(!names.contains(&"stolen"), "{names:?}");
    server.log_in("root@example.com", ADMIN_PASSWORD).await;
}

async fn a_first_party_app_without_the_api_audience_is_refused_too(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let client = code_client(&server, &admin, json!({ "first_party": true })).await;
    let tokens = app_tokens(&server, &client, "openid").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_refused(&api_statuses(&server, access).await);
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    // An app registered with its own resource gets tokens for it, and no more.
    let orders = code_client(&server, &admin, json!({ "audience": "orders-api" })).await;
    let tokens = app_tokens(&server, &orders, "openid").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(decode_claims(access)["aud"], "orders-api");
    assert_refused(&api_statuses(&server, access).await);

    // The API's audience alone, without its scopes, opens nothing either.
    let audience_only = code_client(&server, &admin, json!({ "audience": "gatehouse" })).await;
    let tokens = app_tokens(&server, &audience_only, "openid").await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = server.get_as(access, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        me.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="gatehouse:account gatehouse:admin""#
    );
    assert_eq!(error_code(me).await, "insufficient_scope");
    assert_refused(&api_statuses(&server, access).await);
}

async fn a_client_registered_for_the_api_gets_tokens_it_takes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;

    // The API's scopes are refused without the API's audience.
    let refused = server
        .post_as(
            &admin.access,
            "/api/v1/admin/clients",
            json!({ "name": "console", "type": "confidential",
                    "grant_types": ["authorization_code"], "redirect_uris": [APP],
                    "scopes": ["gatehouse:admin"] }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "invalid_client_metadata");

    let account_app = code_client(
        &server,
        &admin,
        json!({ "audience": "gatehouse", "scopes": ["gatehouse:account"] }),
    )
    .await;
    let moved = server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/clients/{}", account_app.0),
            json!({ "audience": "orders-api" }),
        )
        .await;
    assert_eq!(
        moved.status(),
        StatusCode::BAD_REQUEST,
        "the scope needs the API audience"
    );
    assert_eq!(error_code(moved).await, "invalid_client_metadata");
    let tokens = app_tokens(&server, &account_app, "openid gatehouse:account").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get_as(access, "/api/v1/sessions").await.status(),
        StatusCode::OK
    );
    // The account scope is not the admin scope, even for an admin.
    let users = server.get_as(access, "/api/v1/admin/users").await;
    assert_eq!(users.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        users.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="gatehouse:admin""#,
        "the challenge names the scope that is missing"
    );
    assert_eq!(error_code(users).await, "insufficient_scope");

    let console = code_client(
        &server,
        &admin,
        json!({ "audience": "gatehouse", "scopes": ["gatehouse:admin"] }),
    )
    .await;
    let tokens = app_tokens(&server, &console, "openid gatehouse:admin").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(access, "/api/v1/admin/users").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get_as(access, "/api/v1/me").await.status(),
        StatusCode::FORBIDDEN
    );

    // The admin scope is no admin right: a user with such a token is still refused.
    server
        .verified_user("bob@example.com", "bob password 1")
        .await;
    let bob = ("bob@example.com", "bob password 1");
    let bob = app_tokens_of(&server, &console, "openid gatehouse:admin", bob).await;
    let users = server
        .get_as(bob["access_token"].as_str().unwrap(), "/api/v1/admin/users")
        .await;
    assert_eq!(users.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(users).await, "forbidden");

    // Discovery names the API's scopes.
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    let scopes = discovery["scopes_supported"].as_array().unwrap();
    for scope in ["gatehouse:account", "gatehouse:admin"] {
        assert!(scopes.contains(&json!(scope)), "{scopes:?}");
    }
}

async fn the_builtin_login_token_opens_the_api(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let claims = decode_claims(&admin.access);
    assert_eq!(claims["aud"], "gatehouse");
    assert_eq!(claims["scope"], "gatehouse:account gatehouse:admin");
    for path in ["/api/v1/me", "/api/v1/sessions", "/api/v1/admin/users"] {
        assert_eq!(
            server.get_as(&admin.access, path).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let user = server
        .verified_user("ann@example.com", "ann password 1")
        .await;
    // The same scopes for every user: the role decides, read at each request.
    assert_eq!(
        decode_claims(&user.access)["scope"],
        "gatehouse:account gatehouse:admin"
    );
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    let users = server.get_as(&user.access, "/api/v1/admin/users").await;
    assert_eq!(users.status(), StatusCode::FORBIDDEN);

    // A refresh keeps the scopes.
    let refreshed = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": admin.refresh }),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(access, "/api/v1/admin/users").await.status(),
        StatusCode::OK
    );
}

async fn a_scope_taken_off_a_client_is_gone_from_its_next_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let app = code_client(
        &server,
        &admin,
        json!({ "audience": "gatehouse", "scopes": ["gatehouse:account"] }),
    )
    .await;
    let tokens = app_tokens(&server, &app, "openid offline_access gatehouse:account").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // The admin takes the account scope away: the refresh token still works, for less.
    let patched = server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/clients/{}", app.0),
            json!({ "scopes": [] }),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let refreshed: Value = server
        .post_form(
            "/oauth2/token",
            (&app.0, &app.1),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["scope"], "openid offline_access", "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    let me = server.get_as(access, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::FORBIDDEN);
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);
}
