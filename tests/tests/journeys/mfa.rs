//! Two-factor authentication: enrolling an authenticator app, logging in with its codes or
//! a recovery code, and every way a second factor must not be reused or guessed.

use std::time::Duration;

use base64::Engine;
use gatehouse_core::Clock;
use gatehouse_core::identity::totp::code_at;
use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, Tokens, decode_claims, error_code, on_both_databases};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    enrolling_turns_on_a_second_step_at_login,
    a_code_is_accepted_once,
    recovery_codes_work_once_and_a_new_set_replaces_them,
    the_mfa_token_is_single_use_and_expires,
    wrong_codes_lock_the_account_even_with_the_right_password,
    removing_mfa_needs_a_recent_login_and_ends_the_second_step,
    the_hosted_login_asks_for_the_code_and_the_id_token_says_so,
    enrolling_ends_other_sessions_and_does_not_refresh_the_login,
    a_new_password_ends_logins_waiting_for_their_code,
    the_account_pages_turn_mfa_on_and_off_and_mail_the_owner,
    an_admin_turns_off_a_second_factor_the_owner_cannot_use,
);

pub const PASSWORD: &str = "mfa password 1";
const STEP: Duration = Duration::from_secs(30);

/// An enrolled account: its secret, its recovery codes and the session that enrolled.
pub struct Enrolled {
    pub secret: String,
    pub recovery_codes: Vec<String>,
    pub tokens: Tokens,
}

/// The code the authenticator app shows now (by the server's clock).
pub fn code_now(server: &TestServer, secret: &str) -> String {
    code_at(secret, server.clock.now()).expect("code")
}

