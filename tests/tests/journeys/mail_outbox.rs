//! The mail outbox: a promised mail survives an SMTP outage and arrives once; a mail that
//! keeps failing ends dead, admins see it and retry it; the stored row holds no link;
//! two instances never send one mail twice; sent rows are purged.

use std::time::Duration;

use gatehouse_core::Role;
use gatehouse_entity::mail_outbox;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{Value, json};

on_both_databases!(
    a_reset_requested_while_smtp_is_down_arrives_once_it_is_back,
    the_outbox_row_of_a_reset_holds_no_plaintext_token,
    mail_that_keeps_failing_ends_dead_and_an_admin_retries_it,
    a_non_admin_cannot_list_or_retry_mail,
    two_instances_never_send_one_mail_twice,
    sent_mail_is_purged_after_its_retention,
);

/// `mail.outbox.first_retry_after` in the defaults, and a second more.
const PAST_FIRST_RETRY: Duration = Duration::from_secs(31);

/// Creates a verified account without any mail.
async fn account(server: &TestServer, email: &str) {
    server
        .gatehouse
        .create_user(email, SecretString::from("a password 1"), Role::User, true)
        .await
        .unwrap();
}

async fn forgot(server: &TestServer, email: &str) {
    let response = server
        .post("/api/v1/password/forgot", json!({ "email": email }))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// The outbox rows for `recipient`.
async fn rows_to(server: &TestServer, recipient: &str) -> Vec<mail_outbox::Model> {
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Recipient.eq(recipient))
        .all(server.gatehouse.db())
        .await
        .unwrap()
}

/// Waits (polling, with a deadline) until the only outbox row to `recipient` satisfies
/// `done`; returns it.
async fn row_until(
    server: &TestServer,
    recipient: &str,
    what: &str,
    done: impl Fn(&mail_outbox::Model) -> bool,
) -> mail_outbox::Model {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        let rows = rows_to(server, recipient).await;
        assert!(rows.len() <= 1, "one row per mail: {rows:?}");
        if let Some(row) = rows.into_iter().next().filter(|r| done(r)) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mail to {recipient} never became {what}: {:?}",
            rows_to(server, recipient).await
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn a_reset_requested_while_smtp_is_down_arrives_once_it_is_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    account(&server, "outage@example.com").await;
    server.mail.stop();

    forgot(&server, "outage@example.com").await;
    let failed = row_until(&server, "outage@example.com", "tried once", |r| {
        r.attempts == 1 && r.last_error.is_some() && r.claim_id.is_none()
    })
    .await;
    assert_eq!(
        failed.status, "pending",
        "a failed attempt is retried later"
    );
    assert!(server.mail.all().is_empty());

    server.mail.restart();
    server.advance(PAST_FIRST_RETRY);
    let mail = server
        .mail
        .wait_for("outage@example.com", "Reset your")
        .await;
    let sent = row_until(&server, "outage@example.com", "sent", |r| {
        r.status == "sent"
    })
    .await;
    assert_eq!(sent.attempts, 2);
    assert!(
        mail.raw
            .contains(&format!("Message-ID: {}", sent.message_id)),
        "the stable Message-ID of the row: {}",
        mail.raw
    );

    // Nothing more goes out when the worker looks again, past the claim's lease (the
    // reset link lives an hour).
    server.advance(Duration::from_secs(120));
    assert_eq!(server.gatehouse.send_due_mail().await.unwrap(), 0);
    assert_eq!(
        server.mail.to("outage@example.com").len(),
        1,
        "exactly once"
    );

    // It is the real link.
    let reset = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&mail.link()), "password": "after the outage 1" }),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
}

async fn the_outbox_row_of_a_reset_holds_no_plaintext_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    account(&server, "sealed@example.com").await;
    server.mail.stop();
    forgot(&server, "sealed@example.com").await;
    // The row is committed with the answer: read it as it is at rest.
    let at_rest = rows_to(&server, "sealed@example.com").await;
    assert_eq!(at_rest.len(), 1);
    let at_rest = at_rest.into_iter().next().unwrap();
    row_until(&server, "sealed@example.com", "tried once", |r| {
        r.attempts == 1 && r.claim_id.is_none()
    })
    .await;

    server.mail.restart();
    server.advance(PAST_FIRST_RETRY);
    let mail = server
        .mail
        .wait_for("sealed@example.com", "Reset your")
        .await;
    let token = token_of(&mail.link());

    let sealed = at_rest
        .sealed_message
        .clone()
        .expect("a pending mail keeps its message");
    assert!(
        !contains(&sealed, token.as_bytes()),
        "the token is not in the clear"
    );
    assert!(
        !contains(&sealed, b"reset-password"),
        "nor is any of the message"
    );
    assert!(!contains(&sealed, b"sealed@example.com"));
    let text_columns = format!("{at_rest:?}");
    assert!(!text_columns.contains(&token), "{text_columns}");

    let sent = row_until(&server, "sealed@example.com", "sent", |r| {
        r.status == "sent"
    })
    .await;
    assert_eq!(
        sent.sealed_message, None,
        "the message is deleted once sent"
    );
}

