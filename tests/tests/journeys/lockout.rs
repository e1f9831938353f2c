//! The lockout that cannot be turned against the owner: a stranger's wrong passwords
//! slow down and then lock the account for every client without a device token, while
//! the owner's browser (device cookie) and app (`device_token`) keep logging in, judged
//! by their own failures only. The lock ends with time, a password reset or an admin,
//! and the owner is mailed once per lock.

use std::time::Duration;

use gatehouse_tests::pages::{PageWalker, location};
use gatehouse_tests::{Backend, FAST_HASHING, TestServer, error_code, on_both_databases, token_of};
use reqwest::StatusCode;
use reqwest::header::{RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

on_both_databases!(
    a_strangers_wrong_passwords_lock_strangers_out_but_not_the_owners_app,
    the_owners_browser_with_its_device_cookie_still_logs_in,
    a_devices_own_failures_end_its_trust,
    forged_and_other_accounts_device_tokens_are_ignored,
    wrong_passwords_sent_at_once_cannot_pass_the_limits,
    failures_slow_down_before_the_lock,
    the_lock_ends_with_time,
    a_password_reset_ends_the_lock,
    the_owner_is_mailed_once_per_lock,
    admins_see_and_clear_a_lock,
);

/// Five failures lock; no slow-down before (it has its own journey); a device token is
/// trusted for three failures of its own.
const LOCKOUT: &str = "[lockout]\nmax_failures = 5\nslow_down_after = 1000\n\
    lock_duration = \"15m\"\nwindow = \"15m\"\ndevice_max_failures = 3\n";

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "owner password 1";

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, &[FAST_HASHING, LOCKOUT]).await
}

/// A JSON login, with a device token if given.
async fn api_login(
    server: &TestServer,
    email: &str,
    password: &str,
    device_token: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": password });
    if let Some(token) = device_token {
        body["device_token"] = json!(token);
    }
    server.post("/api/v1/login", body).await
}

/// The owner's first login from their app: the device token it keeps.
async fn owners_app(server: &TestServer) -> String {
    let tokens = server.verified_user(EMAIL, PASSWORD).await;
    tokens.body["device_token"]
        .as_str()
        .expect("a login answers a device token")
        .to_owned()
}