/// Signs up `email`, enrols an authenticator app and confirms it; the clock is then moved
/// to the next time step, so the next code is a new one.
pub async fn enrolled_user(server: &TestServer, email: &str) -> Enrolled {
    let tokens = server.verified_user(email, PASSWORD).await;
    let started = server
        .post_as(&tokens.access, "/api/v1/mfa/totp", json!({}))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let started: Value = started.json().await.unwrap();
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed = server
        .post_as(
            &tokens.access,
            "/api/v1/mfa/totp/confirm",
            json!({ "code": code_now(server, &secret) }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    server.advance(STEP);
    Enrolled {
        secret,
        recovery_codes,
        tokens,
    }
}

/// The password step; expects the MFA token.
pub async fn password_step(server: &TestServer, email: &str) -> String {
    let response = server
        .post(
            "/api/v1/login",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

pub async fn second_step(server: &TestServer, mfa_token: &str, code: &str) -> Response {
    server
        .post(
            "/api/v1/login/mfa",
            json!({ "mfa_token": mfa_token, "code": code }),
        )
        .await
}

async fn enrolling_turns_on_a_second_step_at_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let tokens = server.verified_user("ma@example.com", PASSWORD).await;
    let me: Value = server
        .get_as(&tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);

    let started = server
        .post_as(&tokens.access, "/api/v1/mfa/totp", json!({}))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let started: Value = started.json().await.unwrap();
    let secret = started["secret"].as_str().unwrap();
    let uri = started["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("ma%40example.com"), "{uri}");
    assert!(started["qr_svg"].as_str().unwrap().contains("<svg"));
    // Pending: the login is still one step.
    server.log_in("ma@example.com", PASSWORD).await;

    let wrong = server
        .post_as(
            &tokens.access,
            "/api/v1/mfa/totp/confirm",
            json!({ "code": "000000" }),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(wrong).await, "invalid_mfa_code");
    let confirmed = server
        .post_as(
            &tokens.access,
            "/api/v1/mfa/totp/confirm",
            json!({ "code": code_now(&server, secret) }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let me: Value = server
        .get_as(&tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], true);
    let again = server
        .post_as(&tokens.access, "/api/v1/mfa/totp", json!({}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "mfa_already_enabled");

    server.advance(STEP);
    let mfa_token = password_step(&server, "ma@example.com").await;
    let wrong = second_step(&server, &mfa_token, "123456").await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(wrong).await, "invalid_mfa_code");
    let opened = second_step(&server, &mfa_token, &code_now(&server, secret)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    let opened = Tokens::from(opened.json::<Value>().await.unwrap());
    assert_eq!(
        server.get_as(&opened.access, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    // A wrong password is still refused before any second step.
    let refused = server
        .post(
            "/api/v1/login",
            json!({ "email": "ma@example.com", "password": "wrong one 1" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await, "invalid_credentials");
}

async fn a_code_is_accepted_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = enrolled_user(&server, "mb@example.com").await;
    let code = code_now(&server, &user.secret);
    let first = password_step(&server, "mb@example.com").await;
    assert_eq!(
        second_step(&server, &first, &code).await.status(),
        StatusCode::OK
    );
    // The same code again, within its step: replay.
    let second = password_step(&server, "mb@example.com").await;
    let replay = second_step(&server, &second, &code).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(replay).await, "invalid_mfa_code");
    // Two logins racing with one fresh code: one gets in.
    server.advance(STEP);
    let code = code_now(&server, &user.secret);
    let (a, b) = (
        password_step(&server, "mb@example.com").await,
        password_step(&server, "mb@example.com").await,
    );
    let (ra, rb) = tokio::join!(
        second_step(&server, &a, &code),
        second_step(&server, &b, &code)
    );
    let statuses = [ra.status(), rb.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    // A code older than one already used is refused too (the step before).
    server.advance(STEP);
    let older = code_at(
        &user.secret,
        server.clock.now() - chrono::Duration::seconds(30),
    )
    .unwrap();
    let newer = code_now(&server, &user.secret);
    let token = password_step(&server, "mb@example.com").await;
    assert_eq!(
        second_step(&server, &token, &newer).await.status(),
        StatusCode::OK
    );
    let token = password_step(&server, "mb@example.com").await;
    assert_eq!(
        second_step(&server, &token, &older).await.status(),
        StatusCode::BAD_REQUEST
    );
}

async fn recovery_codes_work_once_and_a_new_set_replaces_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = enrolled_user(&server, "mc@example.com").await;
    let code = &user.recovery_codes[0];
    let token = password_step(&server, "mc@example.com").await;
    let opened = second_step(&server, &token, &code.to_lowercase().replace('-', " ")).await;
    assert_eq!(opened.status(), StatusCode::OK, "any case and grouping");
    let token = password_step(&server, "mc@example.com").await;
    let reused = second_step(&server, &token, code).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(reused).await, "invalid_mfa_code");

    let fresh = server
        .post_as(&user.tokens.access, "/api/v1/mfa/recovery-codes", json!({}))
        .await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh: Value = fresh.json().await.unwrap();
    let fresh: Vec<String> = fresh["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let token = password_step(&server, "mc@example.com").await;
    let old = second_step(&server, &token, &user.recovery_codes[1]).await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST, "the old set is gone");
    assert_eq!(
        second_step(&server, &token, &fresh[0]).await.status(),
        StatusCode::OK
    );
    // Another account's code is no code here.
    let other = enrolled_user(&server, "md@example.com").await;
    let token = password_step(&server, "mc@example.com").await;
    let foreign = second_step(&server, &token, &other.recovery_codes[0]).await;
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
}

async fn the_mfa_token_is_single_use_and_expires(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = enrolled_user(&server, "me@example.com").await;
    let token = password_step(&server, "me@example.com").await;
    let code = code_now(&server, &user.secret);
    assert_eq!(
        second_step(&server, &token, &code).await.status(),
        StatusCode::OK
    );
    server.advance(STEP);
    let used = second_step(&server, &token, &code_now(&server, &user.secret)).await;
    assert_eq!(used.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(used).await, "invalid_token");

    let token = password_step(&server, "me@example.com").await;
    server.advance(Duration::from_secs(6 * 60));
    let late = second_step(&server, &token, &code_now(&server, &user.secret)).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(late).await, "invalid_token");
    let forged = second_step(&server, "not-a-token", "123456").await;
    assert_eq!(error_code(forged).await, "invalid_token");
}

async fn wrong_codes_lock_the_account_even_with_the_right_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = enrolled_user(&server, "mf@example.com").await;
    // Each round proves the password again and guesses once: the guesses add up.
    let mut locked = false;
    for _ in 0..12 {
        let response = server
            .post(
                "/api/v1/login",
                json!({ "email": "mf@example.com", "password": PASSWORD }),
            )
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        let body: Value = response.json().await.unwrap();
        let guess = second_step(&server, body["mfa_token"].as_str().unwrap(), "000000").await;
        if guess.status() == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        assert_eq!(guess.status(), StatusCode::BAD_REQUEST);
    }
    assert!(
        locked,
        "ten wrong codes lock the address like ten wrong passwords"
    );
    // Locked: the right code does not get in either.
    let response = server
        .post(
            "/api/v1/login",
            json!({ "email": "mf@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let _ = user;
}

async fn removing_mfa_needs_a_recent_login_and_ends_the_second_step(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut user = enrolled_user(&server, "mg@example.com").await;
    server.advance(Duration::from_secs(16 * 60));
    let access = crate::step_up::refreshed(&server, &mut user.tokens).await;
    user.tokens.access = access;
    let stale = server
        .delete_as(&user.tokens.access, "/api/v1/mfa/totp")
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
    let regenerate = server
        .post_as(&user.tokens.access, "/api/v1/mfa/recovery-codes", json!({}))
        .await;
    assert_eq!(error_code(regenerate).await, "reauthentication_required");
    // The password alone does not refresh an account with two factors.
    let no_code = server
        .post_as(
            &user.tokens.access,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(no_code.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(no_code).await, "mfa_code_required");
    let wrong = server
        .post_as(
            &user.tokens.access,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD, "code": "000000" }),
        )
        .await;
    assert_eq!(error_code(wrong).await, "invalid_mfa_code");
    let fresh = server
        .post_as(
            &user.tokens.access,
            "/api/v1/reauthenticate",
            json!({ "password": PASSWORD, "code": code_now(&server, &user.secret) }),
        )
        .await;
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);
    let removed = server
        .delete_as(&user.tokens.access, "/api/v1/mfa/totp")
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let me: Value = server
        .get_as(&user.tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);
    server.log_in("mg@example.com", PASSWORD).await;
    let again = server
        .delete_as(&user.tokens.access, "/api/v1/mfa/totp")
        .await;
    assert_eq!(error_code(again).await, "mfa_not_enabled");
}

const APP: &str = "http://127.0.0.1:9/callback";

/// An authorization request of a public client with PKCE; `extra` adds parameters.
fn authorize_url(server: &TestServer, client_id: &str, verifier: &str, extra: &str) -> String {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    server.url(&format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={APP}&scope=openid&state=s1&code_challenge={challenge}&code_challenge_method=S256{extra}"
    ))
}

/// Follows redirects within the server until one leaves for the app.
async fn follow(walker: &PageWalker, mut response: Response) -> reqwest::Url {
    for _ in 0..10 {
        let next = location(&response);
        if next.as_str().starts_with(APP) {
            return next;
        }
        response = walker.get(next.as_str()).await;
    }
    panic!("too many redirects");
}

/// The claims of the ID token the code of `callback` is exchanged for.
async fn id_token_claims(
    server: &TestServer,
    client_id: &str,
    verifier: &str,
    callback: &reqwest::Url,
) -> Value {
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens: Value = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    decode_claims(tokens["id_token"].as_str().unwrap())
}

async fn the_hosted_login_asks_for_the_code_and_the_id_token_says_so(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let (client_id, _) = server
        .register_client(
            &admin,
            json!({
                "name": "Photo app", "type": "public", "first_party": true,
                "grant_types": ["authorization_code"], "redirect_uris": [APP],
            }),
        )
        .await;
    let user = enrolled_user(&server, "mh@example.com").await;
    let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
    let mfa = "&acr_values=urn%3Agatehouse%3Aacr%3Amfa";
    let walker = PageWalker::new();
    let start = walker
        .get(&authorize_url(&server, &client_id, verifier, mfa))
        .await;
    assert_eq!(location(&start).path(), "/login");
    let login = walker
        .log_in(&server.base_url, "mh@example.com", PASSWORD)
        .await;
    assert_eq!(
        location(&login).path(),
        "/login/mfa",
        "the password alone does not log in"
    );
    let page = walker.get(&server.url("/login/mfa")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());
    let wrong = walker
        .post(
            &server.url("/login/mfa"),
            &[("csrf_token", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("wrong or was already used")
    );
    // Not logged in yet: the account page sends the browser to log in.
    let account = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&account).path(), "/login");
    let code = code_now(&server, &user.secret);
    let done = walker
        .post(
            &server.url("/login/mfa"),
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    let callback = follow(&walker, done).await;
    let claims = id_token_claims(&server, &client_id, verifier, &callback).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "urn:gatehouse:acr:mfa");

    // A login with a password alone gets no code when the app requires a second factor,
    // and says so in its ID token otherwise.
    server.verified_user("mi@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    walker
        .get(&authorize_url(&server, &client_id, verifier, mfa))
        .await;
    let login = walker
        .log_in(&server.base_url, "mi@example.com", PASSWORD)
        .await;
    let refused = follow(&walker, login).await;
    assert!(
        refused
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "unmet_authentication_requirements"),
        "{refused}"
    );
    let plain = walker
        .get(&authorize_url(&server, &client_id, verifier, ""))
        .await;
    let callback = follow(&walker, plain).await;
    let claims = id_token_claims(&server, &client_id, verifier, &callback).await;
    assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");
    assert_eq!(claims["acr"], "urn:gatehouse:acr:pwd");
}

async fn enrolling_ends_other_sessions_and_does_not_refresh_the_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut tokens = server.verified_user("mj@example.com", PASSWORD).await;
    let other = server.log_in("mj@example.com", PASSWORD).await;
    server.advance(Duration::from_secs(10 * 60));
    let access = crate::step_up::refreshed(&server, &mut tokens).await;
    let started: Value = server
        .post_as(&access, "/api/v1/mfa/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = started["secret"].as_str().unwrap();
    let confirmed = server
        .post_as(
            &access,
            "/api/v1/mfa/totp/confirm",
            json!({ "code": code_now(&server, secret) }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    // The password-only session of before is over: it may be an intruder's.
    let refresh = server
        .post(
            "/api/v1/token/refresh",
            json!({ "refresh_token": other.refresh }),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    // Confirming proved the code, not a new login: 16 minutes after the password, the
    // session is stale (else enrolling again and again would keep it fresh for ever).
    server.advance(Duration::from_secs(6 * 60));
    let stale = server
        .post_as(&access, "/api/v1/mfa/recovery-codes", json!({}))
        .await;
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

async fn a_new_password_ends_logins_waiting_for_their_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = enrolled_user(&server, "mk@example.com").await;
    // Someone who knows the password waits at the second step; the owner changes it.
    let waiting = password_step(&server, "mk@example.com").await;
    let changed = server
        .post_as(
            &user.tokens.access,
            "/api/v1/password/change",
            json!({ "current_password": PASSWORD, "new_password": "a new mfa password 2" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let late = second_step(&server, &waiting, &code_now(&server, &user.secret)).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(late).await, "invalid_token");
}

/// The text of a page between the first `start` and the `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} on the page:\n{html}"))
        + start.len();
    let to = html[from..].find(end).expect("end marker") + from;
    &html[from..to]
}

/// Posts a form of the hosted pages: the browser's CSRF token and `fields`.
async fn post_form(
    walker: &PageWalker,
    server: &TestServer,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut form = vec![("csrf_token", csrf)];
    form.extend_from_slice(fields);
    walker.post(&server.url(path), &form).await
}

async fn the_account_pages_turn_mfa_on_and_off_and_mail_the_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let email = "mp@example.com";
    server.verified_user(email, PASSWORD).await;
    let walker = PageWalker::new();
    walker.log_in(&server.base_url, email, PASSWORD).await;
    let account = walker.get(&server.url("/account/sessions")).await;
    let account = account.text().await.unwrap();
    assert!(
        account.contains(r#"href="/account/mfa">Turn on"#),
        "{account}"
    );
    let page = walker.get(&server.url("/account/mfa")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.unwrap());

    // Setting up shows the QR code (an SVG image) and the key in text.
    let enrol = post_form(&walker, &server, "/account/mfa/totp", &csrf, &[]).await;
    assert_eq!(enrol.status(), StatusCode::OK);
    // As the browser reads the attribute (the template escapes `/`).
    let html = enrol.text().await.unwrap().replace("&#x2f;", "/");
    let qr = between(&html, r#"src="data:image/svg+xml;base64,"#, "\"");
    let svg = base64::engine::general_purpose::STANDARD
        .decode(qr)
        .expect("base64");
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    let secret = between(&html, r#"<code class="secret">"#, "<").to_owned();
    // Nothing is on until a code of the app confirms it.
    let me = server.log_in(email, PASSWORD).await;
    let me: Value = server
        .get_as(&me.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);

    let earlier = code_at(&secret, server.clock.now() - chrono::Duration::minutes(5)).unwrap();
    let wrong = post_form(
        &walker,
        &server,
        "/account/mfa/totp/confirm",
        &csrf,
        &[("code", &earlier)],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let wrong = wrong.text().await.unwrap();
    assert!(wrong.contains("This code is wrong"), "{wrong}");
    assert!(!wrong.contains(&secret), "the key is shown once");

    let confirmed = post_form(
        &walker,
        &server,
        "/account/mfa/totp/confirm",
        &csrf,
        &[("code", &code_now(&server, &secret))],
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let html = confirmed.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{html}");
    // The same form sent twice (a double click): the second leads to the page that
    // offers a new set, since the first answer's codes may never have shown.
    let twice = post_form(
        &walker,
        &server,
        "/account/mfa/totp/confirm",
        &csrf,
        &[("code", &code_now(&server, &secret))],
    )
    .await;
    assert_eq!(
        location(&twice).as_str(),
        server.url("/account/mfa?already_on=1")
    );
    server
        .mail
        .wait_for(email, "Two-factor authentication is on")
        .await;
    // The login now asks for a code; a recovery code from the page is one.
    let token = password_step(&server, email).await;
    let recovered = second_step(&server, &token, &codes[0]).await;
    assert_eq!(recovered.status(), StatusCode::OK);

    // Turning it off needs a recent login: a stale one is asked for password and code.
    server.advance(Duration::from_secs(16 * 60));
    let stale = walker.get(&server.url("/account/mfa")).await;
    assert_eq!(
        location(&stale).as_str(),
        server.url("/reauthenticate?next=/account/mfa")
    );
    let refused = post_form(&walker, &server, "/account/mfa/remove", &csrf, &[]).await;
    assert_eq!(location(&refused).path(), "/reauthenticate");
    let fresh = post_form(
        &walker,
        &server,
        "/reauthenticate",
        &csrf,
        &[
            ("password", PASSWORD),
            ("code", &code_now(&server, &secret)),
            ("next", "/account/mfa"),
        ],
    )
    .await;
    assert_eq!(location(&fresh).as_str(), server.url("/account/mfa"));
    let on = walker.get(&server.url("/account/mfa")).await;
    assert!(on.text().await.unwrap().contains("<strong>on</strong>"));
    let regenerated = post_form(&walker, &server, "/account/mfa/recovery-codes", &csrf, &[]).await;
    assert_eq!(regenerated.status(), StatusCode::OK);
    let token = password_step(&server, email).await;
    let old_code = second_step(&server, &token, &codes[1]).await;
    assert_eq!(
        old_code.status(),
        StatusCode::BAD_REQUEST,
        "a new set replaces the old codes"
    );
    let removed = post_form(&walker, &server, "/account/mfa/remove", &csrf, &[]).await;
    assert_eq!(
        location(&removed).as_str(),
        server.url("/account/mfa?removed=1")
    );
    let twice = post_form(&walker, &server, "/account/mfa/remove", &csrf, &[]).await;
    assert_eq!(
        location(&twice).as_str(),
        server.url("/account/mfa?removed=1")
    );
    server
        .mail
        .wait_for(email, "Two-factor authentication is off")
        .await;
    let password_only = server.log_in(email, PASSWORD).await;
    assert!(!password_only.access.is_empty());
}

async fn an_admin_turns_off_a_second_factor_the_owner_cannot_use(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    // Someone with the password set up a second factor the owner does not have.
    let intruder = enrolled_user(&server, "mq@example.com").await;
    let me: Value = server
        .get_as(&intruder.tokens.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/admin/users/{}/mfa", me["id"].as_str().unwrap());
    let user = server.verified_user("mr@example.com", PASSWORD).await;
    let not_admin = server.delete_as(&user.access, &path).await;
    assert_eq!(not_admin.status(), StatusCode::FORBIDDEN);

    let removed = server.delete_as(&admin.access, &path).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    // Every session of the account ends (the intruder's too), the owner is told, and the
    // password alone signs in again.
    let ended = server.get_as(&intruder.tokens.access, "/api/v1/me").await;
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    server
        .mail
        .wait_for("mq@example.com", "Two-factor authentication is off")
        .await;
    let tokens = server.log_in("mq@example.com", PASSWORD).await;
    assert!(!tokens.access.is_empty());
    let audit: Value = server
        .get_as(&admin.access, "/api/v1/admin/audit?event=mfa_disabled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["subject_user_id"], me["id"]);
    assert_ne!(
        audit["events"][0]["actor_user_id"], me["id"],
        "the admin acted"
    );

    let again = server.delete_as(&admin.access, &path).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "mfa_not_enabled");
    let admin_me: Value = server
        .get_as(&admin.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let own = server
        .delete_as(
            &admin.access,
            &format!(
                "/api/v1/admin/users/{}/mfa",
                admin_me["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(error_code(own).await, "cannot_modify_self");
}
