//! Admins ban accounts: the user's sessions end at once, a login with the right password
//! is refused with the end of the ban, and a ban with an end lets the user back when the
//! end passes.

use std::time::Duration;

use gatehouse_core::Clock;
use gatehouse_entity::users;
use gatehouse_tests::pages::PageWalker;
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, Tokens, error_code, on_both_databases};
use reqwest::{Response, StatusCode};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    a_ban_ends_every_session_and_refuses_the_login,
    a_ban_without_end_holds_until_lifted,
    a_ban_ends_on_its_own_when_its_end_passes,
    banning_again_replaces_the_reason_and_the_end,
    ban_requests_are_checked,
    only_admins_ban_and_never_themselves,
    the_login_page_says_until_when,
    a_session_of_a_banned_account_is_refused,
    a_demoted_admin_cannot_ban_through_a_stale_view,
    a_banned_account_gets_no_reset_or_verification_link,
);

const PASSWORD: &str = "banned password 1";
/// The password of `TestServer::admin`'s accounts.
const ADMIN_PASSWORD: &str = "admin password 1";

async fn user_id(server: &TestServer, access: &str) -> String {
    let me: Value = server
        .get_as(access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

/// The server's time plus `ahead`, in whole seconds (as a client would write it).
fn server_time_in(server: &TestServer, ahead: Duration) -> String {
    (server.clock.now() + ahead)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn ban(server: &TestServer, admin: &Tokens, id: &str, body: Value) -> Response {
    server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/users/{id}/ban"),
            body,
        )
        .await
}

async fn unban(server: &TestServer, admin: &Tokens, id: &str) -> Response {
    server
        .delete_as(&admin.access, &format!("/api/v1/admin/users/{id}/ban"))
        .await
}

async fn log_in(server: &TestServer, email: &str, password: &str) -> Response {
    server
        .post(
            "/api/v1/login",
            json!({ "email": email, "password": password }),
        )
        .await
}

async fn introspect(server: &TestServer, client: &(String, String), token: &str) -> Value {
    let response = server
        .post_form(
            "/oauth2/introspect",
            (&client.0, &client.1),
            &[("token", token)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn refresh(server: &TestServer, tokens: &Tokens) -> Response {
    server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": tokens.refresh }),
        )
        .await
}

async fn a_ban_ends_every_session_and_refuses_the_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = user_id(&server, &admin.access).await;
    let client = server.service_client(&admin, &["a"]).await;
    let email = "ba@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let other = server.log_in(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;
    assert_eq!(
        introspect(&server, &client, &user.access).await["active"],
        true
    );

    let until = server_time_in(&server, Duration::from_secs(7 * 24 * 3600));
    let banned = ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "  spam in the forum  ", "until": until }),
    )
    .await;
    assert_eq!(banned.status(), StatusCode::OK);
    let view: Value = banned.json().await.unwrap();
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["banned"]["reason"], "spam in the forum");
    assert_eq!(view["banned"]["until"], until.as_str());
    assert!(view["banned"]["since"].is_string());
    assert_eq!(view["disabled"], false);

    // Every session ended: access tokens, refresh tokens, introspection.
    for tokens in [&user, &other] {
        let me = server.get_as(&tokens.access, "/api/v1/me").await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(me).await, "unauthenticated");
        let refreshed = refresh(&server, tokens).await;
        assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(refreshed).await, "invalid_refresh_token");
        assert_eq!(
            introspect(&server, &client, &tokens.access).await["active"],
            false
        );
        assert_eq!(
            introspect(&server, &client, &tokens.refresh).await["active"],
            false
        );
    }
    let sessions: Vec<Value> = server
        .get_as(&admin.access, &format!("/api/v1/admin/users/{id}/sessions"))
        .await
        .json()
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");

    // The right password: refused, with the end of the ban.
    let refused = log_in(&server, email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "account_banned");
    assert!(
        body["message"].as_str().unwrap().contains("banned"),
        "{body}"
    );
    assert_eq!(body["banned_until"], until.as_str());
    // A wrong password: the same answer as for any wrong password (the ban stays hidden).
    let wrong = log_in(&server, email, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_credentials");
    assert!(body.get("banned_until").is_none(), "{body}");

    // The audit log: who banned whom, why and until when; the refused login.
    let page: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?user_id={id}&event=user_banned"),
        )
        .await
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["actor_user_id"], admin_id.as_str());
    assert_eq!(events[0]["subject_user_id"], id.as_str());
    assert_eq!(events[0]["details"]["reason"], "spam in the forum");
    assert_eq!(events[0]["details"]["until"], until.as_str());
    assert_eq!(events[0]["details"]["sessions_revoked"], 2);
    let failed: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?user_id={id}&event=login_failed"),
        )
        .await
        .json()
        .await
        .unwrap();
    let reasons: Vec<&Value> = failed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["details"]["reason"])
        .collect();
    assert!(reasons.contains(&&json!("account_banned")), "{failed}");

    // Lifting the ban does not bring the ended sessions back.
    assert_eq!(unban(&server, &admin, &id).await.status(), StatusCode::OK);
    for tokens in [&user, &other] {
        assert_eq!(
            server.get_as(&tokens.access, "/api/v1/me").await.status(),
            StatusCode::UNAUTHORIZED,
            "a ban revokes the sessions; unbanning leaves them ended"
        );
        assert_eq!(
            refresh(&server, tokens).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    server.log_in(email, PASSWORD).await;
}

async fn a_ban_without_end_holds_until_lifted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = user_id(&server, &admin.access).await;
    let email = "bb@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;

    let banned = ban(&server, &admin, &id, json!({ "reason": "chargeback" })).await;
    assert_eq!(banned.status(), StatusCode::OK);
    let view: Value = banned.json().await.unwrap();
    assert_eq!(view["banned"]["reason"], "chargeback");
    assert!(view["banned"]["until"].is_null(), "{view}");

    server.advance(Duration::from_secs(3650 * 24 * 3600));
    let admin = server.log_in("root@example.com", ADMIN_PASSWORD).await;
    let refused = log_in(&server, email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "account_banned");
    assert!(
        body.as_object().unwrap().contains_key("banned_until") && body["banned_until"].is_null(),
        "a ban without end says so: {body}"
    );
    let detail: Value = server
        .get_as(&admin.access, &format!("/api/v1/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["banned"]["reason"], "chargeback");

    let lifted = unban(&server, &admin, &id).await;
    assert_eq!(lifted.status(), StatusCode::OK);
    assert!(lifted.json::<Value>().await.unwrap()["banned"].is_null());
    let back = server.log_in(email, PASSWORD).await;
    assert_eq!(
        server.get_as(&back.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // Lifting again changes nothing and records nothing.
    let again = unban(&server, &admin, &id).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.json::<Value>().await.unwrap()["banned"].is_null());
    let page: Value = server
        .get_as(
            &admin.access,
            &format!("/api/v1/admin/audit?user_id={id}&event=user_unbanned"),
        )
        .await
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["actor_user_id"], admin_id.as_str());
    assert_eq!(events[0]["subject_user_id"], id.as_str());
    assert_eq!(events[0]["details"]["reason"], "chargeback");
    assert!(events[0]["details"]["until"].is_null());
}

async fn a_ban_ends_on_its_own_when_its_end_passes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let email = "bc@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;

    let until = server_time_in(&server, Duration::from_secs(3600));
    let banned = ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "cool down", "until": until }),
    )
    .await;
    assert_eq!(banned.status(), StatusCode::OK);
    server.advance(Duration::from_secs(3500));
    let refused = log_in(&server, email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "account_banned");

    server.advance(Duration::from_secs(101));
    let back = server.log_in(email, PASSWORD).await;
    assert_eq!(
        server.get_as(&back.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(refresh(&server, &back).await.status(), StatusCode::OK);
    let admin = server.log_in("root@example.com", ADMIN_PASSWORD).await;
    let detail = server
        .get_as(&admin.access, &format!("/api/v1/admin/users/{id}"))
        .await;
    assert_eq!(detail.status(), StatusCode::OK);
    let detail: Value = detail.json().await.unwrap();
    assert_eq!(detail["email"], email);
    assert!(
        detail["banned"].is_null(),
        "an ended ban is not shown: {detail}"
    );
}

async fn banning_again_replaces_the_reason_and_the_end(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let email = "bd@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;

    let first_end = server_time_in(&server, Duration::from_secs(3600));
    let first: Value = ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "first", "until": first_end }),
    )
    .await
    .json()
    .await
    .unwrap();
    server.advance(Duration::from_secs(60));
    let longer = server_time_in(&server, Duration::from_secs(48 * 3600));
    let second = ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "second", "until": longer }),
    )
    .await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["banned"]["reason"], "second");
    assert_eq!(second["banned"]["until"], longer.as_str());
    assert_eq!(
        second["banned"]["since"], first["banned"]["since"],
        "the ban goes on from when it began"
    );

    // Past the first end, the second one holds.
    server.advance(Duration::from_secs(2 * 3600));
    let refused = log_in(&server, email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["banned_until"], longer.as_str());

    // Banned for good now.
    let admin = server.log_in("root@example.com", ADMIN_PASSWORD).await;
    let for_good: Value = ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "third", "until": null }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(for_good["banned"]["until"].is_null(), "{for_good}");
    server.advance(Duration::from_secs(72 * 3600));
    let refused = log_in(&server, email, PASSWORD).await;
    assert_eq!(error_code(refused).await, "account_banned");
}