/// `n` wrong passwords from a client without a device token, each refused as a wrong
/// password (not yet locked).
async fn wrong_passwords(server: &TestServer, email: &str, n: usize) {
    for i in 0..n {
        let response = api_login(server, email, "attacker guess", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
}

async fn assert_locked(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert_eq!(error_code(response).await, "too_many_attempts");
}

async fn user_id(server: &TestServer, access: &str) -> String {
    let me: Value = server
        .get_as(access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

async fn a_strangers_wrong_passwords_lock_strangers_out_but_not_the_owners_app(backend: Backend) {
    let server = server(backend).await;
    let device = owners_app(&server).await;
    wrong_passwords(&server, EMAIL, 5).await;

    // A stranger, even with the right password, is refused without any hashing.
    let hashes = server.gatehouse.hasher().completed_operations();
    let stranger = api_login(&server, EMAIL, PASSWORD, None).await;
    assert_eq!(stranger.headers()[RETRY_AFTER], "900");
    assert_locked(stranger).await;
    assert_eq!(server.gatehouse.hasher().completed_operations(), hashes);

    // The owner's app, with its device token, logs in and keeps the same token.
    let owner = api_login(&server, EMAIL, PASSWORD, Some(&device)).await;
    assert_eq!(owner.status(), StatusCode::OK);
    let body: Value = owner.json().await.unwrap();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert_eq!(body["device_token"], device.as_str());
    // Its success did not end the lock for strangers.
    assert_locked(api_login(&server, EMAIL, PASSWORD, None).await).await;

    // An address without an account locks the same way: the answers tell nothing.
    wrong_passwords(&server, "nobody@example.com", 5).await;
    assert_locked(api_login(&server, "nobody@example.com", PASSWORD, None).await).await;
}

/// The device cookie a page login set, and its attributes.
fn device_cookie(response: &reqwest::Response) -> (String, String) {
    let header = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("gatehouse_device="))
        .expect("a page login sets the device cookie");
    let value = header
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("gatehouse_device=")
        .to_owned();
    (value, header)
}

async fn log_out(walker: &PageWalker, server: &TestServer) {
    let csrf = walker.csrf_of(&server.url("/logout")).await;
    let response = walker
        .post(&server.url("/logout"), &[("csrf_token", &csrf)])
        .await;
    assert!(response.status().is_success() || response.status().is_redirection());
}

async fn the_owners_browser_with_its_device_cookie_still_logs_in(backend: Backend) {
    let server = server(backend).await;
    server.verified_user(EMAIL, PASSWORD).await;
    let browser = PageWalker::new();
    let login = browser.log_in(&server.base_url, EMAIL, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let (first, attributes) = device_cookie(&login);
    let lower = attributes.to_ascii_lowercase();
    for attribute in ["httponly", "samesite=lax", "path=/login", "max-age="] {
        assert!(lower.contains(attribute), "{attributes}");
    }
    assert!(
        !lower.contains("secure"),
        "Secure only when the issuer is https"
    );
    log_out(&browser, &server).await;

    wrong_passwords(&server, EMAIL, 5).await;
    // A new browser is a stranger: the form comes back with the reason.
    let stranger = PageWalker::new();
    let refused = stranger.log_in(&server.base_url, EMAIL, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many failed attempts")
    );

    // The owner's browser sends its device cookie with the form and is let in.
    let again = browser.log_in(&server.base_url, EMAIL, PASSWORD).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again).path(), "/account/sessions");
    let (renewed, _) = device_cookie(&again);
    assert_eq!(renewed, first, "the same device, its cookie renewed");
    let account = browser.get(&server.url("/account/sessions")).await;
    assert_eq!(account.status(), StatusCode::OK);
}

async fn a_devices_own_failures_end_its_trust(backend: Backend) {
    let server = server(backend).await;
    let device = owners_app(&server).await;
    // Three wrong passwords from the device count against it, not the account...
    for _ in 0..3 {
        let response = api_login(&server, EMAIL, "mistyped", Some(&device)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    wrong_passwords(&server, EMAIL, 4).await;
    let other_app = api_login(&server, EMAIL, PASSWORD, None).await;
    assert_eq!(other_app.status(), StatusCode::OK, "4 failures: not locked");
    let other_device = other_app.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // ...and used up its trust: during a lock it is a stranger, even with the password.
    wrong_passwords(&server, EMAIL, 5).await;
    assert_locked(api_login(&server, EMAIL, PASSWORD, Some(&device)).await).await;
    assert_locked(api_login(&server, EMAIL, PASSWORD, Some(&device)).await).await;
    // The other device, with no failures of its own, still gets in.
    let ok = api_login(&server, EMAIL, PASSWORD, Some(&other_device)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    // After the lock the distrusted token is ignored (a stranger's login, a new token).
    server.advance(Duration::from_secs(15 * 60 + 1));
    let fresh = api_login(&server, EMAIL, PASSWORD, Some(&device)).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_ne!(
        fresh.json::<Value>().await.unwrap()["device_token"],
        device.as_str()
    );
}

async fn forged_and_other_accounts_device_tokens_are_ignored(backend: Backend) {
    let server = server(backend).await;
    let device = owners_app(&server).await;
    let others = server
        .verified_user("other@example.com", "other password 1")
        .await
        .body["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    wrong_passwords(&server, EMAIL, 5).await;

    let parts: Vec<&str> = device.split('.').collect();
    let other_parts: Vec<&str> = others.split('.').collect();
    assert_eq!(parts.len(), 4, "{device}");
    let mut flipped = parts[3].to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let forged = [
        // Another account's genuine token.
        others.clone(),
        // Its device under the owner's account id, with either signature.
        format!(
            "{}.{}.{}.{}",
            parts[0], parts[1], other_parts[2], other_parts[3]
        ),
        format!("{}.{}.{}.{}", parts[0], parts[1], other_parts[2], parts[3]),
        // The owner's token with a changed signature, or none.
        format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1],
            parts[2],
            String::from_utf8(flipped).unwrap()
        ),
        format!("{}.{}.{}", parts[0], parts[1], parts[2]),
        "not a token".to_owned(),
        "x".repeat(10_000),
    ];
    for token in &forged {
        assert_locked(api_login(&server, EMAIL, PASSWORD, Some(token)).await).await;
    }
    let owner = api_login(&server, EMAIL, PASSWORD, Some(&device)).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // The other account's token still works for its own account.
    let other = api_login(
        &server,
        "other@example.com",
        "other password 1",
        Some(&others),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
}

async fn wrong_passwords_sent_at_once_cannot_pass_the_limits(backend: Backend) {
    let server = server(backend).await;
    let device = owners_app(&server).await;
    let statuses = |responses: Vec<reqwest::Response>| {
        responses
            .iter()
            .map(|r| r.status())
            .collect::<Vec<StatusCode>>()
    };
    let count = |statuses: &[StatusCode], status: StatusCode| {
        statuses.iter().filter(|s| **s == status).count()
    };

    // Thirty strangers at once: five reach the password check, the rest are refused.
    let hashes = server.gatehouse.hasher().completed_operations();
    let burst = (0..30).map(|_| api_login(&server, EMAIL, "attacker guess", None));
    let answers = statuses(futures_util::future::join_all(burst).await);
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 5, "{answers:?}");
    assert_eq!(
        count(&answers, StatusCode::TOO_MANY_REQUESTS),
        25,
        "{answers:?}"
    );
    assert_eq!(server.gatehouse.hasher().completed_operations() - hashes, 5);

    // Ten at once with the owner's token (stolen, say): three are the device's own
    // failures, then it is a stranger during the lock.
    let burst = (0..10).map(|_| api_login(&server, EMAIL, "thief guess", Some(&device)));
    let answers = statuses(futures_util::future::join_all(burst).await);
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 3, "{answers:?}");
    assert_eq!(
        count(&answers, StatusCode::TOO_MANY_REQUESTS),
        7,
        "{answers:?}"
    );
    assert_locked(api_login(&server, EMAIL, PASSWORD, Some(&device)).await).await;
}

async fn failures_slow_down_before_the_lock(backend: Backend) {
    let slow = "[lockout]\nslow_down_after = 2\nslow_down_delay = \"10s\"\nmax_failures = 6\n";
    let server = TestServer::start_with(backend, &[FAST_HASHING, LOCKOUT, slow]).await;
    let device = owners_app(&server).await;
    wrong_passwords(&server, EMAIL, 2).await;
    // The third attempt waits 10 s after the second failure, the fourth 20 s, ...
    for wait in [10, 20, 40] {
        let early = api_login(&server, EMAIL, "attacker guess", None).await;
        assert_eq!(early.headers()[RETRY_AFTER], wait.to_string().as_str());
        assert_locked(early).await;
        // The owner's device is judged by its own (no) failures: not slowed.
        let owner = api_login(&server, EMAIL, PASSWORD, Some(&device)).await;
        assert_eq!(owner.status(), StatusCode::OK);
        server.advance(Duration::from_secs(wait - 1));
        assert_locked(api_login(&server, EMAIL, "attacker guess", None).await).await;
        server.advance(Duration::from_secs(1));
        wrong_passwords(&server, EMAIL, 1).await;
    }
}

async fn the_lock_ends_with_time(backend: Backend) {
    let server = server(backend).await;
    server.verified_user(EMAIL, PASSWORD).await;
    wrong_passwords(&server, EMAIL, 5).await;
    server.advance(Duration::from_secs(5 * 60));
    let refused = api_login(&server, EMAIL, PASSWORD, None).await;
    assert_eq!(refused.headers()[RETRY_AFTER], "600");
    assert_locked(refused).await;
    server.advance(Duration::from_secs(10 * 60 - 1));
    assert_locked(api_login(&server, EMAIL, PASSWORD, None).await).await;
    server.advance(Duration::from_secs(2));
    let after = api_login(&server, EMAIL, PASSWORD, None).await;
    assert_eq!(after.status(), StatusCode::OK);
    // The count starts again from zero.
    wrong_passwords(&server, EMAIL, 4).await;
    server.log_in(EMAIL, PASSWORD).await;
}

async fn a_password_reset_ends_the_lock(backend: Backend) {
    let server = server(backend).await;
    let device = owners_app(&server).await;
    wrong_passwords(&server, EMAIL, 5).await;
    assert_locked(api_login(&server, EMAIL, PASSWORD, None).await).await;

    let forgot = server
        .post("/api/v1/password/forgot", json!({ "email": EMAIL }))
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let link = server.mail.wait_for(EMAIL, "Reset your").await.link();
    let reset = server
        .post(
            "/api/v1/password/reset",
            json!({ "token": token_of(&link), "password": "owner password 2" }),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);

    // Any client logs in with the new password at once.
    let after = api_login(&server, EMAIL, "owner password 2", None).await;
    assert_eq!(after.status(), StatusCode::OK);
    // Device tokens from before the reset are no longer trusted (a stolen one is dead).
    wrong_passwords(&server, EMAIL, 5).await;
    assert_locked(api_login(&server, EMAIL, "owner password 2", Some(&device)).await).await;
}

async fn the_owner_is_mailed_once_per_lock(backend: Backend) {
    let server = server(backend).await;
    server.verified_user(EMAIL, PASSWORD).await;
    let subject = "Failed logins to your";
    wrong_passwords(&server, EMAIL, 5).await;
    let notice = server.mail.wait_for(EMAIL, subject).await;
    assert!(notice.text.contains("5 failed attempts"), "{}", notice.text);
    assert!(notice.text.contains("15 minutes"), "{}", notice.text);
    assert!(notice.text.contains("/forgot-password"), "{}", notice.text);

    // More attempts during the lock are refused and mail nobody.
    for _ in 0..5 {
        assert_locked(api_login(&server, EMAIL, "attacker guess", None).await).await;
    }
    // The next lock is a new period: one more notice.
    server.advance(Duration::from_secs(15 * 60 + 1));
    wrong_passwords(&server, EMAIL, 5).await;
    server.mail.wait_for_nth(EMAIL, subject, 2).await;
    let notices = server
        .mail
        .to(EMAIL)
        .into_iter()
        .filter(|m| m.subject.starts_with(subject))
        .count();
    assert_eq!(notices, 2);
}

async fn admins_see_and_clear_a_lock(backend: Backend) {
    let server = server(backend).await;
    let admin = server.admin("root@example.com").await;
    let admin_id = user_id(&server, &admin.access).await;
    let user = server.verified_user(EMAIL, PASSWORD).await;
    let id = user_id(&server, &user.access).await;
    let path = format!("/api/v1/admin/users/{id}");
    let view = |server: &TestServer| {
        let (access, path) = (admin.access.clone(), path.clone());
        let server_url = server.url(&path);
        let http = server.http.clone();
        async move {
            let response = http
                .get(server_url)
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let before = view(&server).await;
    assert_eq!(before["email"], EMAIL);
    assert!(before["lock"].is_null(), "{before}");

    wrong_passwords(&server, EMAIL, 5).await;
    let locked = view(&server).await;
    assert_eq!(locked["lock"]["failures"], 5, "{locked}");
    assert!(locked["lock"]["locked_until"].is_string(), "{locked}");
    assert!(locked["lock"]["locked_at"].is_string(), "{locked}");

    // The account's owner (not an admin) cannot clear it, nor can anyone unauthenticated.
    let lock_path = format!("{path}/lock");
    let refused = server.delete_as(&user.access, &lock_path).await;
    assert!(
        refused.status() == StatusCode::FORBIDDEN,
        "{}",
        refused.status()
    );
    let anonymous = server
        .http
        .delete(server.url(&lock_path))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!view(&server).await["lock"].is_null());
    assert_locked(api_login(&server, EMAIL, PASSWORD, None).await).await;

    let cleared = server.delete_as(&admin.access, &lock_path).await;
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(view(&server).await["lock"].is_null());
    let after = api_login(&server, EMAIL, PASSWORD, None).await;
    assert_eq!(after.status(), StatusCode::OK);

    let audit: Value = server
        .get_as(
            &admin.access,
            "/api/v1/admin/audit?event=login_lock_cleared",
        )
        .await
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["subject_user_id"], id.as_str(), "{audit}");
    assert_eq!(events[0]["actor_user_id"], admin_id.as_str(), "{audit}");
    assert_eq!(events[0]["details"]["was_locked"], true, "{audit}");
    let locked_events: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?event=login_locked")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(locked_events["events"].as_array().unwrap().len(), 1);

    let unknown = server
        .delete_as(
            &admin.access,
            &format!("/api/v1/admin/users/{}/lock", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