async fn mail_that_keeps_failing_ends_dead_and_an_admin_retries_it(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[FAST_HASHING, "[mail.outbox]\nmax_attempts = 2\n"],
    )
    .await;
    let admin = server.admin("root@example.com").await;
    account(&server, "dead@example.com").await;
    server.mail.stop();

    forgot(&server, "dead@example.com").await;
    row_until(&server, "dead@example.com", "tried once", |r| {
        r.attempts == 1 && r.claim_id.is_none()
    })
    .await;
    server.advance(PAST_FIRST_RETRY);
    let dead = row_until(&server, "dead@example.com", "dead", |r| r.status == "dead").await;
    assert_eq!(dead.attempts, 2);

    let page: Value = server
        .get_as(&admin.access, "/api/v1/admin/mail?status=dead")
        .await
        .json()
        .await
        .unwrap();
    let listed = page["mail"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    let entry = &listed[0];
    assert_eq!(entry["id"], dead.id.to_string());
    assert_eq!(entry["recipient"], "dead@example.com");
    assert_eq!(entry["kind"], "reset_password");
    assert_eq!(entry["status"], "dead");
    assert_eq!(entry["attempts"], 2);
    assert!(entry["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    let mut fields: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "attempts",
            "created_at",
            "id",
            "kind",
            "last_attempt_at",
            "last_error",
            "next_attempt_at",
            "recipient",
            "sent_at",
            "status"
        ],
        "no message, no link"
    );
    assert!(!page.to_string().contains("token="));
    let pending: Value = server
        .get_as(&admin.access, "/api/v1/admin/mail?status=pending")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["mail"].as_array().unwrap().len(), 0);
    let bogus = server
        .get_as(&admin.access, "/api/v1/admin/mail?status=lost")
        .await;
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);

    // Waiting longer does not bring it back: dead is dead until an admin says otherwise.
    server.mail.restart();
    server.advance(Duration::from_secs(24 * 3600));
    assert_eq!(server.gatehouse.send_due_mail().await.unwrap(), 0);
    assert!(server.mail.all().is_empty());
    // A day later: a fresh access token.
    let admin = server.log_in("root@example.com", "admin password 1").await;

    let retry_path = format!("/api/v1/admin/mail/{}/retry", dead.id);
    let retried = server.post_as(&admin.access, &retry_path, json!({})).await;
    let status = retried.status();
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["attempts"], 0);
    server.mail.wait_for("dead@example.com", "Reset your").await;
    row_until(&server, "dead@example.com", "sent", |r| r.status == "sent").await;

    let again = server.post_as(&admin.access, &retry_path, json!({})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "mail_not_dead");
    let unknown = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/mail/{}/retry", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.mail.to("dead@example.com").len(), 1);

    for event in ["mail_dead", "mail_retried"] {
        let audit: Value = server
            .get_as(&admin.access, &format!("/api/v1/admin/audit?event={event}"))
            .await
            .json()
            .await
            .unwrap();
        let events = audit["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{event}: {audit}");
        assert_eq!(events[0]["details"]["mail_id"], dead.id.to_string());
    }
}

async fn a_non_admin_cannot_list_or_retry_mail(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server
        .verified_user("nosy@example.com", "nosy password 1")
        .await;
    let row = row_until(&server, "nosy@example.com", "sent", |r| r.status == "sent").await;
    let list = server.get_as(&user.access, "/api/v1/admin/mail").await;
    assert_eq!(list.status(), StatusCode::FORBIDDEN);
    let retry = server
        .post_as(
            &user.access,
            &format!("/api/v1/admin/mail/{}/retry", row.id),
            json!({}),
        )
        .await;
    assert_eq!(retry.status(), StatusCode::FORBIDDEN);
    let anonymous = server
        .http
        .get(server.url("/api/v1/admin/mail"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn two_instances_never_send_one_mail_twice(backend: Backend) {
    let server = TestServer::start(backend).await;
    let other = server.another_instance().await;
    let addresses: Vec<String> = (0..12).map(|n| format!("twice{n}@example.com")).collect();
    for address in &addresses {
        account(&server, address).await;
    }
    // Both instances queue mail and both workers race for every row.
    futures_util::future::join_all(addresses.iter().enumerate().map(|(n, address)| {
        let instance = if n % 2 == 0 { &server } else { &other };
        forgot(instance, address)
    }))
    .await;
    for address in &addresses {
        let row = row_until(&server, address, "sent", |r| r.status == "sent").await;
        assert_eq!(row.attempts, 1, "claimed once: {row:?}");
    }
    // The two instances share one mail relay, as behind a load balancer.
    for address in &addresses {
        let received = server.mail.to(address).len();
        assert_eq!(received, 1, "{address} got {received} mails");
    }
}

async fn sent_mail_is_purged_after_its_retention(backend: Backend) {
    let server = TestServer::start(backend).await;
    account(&server, "purged@example.com").await;
    account(&server, "waiting@example.com").await;
    forgot(&server, "purged@example.com").await;
    server
        .mail
        .wait_for("purged@example.com", "Reset your")
        .await;
    row_until(&server, "purged@example.com", "sent", |r| {
        r.status == "sent"
    })
    .await;
    server.mail.stop();
    forgot(&server, "waiting@example.com").await;

    assert_eq!(
        server.gatehouse.purge_expired().await.unwrap().mail_outbox,
        0
    );
    // Past `mail.outbox.sent_retention` (7 days).
    server.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let report = server.gatehouse.purge_expired().await.unwrap();
    assert_eq!(report.mail_outbox, 1);
    assert!(rows_to(&server, "purged@example.com").await.is_empty());
    assert_eq!(
        rows_to(&server, "waiting@example.com").await.len(),
        1,
        "mail not sent yet stays"
    );
}