async fn ban_requests_are_checked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let email = "be@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;

    let past = server_time_in(&server, Duration::ZERO);
    server.advance(Duration::from_secs(1));
    let cases = [
        (
            json!({ "reason": "late", "until": past }),
            "invalid_ban_until",
        ),
        (json!({ "reason": "   " }), "invalid_ban_reason"),
        (json!({ "reason": "x".repeat(501) }), "invalid_ban_reason"),
        (json!({ "until": null }), "invalid_request"),
        (
            json!({ "reason": "r", "until": "next tuesday" }),
            "invalid_request",
        ),
        (json!({ "reason": "r", "forever": true }), "invalid_request"),
    ];
    for (body, code) in cases {
        let refused = ban(&server, &admin, &id, body.clone()).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(refused).await, code, "{body}");
    }
    let longest = ban(&server, &admin, &id, json!({ "reason": "é".repeat(500) })).await;
    assert_eq!(longest.status(), StatusCode::OK);
    assert_eq!(unban(&server, &admin, &id).await.status(), StatusCode::OK);

    let unknown = Uuid::now_v7();
    let missing = ban(
        &server,
        &admin,
        &unknown.to_string(),
        json!({ "reason": "r" }),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "not_found");
    let missing = unban(&server, &admin, &unknown.to_string()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "not_found");
    server.log_in(email, PASSWORD).await;
}

