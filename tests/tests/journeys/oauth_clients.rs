//! Registering OAuth clients through the admin API, and their rules.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(admins_manage_clients, client_metadata_is_validated);

async fn admins_manage_clients(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let user = server
        .verified_user("cl@example.com", "cl password 1")
        .await;

    let request = json!({
        "name": "Orders service",
        "type": "confidential",
        "grant_types": ["client_credentials", "refresh_token"],
        "scopes": ["orders:read", "orders:write"],
        "audience": "orders-api",
        "redirect_uris": ["https://orders.example.com/callback"],
        "first_party": true
    });
    let forbidden = server
        .post_as(&user.access, "/api/v1/admin/clients", request.clone())
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    let created = server
        .post_as(&admin.access, "/api/v1/admin/clients", request)
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "256-bit secret");
    assert_eq!(created["audience"], "orders-api");
    assert_eq!(
        created["grant_types"],
        json!(["client_credentials", "refresh_token"])
    );

    let listed: Value = server
        .get_as(&admin.access, "/api/v1/admin/clients")
        .await
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert!(
        listed.iter().any(|c| c["client_id"] == "gatehouse-api"),
        "the built-in API client"
    );
    let mine = listed.iter().find(|c| c["client_id"] == id).unwrap();
    assert!(
        mine.get("client_secret").is_none(),
        "the secret is shown once"
    );
    assert!(!mine.to_string().contains(secret));

    let patched: Value = server
        .patch_as(
            &admin.access,
            &format!("/api/v1/admin/clients/{id}"),
            json!({ "scopes": ["orders:read"], "audience": null }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["scopes"], json!(["orders:read"]));
    assert_eq!(patched["audience"], Value::Null);
    assert_eq!(patched["name"], "Orders service");

    // The secret works, and the client's row is now in the server's read cache.
    let before = server
        .post_form(
            "/oauth2/token",
            (id, secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(before.status(), StatusCode::OK);
    let rotated: Value = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/clients/{id}/secret"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let old = server
        .post_form(
            "/oauth2/token",
            (id, secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old secret stops working at once"
    );
    let new = server
        .post_form(
            "/oauth2/token",
            (id, new_secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(new.status(), StatusCode::OK);

    let builtin = server
        .delete_as(&admin.access, "/api/v1/admin/clients/gatehouse-api")
        .await;
    assert_eq!(builtin.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(builtin).await, "builtin_client");

    let deleted = server
        .delete_as(&admin.access, &format!("/api/v1/admin/clients/{id}"))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .get_as(&admin.access, &format!("/api/v1/admin/clients/{id}"))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let refused = server
        .post_form(
            "/oauth2/token",
            (id, new_secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let audit: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?event=client_created")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["details"]["client_id"], id);
}

async fn client_metadata_is_validated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let cases = [
        json!({ "name": "spa", "type": "public", "grant_types": ["client_credentials"] }),
        json!({ "name": "", "type": "confidential" }),
        json!({ "name": "x", "type": "confidential", "redirect_uris": ["http://evil.example.com/cb"] }),
        json!({ "name": "x", "type": "confidential", "redirect_uris": ["https://app.example.com/cb#frag"] }),
        json!({ "name": "x", "type": "confidential", "scopes": ["bad scope"] }),
    ];
    for case in cases {
        let response = server
            .post_as(&admin.access, "/api/v1/admin/clients", case.clone())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(
            error_code(response).await,
            "invalid_client_metadata",
            "{case}"
        );
    }
    let unknown_grant = server
        .post_as(
            &admin.access,
            "/api/v1/admin/clients",
            json!({ "name": "x", "type": "confidential", "grant_types": ["password"] }),
        )
        .await;
    assert_eq!(error_code(unknown_grant).await, "invalid_request");
    let local = server
        .post_as(
            &admin.access,
            "/api/v1/admin/clients",
            json!({ "name": "dev", "type": "public", "redirect_uris": ["http://localhost:3000/cb"] }),
        )
        .await;
    assert_eq!(
        local.status(),
        StatusCode::CREATED,
        "http is fine on localhost"
    );
    assert!(
        local
            .json::<Value>()
            .await
            .unwrap()
            .get("client_secret")
            .is_none(),
        "public clients have no secret"
    );
}
