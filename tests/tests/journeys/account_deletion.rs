//! Deleting one's own account: every session ends (and the revocation feed says so), the
//! personal data goes, the audit log stays without it, and the address is free again.

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, Tokens, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    deletion_ends_every_session_and_login,
    deletion_erases_the_data_and_keeps_a_pseudonymous_audit_log,
    the_address_can_sign_up_again_as_a_new_account,
    an_admin_cannot_delete_their_own_account,
);

const PASSWORD: &str = "delete password 1";
const AGENT: &str = "journey-agent/1.0";

/// Logs in with a user agent the audit log records.
async fn log_in(server: &TestServer, email: &str) -> Tokens {
    let response = server
        .http
        .post(server.url("/api/v1/login"))
        .header("user-agent", AGENT)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Tokens::from(response.json::<Value>().await.unwrap())
}

async fn user_id(server: &TestServer, who: &Tokens) -> Uuid {
    let me: Value = server
        .get_as(&who.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().parse().unwrap()
}

async fn audit_of(server: &TestServer, admin: &Tokens, id: Uuid) -> Vec<Value> {
    let page: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?user_id={id}&limit=200"),
        )
        .await
        .json()
        .await
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

async fn deletion_ends_every_session_and_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.verified_user("ola@example.com", PASSWORD).await;
    let second = log_in(&server, "ola@example.com").await;

    let deleted = server.delete_as(&first.access, "/api/v1/me").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    for tokens in [&first, &second] {
        assert_eq!(
            server.get_as(&tokens.access, "/api/v1/me").await.status(),
            StatusCode::UNAUTHORIZED
        );
        let refresh = server
            .post(
                "/api/v1/token/refresh",
                json!({ "refresh_token": tokens.refresh }),
            )
            .await;
        assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(refresh).await, "invalid_refresh_token");
    }
    let login = server
        .post(
            "/api/v1/login",
            json!({ "email": "ola@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(login).await, "invalid_credentials");

    // The revocation feed lists both sessions, so app backends drop their tokens.
    let feed = gatehouse_entity::session_revocations::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap();
    for tokens in [&first, &second] {
        assert!(
            feed.iter().any(|r| r.session_id == tokens.session_id),
            "{:?} not in the feed: {feed:?}",
            tokens.session_id
        );
    }
}

async fn deletion_erases_the_data_and_keeps_a_pseudonymous_audit_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let verify = server.sign_up("pia@example.com", PASSWORD).await;
    server
        .post(
            "/api/v1/email/verify",
            json!({ "token": token_of(&verify) }),
        )
        .await;
    // A reset link and an email change pending: both go with the account.
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "pia@example.com" }),
        )
        .await;
    server.mail.wait_for("pia@example.com", "Reset your").await;
    let pia = log_in(&server, "pia@example.com").await;
    server
        .post_as(
            &pia.access,
            "/api/v1/me/email",
            json!({ "email": "pia.new@example.org" }),
        )
        .await;
    server
        .mail
        .wait_for("pia.new@example.org", "Confirm the new email address")
        .await;
    let id = user_id(&server, &pia).await;
    let before = audit_of(&server, &admin, id).await;
    assert!(
        before
            .iter()
            .any(|e| e["user_agent"] == AGENT && e["ip"].is_string()),
        "the login was recorded with its client: {before:?}"
    );

    let deleted = server.delete_as(&pia.access, "/api/v1/me").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let db = server.gatehouse.db();
    assert!(
        gatehouse_entity::users::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .is_none()
    );
    for table_rows in [
        gatehouse_entity::sessions::Entity::find()
            .filter(gatehouse_entity::sessions::Column::UserId.eq(id))
            .all(db)
            .await
            .unwrap()
            .len(),
        gatehouse_entity::one_time_tokens::Entity::find()
            .filter(gatehouse_entity::one_time_tokens::Column::UserId.eq(id))
            .all(db)
            .await
            .unwrap()
            .len(),
        gatehouse_entity::mail_outbox::Entity::find()
            .filter(gatehouse_entity::mail_outbox::Column::Recipient.eq("pia@example.com"))
            .all(db)
            .await
            .unwrap()
            .len(),
    ] {
        assert_eq!(table_rows, 0);
    }

    let after = audit_of(&server, &admin, id).await;
    assert_eq!(after.len(), before.len() + 1, "entries kept: {after:?}");
    assert_eq!(after[0]["event"], "account_deleted");
    for entry in &after {
        assert!(entry["ip"].is_null(), "{entry}");
        assert!(entry["user_agent"].is_null(), "{entry}");
        let text = entry.to_string();
        assert!(
            !text.contains("example.org"),
            "no trace of the address: {text}"
        );
        assert!(!text.contains("pia@"), "no trace of the address: {text}");
    }
    // Entries about other users keep their client.
    let root = audit_of(&server, &admin, user_id(&server, &admin).await).await;
    assert!(root.iter().any(|e| e["ip"].is_string()), "{root:?}");
}

async fn the_address_can_sign_up_again_as_a_new_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let old = server.verified_user("quinn@example.com", PASSWORD).await;
    let old_id = user_id(&server, &old).await;
    assert_eq!(
        server.delete_as(&old.access, "/api/v1/me").await.status(),
        StatusCode::NO_CONTENT
    );

    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": "quinn@example.com", "password": "brand new password" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let link = server
        .mail
        .wait_for_nth("quinn@example.com", "Confirm your email", 2)
        .await
        .link();
    let verified = server
        .post("/api/v1/email/verify", json!({ "token": token_of(&link) }))
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let fresh = server
        .log_in("quinn@example.com", "brand new password")
        .await;
    let me: Value = server
        .get_as(&fresh.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "quinn@example.com");
    assert_ne!(me["id"].as_str().unwrap(), old_id.to_string());
}

async fn an_admin_cannot_delete_their_own_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("boss@example.com").await;
    let response = server.delete_as(&admin.access, "/api/v1/me").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await, "admin_cannot_be_deleted");
    assert_eq!(
        server.get_as(&admin.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_deletes_after_asking_with_csrf() {
    let server = TestServer::start(Backend::Sqlite).await;
    let api = server.verified_user("ray@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    let login = walker
        .log_in(&server.base_url, "ray@example.com", PASSWORD)
        .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);

    let account = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(account.status(), StatusCode::OK);
    assert!(
        account
            .text()
            .await
            .unwrap()
            .contains("href=\"/account/delete\"")
    );
    let page = walker.get(&server.url("/account/delete")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());

    let forged = walker.post(&server.url("/account/delete"), &[]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.get_as(&api.access, "/api/v1/me").await.status(),
        StatusCode::OK,
        "nothing happened without the CSRF token"
    );

    let deleted = walker
        .post(&server.url("/account/delete"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(deleted.text().await.unwrap().contains("Account deleted"));
    assert_eq!(
        server.get_as(&api.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let after = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after).path(), "/login");
}
