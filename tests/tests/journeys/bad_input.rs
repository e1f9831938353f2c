//! Bad input gets a clear error with the right status and a stable code, costs no
//! hashing, and writes nothing.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    malformed_requests_get_stable_errors,
    password_and_email_rules_hold_before_hashing,
    addresses_that_mail_servers_rewrite_are_refused,
    names_with_text_direction_characters_are_refused,
);

async fn malformed_requests_get_stable_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let raw = |body: &'static str, content_type: &'static str| {
        server
            .http
            .post(server.url("/api/v1/signup"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let broken = raw("{\"email\": ", "application/json").await.unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(broken).await, "invalid_request");

    let missing = raw(r#"{"email": "a@example.com"}"#, "application/json")
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"].as_str().unwrap().contains("password"),
        "names the field: {body}"
    );

    let not_json = raw("email=a@example.com", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let huge = "x".repeat(70 * 1024);
    let too_large = server
        .post(
            "/api/v1/signup",
            json!({ "email": "a@example.com", "password": huge }),
        )
        .await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(too_large).await, "payload_too_large");

    let unknown = server
        .http
        .get(server.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "not_found");
}

async fn password_and_email_rules_hold_before_hashing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let hashes_before = server.gatehouse.hasher().completed_operations();
    let cases = [
        (
            json!({ "email": "b@example.com", "password": "1234567" }),
            "password_too_short",
        ),
        (
            json!({ "email": "b@example.com", "password": "p".repeat(129) }),
            "password_too_long",
        ),
        (
            json!({ "email": "not an email", "password": "long enough" }),
            "invalid_email",
        ),
        (
            json!({ "email": "b@localhost", "password": "long enough" }),
            "invalid_email",
        ),
        (
            json!({ "email": "b@example.com", "password": "long enough", "name": "x".repeat(201) }),
            "invalid_name",
        ),
    ];
    for (body, code) in cases {
        let response = server.post("/api/v1/signup", body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(error_code(response).await, code);
    }
    // Eight characters of any script count as eight.
    let accepted = server
        .post(
            "/api/v1/signup",
            json!({ "email": "c@example.com", "password": "ééééééé" }),
        )
        .await;
    assert_eq!(
        error_code(accepted).await,
        "password_too_short",
        "7 characters, 14 bytes"
    );
    let too_long_login = server
        .post(
            "/api/v1/login",
            json!({ "email": "b@example.com", "password": "p".repeat(129) }),
        )
        .await;
    assert_eq!(error_code(too_long_login).await, "password_too_long");
    assert_eq!(
        server.gatehouse.hasher().completed_operations(),
        hashes_before,
        "no hashing for refused input"
    );

    let users: Value = server
        .get_as(&admin.access, "/api/v1/admin/users")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        1,
        "nothing was written"
    );

    let accepted = server
        .post(
            "/api/v1/signup",
            json!({ "email": "d@example.com", "password": "ëëëëëëëë" }),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED, "8 characters");
}

/// `"alice"@example.com` reached alice@example.com's mailbox as a second account; these
/// forms are refused before anything is written or mailed.
async fn addresses_that_mail_servers_rewrite_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.sign_up("alice@example.com", "alice password").await;
    for address in [
        "\"alice\"@example.com",
        "\"a b\"@example.com",
        "alice(comment)@example.com",
        "<alice@example.com>",
        "Alice <alice@example.com>",
        "alice.@example.com",
        "alice@example.com.",
        "ali ce@example.com",
        "alice@[192.0.2.1]",
    ] {
        let response = server
            .post(
                "/api/v1/signup",
                json!({ "email": address, "password": "long enough" }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{address}");
        assert_eq!(error_code(response).await, "invalid_email", "{address}");
    }
    // A mail queued for any of them would have gone out before this one.
    server.sign_up("bob@example.com", "bob password 1").await;
    let recipients: Vec<Vec<String>> = server.mail.all().into_iter().map(|m| m.to).collect();
    assert_eq!(
        recipients,
        [["alice@example.com"], ["bob@example.com"]],
        "one mail per real sign-up, none for the refused ones"
    );
}

async fn names_with_text_direction_characters_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for name in [
        "Eve \u{202e}nimda",
        "\u{2067}Eve\u{2069}",
        "Eve\u{200f}",
        "E\u{200b}ve",
    ] {
        let response = server
            .post(
                "/api/v1/signup",
                json!({ "email": "eve@example.com", "password": "long enough", "name": name }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(error_code(response).await, "invalid_name", "{name:?}");
    }
    // Joiners that scripts need stay allowed.
    let accepted = server
        .post(
            "/api/v1/signup",
            json!({ "email": "eve@example.com", "password": "long enough", "name": "می\u{200c}خواهم" }),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    server
        .mail
        .wait_for("eve@example.com", "Confirm your email")
        .await;
    assert_eq!(server.mail.all().len(), 1, "no mail for the refused names");
}
