//! The whole journey in a real browser (headless Chromium): a demo app sends a new user to
//! Gatehouse, who signs up, opens the link from the captured mail, logs in, consents, and
//! lands back in the app signed in; on their sessions page they sign out another device,
//! then sign out here, and each time the app's back-channel endpoint receives the logout
//! token of the right session. Every page is saved as a screenshot under
//! `target/screenshots/`.
//!
//! A second journey sets up two-factor authentication (the QR code must render under the
//! pages' Content-Security-Policy) and opens an admin's impersonation under its banner.
//!
//! SQLite only: what is under test is the browser's path through the pages, not storage.

use std::time::{Duration, Instant};

use gatehouse_tests::browser::{Browser, DemoRp, free_port};
use gatehouse_tests::{Backend, TestServer};
use serde_json::{Value, json};

/// How long a back-channel logout may take to reach the app (the test server sends due
/// notices every 50 ms).
const BACKCHANNEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Between two looks at the app's back-channel events.
const POLL: Duration = Duration::from_millis(25);

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_up_from_an_app_and_signs_out_everywhere() {
    let server = TestServer::start(Backend::Sqlite).await;
    let issuer = server.base_url.clone();
    let admin = server.admin("admin@example.com").await;
    // The demo must be registered with its own URLs before it can start with its client id.
    let port = free_port();
    let demo_url = format!("http://127.0.0.1:{port}");
    let (client_id, secret) = server
        .register_client(
            &admin,
            json!({
                "name": "Demo app",
                "type": "public",
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": [],
                "redirect_uris": [format!("{demo_url}/callback")],
                "first_party": false,
                "post_logout_redirect_uris": [format!("{demo_url}/")],
                "backchannel_logout_uri": format!("{demo_url}/backchannel-logout"),
            }),
        )
        .await;
    assert_eq!(secret, None, "a public client has no secret");
    let demo = DemoRp::start_on(port, &issuer, &client_id, None).await;

    let laptop = Browser::start("browser_flow").await;

    // The app, signed out, sends the browser to Gatehouse.
    laptop.goto(&demo.url("/")).await;
    laptop.wait_for("#signed-out").await;
    laptop.screenshot("demo-app-signed-out").await;
    laptop.click("#sign-in").await;
    assert_on(&laptop, &issuer, "/login").await;
    assert_eq!(laptop.text("h1").await, "Log in");
    assert_eq!(laptop.text(".subtitle").await, "to continue to Demo app");
    laptop.screenshot("login").await;

    // A new user creates an account.
    laptop.click("a[href='/signup']").await;
    assert_on(&laptop, &issuer, "/signup").await;
    laptop.screenshot("signup").await;
    laptop.fill("input[name=email]", EMAIL).await;
    laptop.fill("input[name=name]", "Ada Lovelace").await;
    laptop.fill("input[name=new_password]", PASSWORD).await;
    laptop
        .click("form[action='/signup'] button[type=submit]")
        .await;
    assert_eq!(laptop.text("h1").await, "Check your email");
    assert!(laptop.text("main").await.contains(EMAIL));
    laptop.screenshot("check-your-email").await;

    // The link from the mail opens a form; submitting it verifies the address and, as a
    // sign-in is pending in this browser, leads back to the login page.
    let link = server
        .mail
        .wait_for(EMAIL, "Confirm your email")
        .await
        .link();
    assert!(
        link.starts_with(&format!("{issuer}/verify-email?token=")),
        "{link}"
    );
    laptop.goto(&link).await;
    assert_on(&laptop, &issuer, "/verify-email").await;
    laptop.screenshot("verify-email").await;
    assert_eq!(
        laptop
            .text("form[action='/verify-email'] button[type=submit]")
            .await,
        "Verify my email"
    );
    laptop
        .click("form[action='/verify-email'] button[type=submit]")
        .await;
    assert_on(&laptop, &issuer, "/login").await;
    assert_eq!(laptop.current_url().await.query(), Some("verified=1"));
    assert_eq!(
        laptop.text(".notice").await,
        "Your email address is verified. Log in to continue."
    );
    laptop.screenshot("login-verified").await;
    assert!(
        laptop
            .press_tab_until_focused("input[name=password]", 10)
            .await,
        "the password field is reachable with the keyboard"
    );

    // Log in, consent, and back in the app.
    laptop.fill("input[name=email]", EMAIL).await;
    laptop.fill("input[name=password]", PASSWORD).await;
    laptop
        .click("form[action='/login'] button[type=submit]")
        .await;
    assert_on(&laptop, &issuer, "/consent").await;
    assert_eq!(
        laptop.text("h1").await,
        "Demo app wants to access your account"
    );
    laptop.screenshot("consent").await;
    laptop.click("button[name=decision][value=allow]").await;
    assert_on(&laptop, &demo.url, "/").await;
    assert_eq!(
        laptop.text("#signed-in").await,
        format!("Signed in as {EMAIL}")
    );
    laptop.screenshot("demo-app-signed-in").await;
    let claims = json_of(&laptop, "#id-token-claims").await;
    assert_eq!(claims["email"], EMAIL, "{claims}");
    let laptop_sid = claims["sid"]
        .as_str()
        .filter(|sid| !sid.is_empty())
        .unwrap_or_else(|| panic!("no sid in the ID token: {claims}"))
        .to_owned();
    let userinfo = json_of(&laptop, "#userinfo").await;
    assert_eq!(userinfo["sub"], claims["sub"], "{userinfo}");
    assert_eq!(userinfo["email"], EMAIL, "{userinfo}");

    // The same user signs in to the app on a phone too: consent was given already.
    let phone = Browser::start_with_size("browser_flow-phone", 390, 844).await;
    phone.goto(&demo.url("/")).await;
    phone.click("#sign-in").await;
    assert_on(&phone, &issuer, "/login").await;
    phone.screenshot("login-phone").await;
    phone.fill("input[name=email]", EMAIL).await;
    phone.fill("input[name=password]", PASSWORD).await;
    phone
        .click("form[action='/login'] button[type=submit]")
        .await;
    assert_on(&phone, &demo.url, "/").await;
    phone.wait_for("#signed-in").await;
    phone.screenshot("demo-app-signed-in-phone").await;
    let phone_claims = json_of(&phone, "#id-token-claims").await;
    assert_eq!(phone_claims["sub"], claims["sub"]);
    let phone_sid = phone_claims["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("no sid in the ID token: {phone_claims}"))
        .to_owned();
    assert_ne!(phone_sid, laptop_sid, "each sign-in is an app session");

    // The sessions page shows both logins; only the other one can be signed out from here.
    laptop.goto(&format!("{issuer}/account/sessions")).await;
    assert_on(&laptop, &issuer, "/account/sessions").await;
    assert_eq!(laptop.text("h1").await, "Your sessions");
    laptop.screenshot("sessions").await;
    let page = laptop.source().await;
    assert_eq!(this_browser_badges(&page), 1, "{page}");
    assert_eq!(revoke_forms(&page), 1, "one other session: {page}");
    assert!(page.contains("Demo app"), "the app is listed: {page}");
    laptop
        .click("form[action$='/revoke'] button[type=submit]")
        .await;
    assert_on(&laptop, &issuer, "/account/sessions").await;
    laptop.screenshot("sessions-after-revoke").await;
    let page = laptop.source().await;
    assert_eq!(this_browser_badges(&page), 1, "{page}");
    assert_eq!(revoke_forms(&page), 0, "the other session is gone: {page}");

    // The app hears of it on its back channel, and the phone is signed out of the app.
    let event = backchannel_logout(&server, &demo, &phone_sid).await;
    assert_eq!(event["sub"], claims["sub"], "{event}");
    assert_eq!(event["sessions_ended"], 1, "{event}");
    phone.goto(&demo.url("/")).await;
    phone.wait_for("#signed-out").await;
    phone.screenshot("demo-app-signed-out-phone").await;
    phone.close().await;

    // Signing out here, after confirming, ends the laptop's app session the same way.
    laptop.click("a[href='/logout']").await;
    assert_on(&laptop, &issuer, "/logout").await;
    assert_eq!(laptop.text("h1").await, "Sign out");
    laptop.screenshot("logout").await;
    laptop
        .click("form[action='/logout'] button[type=submit]")
        .await;
    assert_eq!(laptop.text("h1").await, "Signed out");
    laptop.screenshot("signed-out").await;
    let event = backchannel_logout(&server, &demo, &laptop_sid).await;
    assert_eq!(event["sub"], claims["sub"], "{event}");
    assert_eq!(event["sessions_ended"], 1, "{event}");
    laptop.goto(&demo.url("/")).await;
    laptop.wait_for("#signed-out").await;
    laptop.screenshot("demo-app-signed-out-again").await;
    laptop.close().await;
}

/// Fails unless the browser is at `path` of `origin` (a URL without a trailing slash).
async fn assert_on(browser: &Browser, origin: &str, path: &str) {
    let url = browser.current_url().await;
    assert_eq!(
        url.origin().ascii_serialization(),
        origin,
        "expected to be on {origin}{path}, at {url}"
    );
    assert_eq!(
        url.path(),
        path,
        "expected to be on {origin}{path}, at {url}"
    );
}

/// The JSON the demo app shows in the element `css`.
async fn json_of(browser: &Browser, css: &str) -> Value {
    let text = browser.text(css).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{css} is not JSON ({e}): {text}"))
}

/// How many sessions the sessions page marks as this browser's.
fn this_browser_badges(page: &str) -> usize {
    page.matches(r#"<span class="badge">This browser</span>"#)
        .count()
}

/// How many sessions the sessions page offers to sign out (not "everywhere else").
fn revoke_forms(page: &str) -> usize {
    page.match_indices(r#"action="/account/sessions/"#)
        .filter(|(at, _)| {
            page[*at..]
                .split('"')
                .nth(1)
                .is_some_and(|action| action.ends_with("/revoke"))
        })
        .count()
}

/// Waits for the demo app to have accepted a logout token for the session `sid`; the
/// event it recorded.
#[expect(
    clippy::disallowed_methods,
    reason = "polls the demo app, a process outside the test with no clock to move"
)]
async fn backchannel_logout(server: &TestServer, demo: &DemoRp, sid: &str) -> Value {
    let started = Instant::now();
    loop {
        let events: Value = server
            .http
            .get(demo.url("/backchannel-events"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = events
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {events}"))
            .iter()
            .find(|event| event["sid"] == sid);
        if let Some(event) = found {
            return event.clone();
        }
        assert!(
            started.elapsed() < BACKCHANNEL_TIMEOUT,
            "no back-channel logout for sid {sid} within {BACKCHANNEL_TIMEOUT:?}; received: {events}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Logs `browser` in on the hosted login page.
async fn log_in(browser: &Browser, issuer: &str, email: &str, password: &str) {
    browser.goto(&format!("{issuer}/login")).await;
    browser.fill("input[name=email]", email).await;
    browser.fill("input[name=password]", password).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    assert_on(browser, issuer, "/account/sessions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_setup_and_an_admins_impersonation_in_a_browser() {
    let server = TestServer::start(Backend::Sqlite).await;
    let issuer = server.base_url.clone();
    let admin = server.admin("admin@example.com").await;
    let user = server.verified_user(EMAIL, PASSWORD).await;
    // (Asked now: turning on two-factor authentication ends this API session.)
    let me: Value = server
        .get_as(&user.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();

    // The user turns on two-factor authentication from the account page.
    let laptop = Browser::start("browser_flow-mfa").await;
    log_in(&laptop, &issuer, EMAIL, PASSWORD).await;
    laptop.click("a[href='/account/mfa']").await;
    assert_on(&laptop, &issuer, "/account/mfa").await;
    laptop
        .click("form[action='/account/mfa/totp'] button[type=submit]")
        .await;
    assert_eq!(laptop.text("h1").await, "Set up an authenticator app");
    // The QR code is drawn: the page's Content-Security-Policy lets its image load.
    let drawn = laptop
        .script("return document.querySelector('img.qr-code').naturalWidth;")
        .await;
    assert!(drawn.as_u64().is_some_and(|width| width > 0), "{drawn}");
    laptop.screenshot("mfa-setup").await;
    let secret = laptop.text("code.secret").await;
    let code = crate::mfa::code_now(&server, &secret);
    laptop.fill("input[name=code]", &code).await;
    laptop
        .click("form[action='/account/mfa/totp/confirm'] button[type=submit]")
        .await;
    assert_eq!(laptop.text("h1").await, "Your recovery codes");
    let codes = laptop
        .script("return document.querySelectorAll('.recovery-codes li').length;")
        .await;
    assert_eq!(codes, json!(10));
    laptop.screenshot("recovery-codes").await;

    // An admin opens the user's account in their own browser, under a banner.
    let opened: Value = server
        .post_as(
            &admin.access,
            &format!(
                "/api/v1/admin/users/{}/impersonate",
                me["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let desk = Browser::start("browser_flow-impersonation").await;
    desk.goto(opened["browser_url"].as_str().unwrap()).await;
    desk.click("form[action='/impersonate'] button[type=submit]")
        .await;
    assert_on(&desk, &issuer, "/account/sessions").await;
    let banner = desk.text(".impersonation-banner").await;
    assert!(banner.contains(EMAIL), "{banner}");
    desk.screenshot("impersonation-banner").await;
    desk.close().await;
    laptop.close().await;
}
