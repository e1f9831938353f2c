//! Forgotten, reset and changed passwords.

use std::time::Duration;

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

on_both_databases!(
    reset_by_mail_signs_out_everywhere,
    a_new_reset_request_invalidates_the_earlier_link,
    reset_links_expire_after_an_hour,
    concurrent_resets_with_one_link_let_exactly_one_succeed,
    forgot_answers_the_same_for_unknown_addresses,
    change_password_keeps_this_session_and_ends_the_others,
    known_and_unknown_addresses_cost_the_same_writes,
);

async fn reset_by_mail_signs_out_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let before = server
        .verified_user("ra@example.com", "old password 1")
        .await;
    let response = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "RA@example.com" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = server.mail.wait_for("ra@example.com", "Reset your").await;
    let link = mail.link();
    assert!(
        link.starts_with(&format!("{}/reset-password?token=", server.base_url)),
        "{link}"
    );

    let weak = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&link), "password": "short" }),
        )
        .await;
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(weak).await, "password_too_short");

    let reset = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&link), "password": "new password 1" }),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(&before.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": before.refresh }),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);

    let old = server
        .post(
            "/api/v1/login",
            json!({ "email": "ra@example.com", "password": "old password 1" }),
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    server.log_in("ra@example.com", "new password 1").await;

    let again = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&link), "password": "third password" }),
        )
        .await;
    assert_eq!(error_code(again).await, "invalid_token", "single use");
}

async fn a_new_reset_request_invalidates_the_earlier_link(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("sa@example.com", "sa password 1")
        .await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "sa@example.com" }),
        )
        .await;
    let first = server
        .mail
        .wait_for("sa@example.com", "Reset your")
        .await
        .link();

    // Within the cooldown a second request sends nothing and leaves the first link valid.
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "sa@example.com" }),
        )
        .await;
    server.advance(Duration::from_secs(61));
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "sa@example.com" }),
        )
        .await;
    let second = server
        .mail
        .wait_for_nth("sa@example.com", "Reset your", 2)
        .await
        .link();
    assert_ne!(first, second);
    assert_eq!(
        server
            .mail
            .to("sa@example.com")
            .iter()
            .filter(|m| m.subject.contains("Reset"))
            .count(),
        2
    );

    let stale = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&first), "password": "new password 1" }),
        )
        .await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(stale).await, "invalid_token");
    let fresh = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&second), "password": "new password 1" }),
        )
        .await;
    assert_eq!(fresh.status(), StatusCode::OK);
}

async fn reset_links_expire_after_an_hour(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("ta@example.com", "ta password 1")
        .await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "ta@example.com" }),
        )
        .await;
    let link = server
        .mail
        .wait_for("ta@example.com", "Reset your")
        .await
        .link();
    server.advance(Duration::from_secs(3601));
    let expired = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&link), "password": "new password 1" }),
        )
        .await;
    assert_eq!(error_code(expired).await, "invalid_token");
    server.log_in("ta@example.com", "ta password 1").await;
}

async fn concurrent_resets_with_one_link_let_exactly_one_succeed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("ua@example.com", "ua password 1")
        .await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "ua@example.com" }),
        )
        .await;
    let token = token_of(
        &server
            .mail
            .wait_for("ua@example.com", "Reset your")
            .await
            .link(),
    );
    let attempts = (0..5).map(|i| {
        server.post(
            "/api/v1/password/reset",
            json!({ "token": token, "password": format!("new password {i}") }),
        )
    });
    let responses = futures_util::future::join_all(attempts).await;
    let winners: Vec<usize> = responses
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status() == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    server
        .log_in("ua@example.com", &format!("new password {}", winners[0]))
        .await;
}

async fn forgot_answers_the_same_for_unknown_addresses(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("va@example.com", "va password 1")
        .await;
    let known = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "va@example.com" }),
        )
        .await;
    let unknown = server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    server.mail.wait_for("va@example.com", "Reset your").await;
    assert!(server.mail.to("nobody@example.com").is_empty());
}

async fn change_password_keeps_this_session_and_ends_the_others(backend: Backend) {
    let server = TestServer::start(backend).await;
    let here = server
        .verified_user("wa@example.com", "wa password 1")
        .await;
    let elsewhere = server.log_in("wa@example.com", "wa password 1").await;

    let wrong = server
        .post_as(
            &here.access,
            "/api/v1/password/change",
            json!({ "current_password": "not it at all", "new_password": "wa password 2" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(wrong).await, "invalid_current_password");

    let changed = server
        .post_as(
            &here.access,
            "/api/v1/password/change",
            json!({ "current_password": "wa password 1", "new_password": "wa password 2" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        server.get_as(&here.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server
            .get_as(&elsewhere.access, "/api/v1/me")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    server.log_in("wa@example.com", "wa password 2").await;

    let anonymous = server
        .post(
            "/api/v1/password/change",
            json!({ "current_password": "x", "new_password": "y" }),
        )
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// Forgot-password and resend do the same work for an address with an account and one
/// without (the time to answer must not tell them apart): each writes its cooldown claim
/// and an audit entry, which says whether a mail went out.
async fn known_and_unknown_addresses_cost_the_same_writes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    server
        .verified_user("wa@example.com", "wa password 1")
        .await;
    for email in ["wa@example.com", "nobody@example.com"] {
        for path in ["/api/v1/password/forgot", "/api/v1/email/verify/resend"] {
            let response = server.post(path, json!({ "email": email })).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    }
    for (event, sent_to_known) in [
        ("password_reset_requested", true),
        ("verification_email_requested", false),
    ] {
        let page: Value = server
            .get_as(&admin.access, &format!("/api/v1/admin/audit?event={event}"))
            .await
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{event}: one per request: {events:?}");
        let sent: Vec<bool> = events
            .iter()
            .map(|e| e["details"]["mail_sent"].as_bool().unwrap())
            .collect();
        assert_eq!(
            sent.iter().filter(|s| **s).count(),
            usize::from(sent_to_known),
            "{event}"
        );
    }
    let rows = gatehouse_entity::mail_cooldowns::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap();
    // Verification: wa (sign-up, then the resend within its cooldown) and nobody; reset:
    // wa and nobody.
    assert_eq!(rows.len(), 4, "{rows:?}");
}
