//! Changing the address of an account: the request (a link to the new address, a notice to
//! the old one), the confirmation, and the undo from the old address.

use std::time::Duration;

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, Tokens, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    a_confirmed_change_moves_the_login_to_the_new_address,
    the_current_address_or_a_bad_one_is_refused,
    a_taken_address_answers_the_same_and_gets_no_link,
    confirming_after_the_address_was_taken_meanwhile_changes_nothing,
    a_new_request_replaces_the_pending_one,
    a_token_changes_only_the_account_that_asked,
    undo_restores_the_address_and_signs_out_everywhere,
    undo_is_refused_when_the_old_address_was_taken_meanwhile,
    the_links_expire,
    the_request_is_rate_limited_per_address,
    reset_links_mailed_to_the_old_address_stop_working,
    concurrent_confirmations_with_one_link_let_exactly_one_succeed,
    the_account_page_asks_for_a_change_after_a_recent_login,
);

const PASSWORD: &str = "change password 1";
const CONFIRM: &str = "Confirm the new email address";
const REQUESTED: &str = "Email change requested";
const CHANGED: &str = "email address of your";
const UNDONE: &str = "Email change undone";

async fn request(server: &TestServer, who: &Tokens, email: &str) -> reqwest::Response {
    server
        .post_as(&who.access, "/api/v1/me/email", json!({ "email": email }))
        .await
}

async fn me(server: &TestServer, who: &Tokens) -> Value {
    let response = server.get_as(&who.access, "/api/v1/me").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn confirm(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .post("/api/v1/me/email/confirm", json!({ "token": token }))
        .await
}

async fn undo(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .post("/api/v1/me/email/undo", json!({ "token": token }))
        .await
}

async fn login_status(server: &TestServer, email: &str) -> StatusCode {
    server
        .post(
            "/api/v1/login",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await
        .status()
}

/// A user who changed from `old` to `new`; returns the undo link mailed to `old`.
async fn changed(server: &TestServer, who: &Tokens, old: &str, new: &str) -> String {
    assert_eq!(
        request(server, who, new).await.status(),
        StatusCode::ACCEPTED
    );
    let link = server.mail.wait_for(new, CONFIRM).await.link();
    assert_eq!(
        confirm(server, &token_of(&link)).await.status(),
        StatusCode::OK
    );
    server.mail.wait_for(old, CHANGED).await.link()
}

async fn audit(server: &TestServer, admin: &Tokens, event: &str) -> Vec<Value> {
    let page: Value = server
        .get_as(&admin.access, &format!("/api/v1/admin/audit?event={event}"))
        .await
        .json()
        .await
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

async fn a_confirmed_change_moves_the_login_to_the_new_address(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let ann = server.verified_user("ann@example.com", PASSWORD).await;

    let response = request(&server, &ann, "  Ann.New@Example.COM ").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let notice = server.mail.wait_for("ann@example.com", REQUESTED).await;
    assert!(
        notice.text.contains("ann.new@example.com"),
        "{}",
        notice.text
    );
    let mail = server.mail.wait_for("ann.new@example.com", CONFIRM).await;
    let link = mail.link();
    assert!(
        link.starts_with(&format!("{}/confirm-email?token=", server.base_url)),
        "{link}"
    );
    // Nothing changed before the link is used.
    assert_eq!(me(&server, &ann).await["email"], "ann@example.com");
    assert_eq!(
        login_status(&server, "ann.new@example.com").await,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        confirm(&server, &token_of(&link)).await.status(),
        StatusCode::OK
    );
    let now = me(&server, &ann).await;
    assert_eq!(now["email"], "ann.new@example.com");
    assert_eq!(now["email_verified"], true);
    assert_eq!(
        login_status(&server, "ann.new@example.com").await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&server, "ann@example.com").await,
        StatusCode::UNAUTHORIZED
    );

    let again = confirm(&server, &token_of(&link)).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(again).await, "invalid_token", "single use");

    let undo_link = server
        .mail
        .wait_for("ann@example.com", CHANGED)
        .await
        .link();
    assert!(
        undo_link.starts_with(&format!("{}/undo-email-change?token=", server.base_url)),
        "{undo_link}"
    );
    let entries = audit(&server, &admin, "email_changed").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["details"]["from_domain"], "example.com");
    assert_eq!(entries[0]["details"]["to_domain"], "example.com");
    for event in ["email_change_requested", "email_changed"] {
        let text = serde_json::to_string(&audit(&server, &admin, event).await).unwrap();
        assert!(!text.contains('@'), "{event} holds no address: {text}");
    }
}

