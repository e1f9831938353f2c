//! Step-up: sensitive actions need an authentication within `auth.fresh_age`, proved
//! again with `POST /api/v1/reauthenticate`; the clock is the test's, moved forward.

use std::time::Duration;

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, Tokens, error_code, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    a_password_change_needs_a_recent_login,
    admin_writes_need_a_recent_login,
    reauthenticating_one_session_does_not_freshen_another,
    an_email_change_and_a_deletion_need_a_recent_login,
    a_new_password_ends_a_pending_email_change,
    the_pages_ask_for_the_password_and_resume_the_action,
);

const PASSWORD: &str = "step up password 1";
const STALE: Duration = Duration::from_secs(16 * 60);

/// A live access token of the same session after the clock moved (access tokens live
/// less than `auth.fresh_age`): a refresh, which keeps the session and its freshness.
pub async fn refreshed(server: &TestServer, tokens: &mut Tokens) -> String {
    let response = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    *tokens = Tokens::from(response.json::<Value>().await.unwrap());
    tokens.access.clone()
}

async fn a_password_change_needs_a_recent_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut user = server.verified_user("sa@example.com", PASSWORD).await;
    let change = json!({ "current_password": PASSWORD, "new_password": "a new password 2" });
    server.advance(Duration::from_secs(14 * 60));
    let access = refreshed(&server, &mut user).await;
    let fresh_enough = server
        .post_as(&access, "/api/v1/password/change", change.clone())
        .await;
    assert_eq!(
        fresh_enough.status(),
        StatusCode::OK,
        "within auth.fresh_age"
    );

    let mut user = server.log_in("sa@example.com", "a new password 2").await;
    server.advance(STALE);
    // A token refreshed since is no fresher: it is the same login.
    let access = &refreshed(&server, &mut user).await;
    let change =
        json!({ "current_password": "a new password 2", "new_password": "a third password 3" });
    let stale = server
        .post_as(access, "/api/v1/password/change", change.clone())
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");

    let wrong = server
        .post_as(
            access,
            "/api/v1/reauthenticate",
            json!({ "password": "not it at all" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(wrong).await, "invalid_current_password");
    let again = server
        .post_as(
            access,
            "/api/v1/reauthenticate",
            json!({ "password": "a new password 2" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let changed = server
        .post_as(access, "/api/v1/password/change", change)
        .await;
    assert_eq!(changed.status(), StatusCode::OK);

    // Fresh for auth.fresh_age, not for ever.
    server.advance(STALE);
    let later =
        json!({ "current_password": "a third password 3", "new_password": "a fourth password 4" });
    let access = &refreshed(&server, &mut user).await;
    let stale = server
        .post_as(access, "/api/v1/password/change", later)
        .await;
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

async fn admin_writes_need_a_recent_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin("root@example.com").await;
    let mut user = server.verified_user("sb@example.com", PASSWORD).await;
    let me: Value = server
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/admin/users/{}", me["id"].as_str().unwrap());
    server.advance(STALE);
    let access = &refreshed(&server, &mut admin).await;
    // Reading stays open; writing does not.
    assert_eq!(server.get_as(access, &path).await.status(), StatusCode::OK);
    let writes = [
        server.patch_as(access, &path, json!({ "disabled": true })).await,
        server
            .post_as(access, &format!("{path}/sessions/revoke"), json!({}))
            .await,
        server
            .post_as(
                access,
                "/api/v1/admin/clients",
                json!({ "name": "x", "type": "public", "grant_types": ["authorization_code"], "redirect_uris": ["http://127.0.0.1:9/cb"] }),
            )
            .await,
    ];
    for response in writes {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(response).await, "reauthentication_required");
    }
    let user_access = refreshed(&server, &mut user).await;
    assert_eq!(
        server.get_as(&user_access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    let again = server
        .post_as(
            access,
            "/api/v1/reauthenticate",
            json!({ "password": "admin password 1" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let disabled = server
        .patch_as(access, &path, json!({ "disabled": true }))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
}

async fn reauthenticating_one_session_does_not_freshen_another(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut first = server.verified_user("sc@example.com", PASSWORD).await;
    let mut second = server.log_in("sc@example.com", PASSWORD).await;
    server.advance(STALE);
    let (first, second) = (
        refreshed(&server, &mut first).await,
        refreshed(&server, &mut second).await,
    );
    let again = server
        .post_as(
            &first,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let change = json!({ "current_password": PASSWORD, "new_password": "another password 2" });
    let other = server
        .post_as(&second, "/api/v1/password/change", change.clone())
        .await;
    assert_eq!(error_code(other).await, "reauthentication_required");
    let own = server
        .post_as(&first, "/api/v1/password/change", change)
        .await;
    assert_eq!(own.status(), StatusCode::OK);
}

async fn the_pages_ask_for_the_password_and_resume_the_action(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.verified_user("sd@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "sd@example.com", PASSWORD)
        .await;
    let fresh = walker.get(&server.url("/account/delete")).await;
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "a new login may delete at once"
    );

    server.advance(STALE);
    let stale = walker.get(&server.url("/account/delete")).await;
    let ask = location(&stale);
    assert_eq!(ask.path(), "/reauthenticate");
    let page = walker.get(ask.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());
    let wrong = walker
        .post(
            &server.url("/reauthenticate"),
            &[
                ("csrf_token", &csrf),
                ("password", "not it at all"),
                ("next", "/account/delete"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The password is wrong.")
    );
    // `next` never leaves the account pages.
    let elsewhere = walker
        .post(
            &server.url("/reauthenticate"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(
        location(&elsewhere).as_str(),
        server.url("/account/sessions")
    );
    server.advance(STALE);
    let stale = walker.get(&server.url("/account/delete")).await;
    assert_eq!(location(&stale).path(), "/reauthenticate");
    let resumed = walker
        .post(
            &server.url("/reauthenticate"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("next", "/account/delete"),
            ],
        )
        .await;
    assert_eq!(location(&resumed).as_str(), server.url("/account/delete"));
    let page = walker.get(&server.url("/account/delete")).await;
    assert_eq!(page.status(), StatusCode::OK, "the action it asked for");
}

async fn an_email_change_and_a_deletion_need_a_recent_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut user = server.verified_user("se@example.com", PASSWORD).await;
    server.advance(STALE);
    let access = refreshed(&server, &mut user).await;
    let change = server
        .post_as(
            &access,
            "/api/v1/me/email",
            json!({ "email": "se2@example.com" }),
        )
        .await;
    assert_eq!(change.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(change).await, "reauthentication_required");
    let delete = server.delete_as(&access, "/api/v1/me").await;
    assert_eq!(error_code(delete).await, "reauthentication_required");
    assert!(server.mail.to("se2@example.com").is_empty());
    let again = server
        .post_as(
            &access,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let delete = server.delete_as(&access, "/api/v1/me").await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
}

async fn a_new_password_ends_a_pending_email_change(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.verified_user("sf@example.com", PASSWORD).await;
    // Someone with the session asks to move the account to their address...
    let asked = server
        .post_as(
            &user.access,
            "/api/v1/me/email",
            json!({ "email": "sf-thief@example.com" }),
        )
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let link = server
        .mail
        .wait_for("sf-thief@example.com", "Confirm the new email address")
        .await
        .link();
    // ...and the owner, warned, changes the password: the pending change ends with it.
    let changed = server
        .post_as(
            &user.access,
            "/api/v1/password/change",
            json!({ "current_password": PASSWORD, "new_password": "a safer password 2" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let confirm = server
        .post(
            "/api/v1/me/email/confirm",
            json!({ "token": gatehouse_tests::token_of(&link) }),
        )
        .await;
    assert_eq!(confirm.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(confirm).await, "invalid_token");
}