async fn only_admins_ban_and_never_themselves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = user_id(&server, &admin.access).await;
    let mallory = server.verified_user("bf@example.com", PASSWORD).await;
    let victim = server.verified_user("bg@example.com", PASSWORD).await;
    let victim_id = user_id(&server, &victim.access).await;

    let path = format!("/api/v1/admin/users/{victim_id}/ban");
    let refused = server
        .post_as(&mallory.access, &path, json!({ "reason": "r" }))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "forbidden");
    let anonymous = server.post(&path, json!({ "reason": "r" })).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get_as(&victim.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    ban(&server, &admin, &victim_id, json!({ "reason": "r" })).await;
    let refused = server.delete_as(&mallory.access, &path).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "forbidden");
    assert_eq!(
        error_code(log_in(&server, "bg@example.com", PASSWORD).await).await,
        "account_banned"
    );

    let own = ban(&server, &admin, &admin_id, json!({ "reason": "oops" })).await;
    assert_eq!(own.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(own).await, "cannot_modify_self");
    assert_eq!(
        server.get_as(&admin.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

async fn the_login_page_says_until_when(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let email = "bh@example.com";
    let user = server.verified_user(email, PASSWORD).await;
    let id = user_id(&server, &user.access).await;
    let until = "2099-03-04T05:06:07Z";
    ban(
        &server,
        &admin,
        &id,
        json!({ "reason": "r", "until": until }),
    )
    .await;

    let walker = PageWalker::new();
    let page = walker.log_in(&server.base_url, email, PASSWORD).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("This account is banned until 2099-03-04 05:06:07 UTC."),
        "{html}"
    );
    let wrong = walker
        .log_in(&server.base_url, email, "not the password")
        .await;
    let html = wrong.text().await.unwrap();
    assert!(!html.contains("banned"), "{html}");
    assert!(html.contains("The email or password is wrong."), "{html}");

    ban(&server, &admin, &id, json!({ "reason": "r" })).await;
    let page = walker.log_in(&server.base_url, email, PASSWORD).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("This account is banned. Contact the administrator."),
        "{html}"
    );
}

