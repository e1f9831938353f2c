//! Impersonation: an admin opens a short session as a user, marked as the admin's in
//! every token and in the audit log, and unable to change credentials.

use std::time::Duration;

use gatehouse_tests::{Backend, TestServer, decode_claims, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    an_admin_sees_the_account_as_the_user_and_is_named_in_the_token,
    an_impersonated_session_cannot_change_credentials,
    only_fresh_admins_impersonate_and_never_admins_or_themselves,
    an_impersonation_ends_when_its_admin_loses_the_role,
);

const PASSWORD: &str = "impersonated password 1";

async fn id_of(server: &TestServer, access: &str) -> String {
    let me: Value = server
        .get_as(access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn impersonate(server: &TestServer, admin: &str, user_id: &str) -> reqwest::Response {
    server
        .post_as(
            admin,
            &format!("/api/v1/admin/users/{user_id}/impersonate"),
            json!({}),
        )
        .await
}

async fn an_admin_sees_the_account_as_the_user_and_is_named_in_the_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = id_of(&server, &admin.access).await;
    let user = server.verified_user("ia@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;

    let response = impersonate(&server, &admin.access, &user_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], "gatehouse:account");
    let token = body["access_token"].as_str().unwrap();
    let claims = decode_claims(token);
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["act"], json!({ "sub": admin_id }));
    let me: Value = server
        .get_as(token, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ia@example.com");
    assert_eq!(me["impersonated_by"], admin_id.as_str());
    let me: Value = server
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["impersonated_by"],
        Value::Null,
        "the user's own session is not marked"
    );
    // Never the admin API, even when the user would be one.
    let admin_api = server.get_as(token, "/api/v1/admin/users").await;
    assert_eq!(admin_api.status(), StatusCode::FORBIDDEN);

    let audit: Value = server
        .get_as(
            &admin.access,
            "/api/v1/admin/audit?event=impersonation_started",
        )
        .await
        .json()
        .await
        .unwrap();
    let event = &audit["events"][0];
    assert_eq!(event["actor_user_id"], admin_id.as_str());
    assert_eq!(event["subject_user_id"], user_id.as_str());
    assert_eq!(event["session_id"], body["session_id"]);

    // The user (or an admin) ending the user's sessions ends this one too.
    let revoked = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/users/{user_id}/sessions/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn an_impersonated_session_cannot_change_credentials(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server.verified_user("ib@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    let body: Value = impersonate(&server, &admin.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let attempts = [
        server
            .post_as(
                token,
                "/api/v1/password/change",
                json!({ "current_password": PASSWORD, "new_password": "taken over 2" }),
            )
            .await,
        server
            .post_as(
                token,
                "/api/v1/reauthenticate",
                json!({ "password": PASSWORD }),
            )
            .await,
        server.post_as(token, "/api/v1/mfa/totp", json!({})).await,
        server.delete_as(token, "/api/v1/mfa/totp").await,
        server
            .post_as(token, "/api/v1/mfa/recovery-codes", json!({}))
            .await,
    ];
    for response in attempts {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(response).await, "impersonated_session");
    }
    // The password is still the user's.
    server.log_in("ib@example.com", PASSWORD).await;
}

async fn only_fresh_admins_impersonate_and_never_admins_or_themselves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = id_of(&server, &admin.access).await;
    let other_admin = server.admin("second@example.com").await;
    let other_admin_id = id_of(&server, &other_admin.access).await;
    let user = server.verified_user("ic@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;

    let by_user = impersonate(&server, &user.access, &user_id).await;
    assert_eq!(by_user.status(), StatusCode::FORBIDDEN);
    let admin_target = impersonate(&server, &admin.access, &other_admin_id).await;
    assert_eq!(admin_target.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(admin_target).await, "cannot_impersonate_admin");
    let own = impersonate(&server, &admin.access, &admin_id).await;
    assert_eq!(error_code(own).await, "cannot_modify_self");
    let unknown = impersonate(&server, &admin.access, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    server.advance(Duration::from_secs(16 * 60));
    let refreshed: Value = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": admin.refresh }),
        )
        .await
        .json()
        .await
        .unwrap();
    let stale = impersonate(
        &server,
        refreshed["access_token"].as_str().unwrap(),
        &user_id,
    )
    .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

async fn an_impersonation_ends_when_its_admin_loses_the_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root = server.admin("root@example.com").await;
    let helper = server.admin("helper@example.com").await;
    let helper_id = id_of(&server, &helper.access).await;
    let user = server.verified_user("id@example.com", PASSWORD).await;
    let user_id = id_of(&server, &user.access).await;
    let body: Value = impersonate(&server, &helper.access, &user_id)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    let demoted = server
        .patch_as(
            &root.access,
            &format!("/api/v1/admin/users/{helper_id}"),
            json!({ "role": "user" }),
        )
        .await;
    assert_eq!(demoted.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(token, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}