async fn the_current_address_or_a_bad_one_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bea = server.verified_user("bea@example.com", PASSWORD).await;
    let same = request(&server, &bea, "BEA@example.com").await;
    assert_eq!(same.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(same).await, "email_unchanged");
    let bad = request(&server, &bea, "not an address").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(bad).await, "invalid_email");
    let anonymous = server
        .post("/api/v1/me/email", json!({ "email": "x@example.com" }))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn a_taken_address_answers_the_same_and_gets_no_link(backend: Backend) {
    let server = TestServer::start(backend).await;
    let cat = server.verified_user("cat@example.com", PASSWORD).await;
    server.verified_user("dan@example.com", PASSWORD).await;

    let taken = request(&server, &cat, "dan@example.com").await;
    let taken_status = taken.status();
    let taken_body: Value = taken.json().await.unwrap();
    let free = request(&server, &cat, "cat2@example.com").await;
    assert_eq!(taken_status, free.status());
    assert_eq!(taken_status, StatusCode::ACCEPTED);
    assert_eq!(taken_body, free.json::<Value>().await.unwrap());

    // The later request's link arrived: the earlier one's mail would have been queued
    // before it.
    server.mail.wait_for("cat2@example.com", CONFIRM).await;
    server
        .mail
        .wait_for_nth("cat@example.com", REQUESTED, 2)
        .await;
    let to_dan: Vec<_> = server
        .mail
        .to("dan@example.com")
        .into_iter()
        .filter(|m| !m.subject.contains("Confirm your email"))
        .collect();
    assert!(
        to_dan.is_empty(),
        "nothing went to the taken address: {to_dan:#?}"
    );
}

async fn confirming_after_the_address_was_taken_meanwhile_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let eve = server.verified_user("eve@example.com", PASSWORD).await;
    request(&server, &eve, "fay@example.com").await;
    let link = server
        .mail
        .wait_for("fay@example.com", CONFIRM)
        .await
        .link();
    // Someone else signs up with the address before the link is used.
    let fay_link = server.sign_up("fay@example.com", "fay password 1").await;

    let response = confirm(&server, &token_of(&link)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await, "email_taken");
    assert_eq!(me(&server, &eve).await["email"], "eve@example.com");
    assert_eq!(
        login_status(&server, "eve@example.com").await,
        StatusCode::OK
    );
    assert!(
        server
            .mail
            .to("eve@example.com")
            .iter()
            .all(|m| !m.subject.contains(CHANGED)),
        "no undo link for a change that did not happen"
    );
    // The other account is untouched.
    let verified = server
        .post(
            "/api/v1/email/verify",
            json!({ "token": token_of(&fay_link) }),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    server.log_in("fay@example.com", "fay password 1").await;
}

async fn a_new_request_replaces_the_pending_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let gus = server.verified_user("gus@example.com", PASSWORD).await;
    request(&server, &gus, "gus1@example.com").await;
    let first = server
        .mail
        .wait_for("gus1@example.com", CONFIRM)
        .await
        .link();
    request(&server, &gus, "gus2@example.com").await;
    let second = server
        .mail
        .wait_for("gus2@example.com", CONFIRM)
        .await
        .link();

    let old = confirm(&server, &token_of(&first)).await;
    assert_eq!(error_code(old).await, "invalid_token");
    assert_eq!(
        confirm(&server, &token_of(&second)).await.status(),
        StatusCode::OK
    );
    assert_eq!(me(&server, &gus).await["email"], "gus2@example.com");
}