/// Defence in depth: a session the ban did not revoke (a login that raced the ban,
/// opened after its revocations) is refused while the ban holds. The ban is written
/// straight to the database here, as such a race would leave it; the read cache is off so
/// that the write is seen at once.
async fn a_session_of_a_banned_account_is_refused(backend: Backend) {
    let server =
        TestServer::start_with(backend, &[FAST_HASHING, "[read_cache]\nttl = \"0s\"\n"]).await;
    let admin = server.admin("root@example.com").await;
    let client = server.service_client(&admin, &["a"]).await;
    let user = server.verified_user("bi@example.com", PASSWORD).await;
    let id: Uuid = user_id(&server, &user.access).await.parse().unwrap();
    let now = server.clock.now();
    users::ActiveModel {
        id: Set(id),
        banned_at: Set(Some(now)),
        banned_until: Set(Some(now + Duration::from_secs(300))),
        ban_reason: Set(Some("raced".to_owned())),
        ..Default::default()
    }
    .update(server.gatehouse.db_writer())
    .await
    .unwrap();

    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect(&server, &client, &user.access).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &client, &user.refresh).await["active"],
        false
    );
    assert_eq!(
        refresh(&server, &user).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Once the ban ends, the session (never revoked) stands again.
    server.advance(Duration::from_secs(301));
    assert_eq!(
        server.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        introspect(&server, &client, &user.refresh).await["active"],
        true
    );
}

/// Admin writes check the role as stored now: an admin demoted through one instance
/// cannot ban through another whose view still holds her admin session.
async fn a_demoted_admin_cannot_ban_through_a_stale_view(backend: Backend) {
    let first = TestServer::start(backend).await;
    let second = first.another_instance().await;
    let root = first.admin("root@example.com").await;
    let eve = first.admin("eve@example.com").await;
    let user = first.verified_user("bj@example.com", PASSWORD).await;
    let eve_id = user_id(&first, &eve.access).await;
    let user_id = user_id(&first, &user.access).await;
    // The second instance reads (and keeps) Eve's session.
    assert_eq!(
        second
            .get_as(&eve.access, "/api/v1/admin/users")
            .await
            .status(),
        StatusCode::OK
    );
    let demoted = first
        .patch_as(
            &root.access,
            &format!("/api/v1/admin/users/{eve_id}"),
            json!({ "role": "user" }),
        )
        .await;
    assert_eq!(demoted.status(), StatusCode::OK);
    let refused = ban(&second, &eve, &user_id, json!({ "reason": "revenge" })).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "forbidden");
    assert_eq!(
        first.get_as(&user.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
}

/// The id of the account with `email`, from the admin API.
async fn id_by_email(server: &TestServer, admin: &Tokens, email: &str) -> String {
    let found: Value = server
        .get_as(&admin.access, &format!("/api/v1/admin/users?email={email}"))
        .await
        .json()
        .await
        .unwrap();
    found["users"][0]["id"].as_str().unwrap().to_owned()
}

async fn a_banned_account_gets_no_reset_or_verification_link(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    server.verified_user("bm@example.com", PASSWORD).await;
    server.verified_user("control@example.com", PASSWORD).await;
    server.sign_up("bn@example.com", PASSWORD).await;
    server.sign_up("control2@example.com", PASSWORD).await;
    for email in ["bm@example.com", "bn@example.com"] {
        let id = id_by_email(&server, &admin, email).await;
        let banned = ban(&server, &admin, &id, json!({ "reason": "abuse" })).await;
        assert_eq!(banned.status(), StatusCode::OK);
    }
    // Past the cooldown of the sign-up mails.
    server.advance(Duration::from_secs(10 * 60));
    // The same answer as for any address; the banned accounts' requests go first, so
    // once the control mails arrive, theirs would have too.
    for (path, email) in [
        ("/api/v1/password/forgot", "bm@example.com"),
        ("/api/v1/email/verify/resend", "bn@example.com"),
        ("/api/v1/password/forgot", "control@example.com"),
        ("/api/v1/email/verify/resend", "control2@example.com"),
    ] {
        let asked = server.post(path, json!({ "email": email })).await;
        assert_eq!(asked.status(), StatusCode::ACCEPTED, "{path} {email}");
    }
    server
        .mail
        .wait_for("control@example.com", "Reset your")
        .await;
    server
        .mail
        .wait_for_nth("control2@example.com", "Confirm your email", 2)
        .await;
    let resets = server
        .mail
        .to("bm@example.com")
        .into_iter()
        .filter(|m| m.subject.contains("Reset your"))
        .count();
    assert_eq!(resets, 0);
    assert_eq!(
        server.mail.to("bn@example.com").len(),
        1,
        "the sign-up's only"
    );
}
