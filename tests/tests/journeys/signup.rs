//! Sign up, read the mail, follow the link, log in.

use gatehouse_tests::{Backend, TestServer, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    sign_up_verify_and_reach_me,
    existing_email_gets_the_same_answer_and_a_notice,
    verification_link_works_once_and_expires,
    concurrent_uses_of_one_link_let_exactly_one_succeed,
    resend_answers_the_same_for_unknown_addresses,
    repeated_sign_ups_for_an_existing_address_send_one_notice_per_cooldown,
    concurrent_resends_send_one_mail,
);

async fn sign_up_verify_and_reach_me(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": " Ann@Example.COM ", "password": "correct horse", "name": "Ann" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mail = server
        .mail
        .wait_for("ann@example.com", "Confirm your email")
        .await;
    assert!(
        mail.raw.contains("multipart/alternative"),
        "text and HTML parts"
    );
    assert!(mail.html.contains("Confirm my email address"));
    let link = mail.link();
    assert!(
        link.starts_with(&format!("{}/verify-email?token=", server.base_url)),
        "{link}"
    );

    let refused = server
        .post(
            "/api/v1/login",
            json!({ "email": "ann@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "email_not_verified");

    let verified = server
        .post("/api/v1/email/verify", json!({ "token": token_of(&link) }))
        .await;
    assert_eq!(verified.status(), StatusCode::OK);

    let tokens = server.log_in("ANN@example.com", "correct horse").await;
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 600);
    let me: Value = server
        .get_as(&tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["name"], "Ann");
    assert_eq!(me["role"], "user");
    assert!(me["id"].as_str().is_some() && me["created_at"].as_str().is_some());
}

async fn existing_email_gets_the_same_answer_and_a_notice(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server
        .post(
            "/api/v1/signup",
            json!({ "email": "bo@example.com", "password": "first password" }),
        )
        .await;
    let (first_status, first_body) = (first.status(), first.text().await.unwrap());
    server
        .mail
        .wait_for("bo@example.com", "Confirm your email")
        .await;

    let again = server
        .post(
            "/api/v1/signup",
            json!({ "email": "BO@example.com", "password": "other password" }),
        )
        .await;
    assert_eq!(again.status(), first_status);
    assert_eq!(
        again.text().await.unwrap(),
        first_body,
        "no account enumeration"
    );

    let notice = server
        .mail
        .wait_for("bo@example.com", "Sign-up attempt")
        .await;
    assert!(notice.text.contains("already has one"));
    assert!(
        !notice.text.contains("token="),
        "the notice carries no verification link"
    );
    // The original password still works; the second sign-up changed nothing.
    let link = server
        .mail
        .wait_for("bo@example.com", "Confirm your email")
        .await
        .link();
    server
        .post("/api/v1/email/verify", json!({ "token": token_of(&link) }))
        .await;
    server.log_in("bo@example.com", "first password").await;
}

async fn verification_link_works_once_and_expires(backend: Backend) {
    let server = TestServer::start(backend).await;
    let link = server.sign_up("cy@example.com", "cy password 1").await;
    let token = token_of(&link);
    let first = server
        .post("/api/v1/email/verify", json!({ "token": token }))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = server
        .post("/api/v1/email/verify", json!({ "token": token }))
        .await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(second).await, "invalid_token");

    let link = server.sign_up("di@example.com", "di password 1").await;
    server.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let expired = server
        .post("/api/v1/email/verify", json!({ "token": token_of(&link) }))
        .await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(expired).await, "invalid_token");

    let forged = server
        .post(
            "/api/v1/email/verify",
            json!({ "token": "not-a-real-token" }),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}

async fn concurrent_uses_of_one_link_let_exactly_one_succeed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let link = server.sign_up("ed@example.com", "ed password 1").await;
    let token = token_of(&link);
    let attempts = (0..6).map(|_| server.post("/api/v1/email/verify", json!({ "token": token })));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

async fn resend_answers_the_same_for_unknown_addresses(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.sign_up("fa@example.com", "fa password 1").await;
    server.advance(std::time::Duration::from_secs(61));

    let known = server
        .post(
            "/api/v1/email/verify/resend",
            json!({ "email": "fa@example.com" }),
        )
        .await;
    let unknown = server
        .post(
            "/api/v1/email/verify/resend",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());

    let second = server
        .mail
        .wait_for_nth("fa@example.com", "Confirm your email", 2)
        .await;
    let verified = server
        .post(
            "/api/v1/email/verify",
            json!({ "token": token_of(&second.link()) }),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert!(server.mail.to("nobody@example.com").is_empty());
}

async fn repeated_sign_ups_for_an_existing_address_send_one_notice_per_cooldown(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .verified_user("owner@example.com", "owner password 1")
        .await;
    let attempt = || {
        server.post(
            "/api/v1/signup",
            json!({ "email": "owner@example.com", "password": "bomb password 1" }),
        )
    };
    // Twenty one after the other, then twenty at once: one notice in all.
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let response = attempt().await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        bodies.push(response.text().await.unwrap());
    }
    for response in futures_util::future::join_all((0..20).map(|_| attempt())).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        bodies.push(response.text().await.unwrap());
    }
    let fresh = server
        .post(
            "/api/v1/signup",
            json!({ "email": "fresh@example.com", "password": "fresh password 1" }),
        )
        .await;
    assert_eq!(fresh.status(), StatusCode::ACCEPTED);
    let fresh_body = fresh.text().await.unwrap();
    assert!(
        bodies.iter().all(|b| *b == fresh_body),
        "the same answer as for a new address"
    );
    server
        .mail
        .wait_for("owner@example.com", "Sign-up attempt")
        .await;

    // After the cooldown the owner hears of the next attempt.
    server.advance(std::time::Duration::from_secs(61));
    assert_eq!(attempt().await.status(), StatusCode::ACCEPTED);
    server
        .mail
        .wait_for_nth("owner@example.com", "Sign-up attempt", 2)
        .await;
    let notices = server
        .mail
        .to("owner@example.com")
        .iter()
        .filter(|m| m.subject.contains("Sign-up attempt"))
        .count();
    assert_eq!(notices, 2, "41 attempts, two cooldowns: two notices");
}

async fn concurrent_resends_send_one_mail(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.sign_up("slow@example.com", "slow password 1").await;
    server.advance(std::time::Duration::from_secs(61));
    let resends = (0..10).map(|_| {
        server.post(
            "/api/v1/email/verify/resend",
            json!({ "email": "slow@example.com" }),
        )
    });
    for response in futures_util::future::join_all(resends).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    server.advance(std::time::Duration::from_secs(61));
    server
        .post(
            "/api/v1/email/verify/resend",
            json!({ "email": "slow@example.com" }),
        )
        .await;
    server
        .mail
        .wait_for_nth("slow@example.com", "Confirm your email", 3)
        .await;
    let mails = server
        .mail
        .to("slow@example.com")
        .iter()
        .filter(|m| m.subject.contains("Confirm your email"))
        .count();
    assert_eq!(
        mails, 3,
        "sign-up, one of ten concurrent resends, one after the cooldown"
    );
}