async fn a_token_changes_only_the_account_that_asked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let hal = server.verified_user("hal@example.com", PASSWORD).await;
    let ida = server.verified_user("ida@example.com", PASSWORD).await;
    request(&server, &hal, "hal.new@example.com").await;
    let link = server
        .mail
        .wait_for("hal.new@example.com", CONFIRM)
        .await
        .link();

    // Ida presents Hal's link with her own token: it is Hal's account that changes.
    let response = server
        .post_as(
            &ida.access,
            "/api/v1/me/email/confirm",
            json!({ "token": token_of(&link) }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(me(&server, &ida).await["email"], "ida@example.com");
    assert_eq!(me(&server, &hal).await["email"], "hal.new@example.com");
    // A confirmation token is no undo token, and the other way round.
    let undo_link = server
        .mail
        .wait_for("hal@example.com", CHANGED)
        .await
        .link();
    assert_eq!(
        error_code(confirm(&server, &token_of(&undo_link)).await).await,
        "invalid_token"
    );
    assert_eq!(
        error_code(undo(&server, &token_of(&link)).await).await,
        "invalid_token"
    );
}

async fn undo_restores_the_address_and_signs_out_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let jo = server.verified_user("jo@example.com", PASSWORD).await;
    let undo_link = changed(&server, &jo, "jo@example.com", "thief@example.net").await;
    let thief = server.log_in("thief@example.net", PASSWORD).await;

    let response = undo(&server, &token_of(&undo_link)).await;
    assert_eq!(response.status(), StatusCode::OK);
    for tokens in [&jo, &thief] {
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
    }
    assert_eq!(
        login_status(&server, "thief@example.net").await,
        StatusCode::UNAUTHORIZED
    );
    let again = undo(&server, &token_of(&undo_link)).await;
    assert_eq!(error_code(again).await, "invalid_token", "single use");

    // The owner gets a reset link and secures the account with it.
    let reset = server.mail.wait_for("jo@example.com", UNDONE).await.link();
    assert!(
        reset.starts_with(&format!("{}/reset-password?token=", server.base_url)),
        "{reset}"
    );
    let response = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&reset), "password": "jo new password" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let back = server.log_in("jo@example.com", "jo new password").await;
    assert_eq!(me(&server, &back).await["email"], "jo@example.com");

    let entries = audit(&server, &admin, "email_change_undone").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["details"]["sessions_revoked"], 2);
    assert_eq!(entries[0]["details"]["from_domain"], "example.net");
}

async fn undo_is_refused_when_the_old_address_was_taken_meanwhile(backend: Backend) {
    let server = TestServer::start(backend).await;
    let kim = server.verified_user("kim@example.com", PASSWORD).await;
    let undo_link = changed(&server, &kim, "kim@example.com", "kim.new@example.com").await;
    server.sign_up("kim@example.com", "other password 1").await;
    let response = undo(&server, &token_of(&undo_link)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(response).await, "email_taken");
    assert_eq!(me(&server, &kim).await["email"], "kim.new@example.com");
}

async fn the_links_expire(backend: Backend) {
    let server = TestServer::start(backend).await;
    let lea = server.verified_user("lea@example.com", PASSWORD).await;
    request(&server, &lea, "lea1@example.com").await;
    let stale = server
        .mail
        .wait_for("lea1@example.com", CONFIRM)
        .await
        .link();
    server.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(
        error_code(confirm(&server, &token_of(&stale)).await).await,
        "invalid_token"
    );

    let lea = server.log_in("lea@example.com", PASSWORD).await;
    let undo_link = changed(&server, &lea, "lea@example.com", "lea2@example.com").await;
    server.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    assert_eq!(
        error_code(undo(&server, &token_of(&undo_link)).await).await,
        "invalid_token"
    );
    assert_eq!(
        login_status(&server, "lea2@example.com").await,
        StatusCode::OK
    );
}

async fn the_request_is_rate_limited_per_address(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            gatehouse_tests::FAST_HASHING,
            "[rate_limit.mail]\nper_ip = 1000\nper_account = 2\n",
        ],
    )
    .await;
    let max = server.verified_user("max@example.com", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(
            request(&server, &max, "target@example.com").await.status(),
            StatusCode::ACCEPTED
        );
    }
    let third = request(&server, &max, "target@example.com").await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(third).await, "rate_limited");
}

async fn reset_links_mailed_to_the_old_address_stop_working(backend: Backend) {
    let server = TestServer::start(backend).await;
    let uma = server.verified_user("uma@example.com", PASSWORD).await;
    server
        .post(
            "/api/v1/password/forgot",
            json!({ "email": "uma@example.com" }),
        )
        .await;
    let reset = server
        .mail
        .wait_for("uma@example.com", "Reset your")
        .await
        .link();
    changed(&server, &uma, "uma@example.com", "uma.new@example.com").await;
    let response = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&reset), "password": "taken over 123" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(response).await, "invalid_token");
    assert_eq!(
        login_status(&server, "uma.new@example.com").await,
        StatusCode::OK
    );
}

async fn concurrent_confirmations_with_one_link_let_exactly_one_succeed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let vic = server.verified_user("vic@example.com", PASSWORD).await;
    request(&server, &vic, "vic.new@example.com").await;
    let token = token_of(
        &server
            .mail
            .wait_for("vic.new@example.com", CONFIRM)
            .await
            .link(),
    );
    let attempts = (0..5).map(|_| confirm(&server, &token));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    // One change, so one undo link.
    server.mail.wait_for("vic@example.com", CHANGED).await;
    assert_eq!(me(&server, &vic).await["email"], "vic.new@example.com");
    let undo_mails = server
        .mail
        .to("vic@example.com")
        .into_iter()
        .filter(|m| m.subject.contains(CHANGED))
        .count();
    assert_eq!(undo_mails, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirm_and_undo_pages_post_with_csrf() {
    let server = TestServer::start(Backend::Sqlite).await;
    let nia = server.verified_user("nia@example.com", PASSWORD).await;
    request(&server, &nia, "nia.new@example.com").await;
    let link = server
        .mail
        .wait_for("nia.new@example.com", CONFIRM)
        .await
        .link();

    let walker = PageWalker::new();
    let page = walker.get(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let token = token_of(&link);
    assert!(html.contains(&token), "the link fills the form");
    // Opening the link changes nothing.
    assert_eq!(me(&server, &nia).await["email"], "nia@example.com");

    let forged = walker
        .post(&server.url("/confirm-email"), &[("token", &token)])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(&server, &nia).await["email"], "nia@example.com");

    let csrf = csrf_token(&html);
    let confirmed = walker
        .post(
            &server.url("/confirm-email"),
            &[("csrf_token", &csrf), ("token", &token)],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("Email address changed")
    );
    assert_eq!(me(&server, &nia).await["email"], "nia.new@example.com");

    let reused = walker
        .post(
            &server.url("/confirm-email"),
            &[("csrf_token", &csrf), ("token", &token)],
        )
        .await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert!(reused.text().await.unwrap().contains("already used"));

    let undo_link = server
        .mail
        .wait_for("nia@example.com", CHANGED)
        .await
        .link();
    let page = walker.get(&undo_link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());
    let undo_token = token_of(&undo_link);
    let forged = walker
        .post(&server.url("/undo-email-change"), &[("token", &undo_token)])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let undone = walker
        .post(
            &server.url("/undo-email-change"),
            &[("csrf_token", &csrf), ("token", &undo_token)],
        )
        .await;
    assert_eq!(undone.status(), StatusCode::OK);
    assert!(undone.text().await.unwrap().contains("Email change undone"));
    assert_eq!(
        server.get_as(&nia.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    server.log_in("nia@example.com", PASSWORD).await;
}

async fn the_account_page_asks_for_a_change_after_a_recent_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ola = server.verified_user("ola@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ola@example.com", PASSWORD)
        .await;
    let account = walker.get(&server.url("/account/sessions")).await;
    assert!(
        account
            .text()
            .await
            .unwrap()
            .contains(r#"href="/account/email""#)
    );
    let page = walker.get(&server.url("/account/email")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());
    let post = |email: &'static str| {
        let csrf = csrf.clone();
        let walker = &walker;
        let url = server.url("/account/email");
        async move {
            walker
                .post(&url, &[("csrf_token", &csrf), ("email", email)])
                .await
        }
    };

    for (bad, says) in [
        ("not an address", r#"id="email-error""#),
        ("ola@example.com", "already the address of your account"),
    ] {
        let refused = post(bad).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        let html = refused.text().await.unwrap();
        assert!(html.contains(says), "{bad}: {html}");
        assert!(
            html.contains(r#"aria-invalid="true""#),
            "{bad}: next to the field"
        );
        assert!(
            html.contains(&format!(r#"value="{bad}""#)),
            "keeps what was typed"
        );
    }
    let asked = post("ola.new@example.com").await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    assert!(asked.text().await.unwrap().contains("Check your inbox"));
    server.mail.wait_for("ola@example.com", REQUESTED).await;
    let link = server
        .mail
        .wait_for("ola.new@example.com", CONFIRM)
        .await
        .link();
    assert_eq!(
        me(&server, &ola).await["email"],
        "ola@example.com",
        "not yet"
    );
    assert_eq!(
        confirm(&server, &token_of(&link)).await.status(),
        StatusCode::OK
    );
    assert_eq!(me(&server, &ola).await["email"], "ola.new@example.com");

    // A login older than auth.fresh_age proves itself again first, and comes back.
    server.advance(Duration::from_secs(16 * 60));
    let stale = walker.get(&server.url("/account/email")).await;
    assert_eq!(
        location(&stale).as_str(),
        server.url("/reauthenticate?next=/account/email")
    );
    let refused = post("ola.third@example.com").await;
    assert_eq!(location(&refused).path(), "/reauthenticate");
    assert!(server.mail.to("ola.third@example.com").is_empty());
    // Logged out, the form changes nothing.
    let stranger = PageWalker::new();
    let csrf = stranger.csrf_of(&server.url("/login")).await;
    let anonymous = stranger
        .post(
            &server.url("/account/email"),
            &[("csrf_token", &csrf), ("email", "ola.fourth@example.com")],
        )
        .await;
    assert_eq!(location(&anonymous).path(), "/login");
    assert!(server.mail.to("ola.fourth@example.com").is_empty());
}
