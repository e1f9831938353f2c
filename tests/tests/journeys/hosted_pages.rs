//! The hosted pages without a browser: forms, CSRF, mistakes shown next to their field,
//! the session cookie, and the browser session ending with its login.

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, on_both_databases, token_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    sign_up_verify_and_log_in_through_the_pages,
    revoking_the_login_anywhere_logs_the_browser_out,
);

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn every_form_refuses_a_post_without_the_csrf_token() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    let real = walker.csrf_of(&server.url("/login")).await;
    // Every form post the app registers (the list is the one its routes are made from),
    // with a real value for each path parameter.
    let paths: Vec<String> = gatehouse_server::routes::pages::FORM_POSTS
        .iter()
        .map(|path| {
            path.replace("{id}", "0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b")
                .replace("{client_id}", "some-app")
        })
        .collect();
    assert!(paths.len() >= 11, "{paths:?}");
    for path in &paths {
        let missing = walker
            .post(
                &server.url(path),
                &[("email", "ada@example.com"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(
            missing.status(),
            StatusCode::FORBIDDEN,
            "{path} without a token"
        );
        let forged = walker
            .post(
                &server.url(path),
                &[
                    ("csrf_token", "forged"),
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            forged.status(),
            StatusCode::FORBIDDEN,
            "{path} with a forged token"
        );
    }
    // The control: the real token logs in.
    let ok = walker
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &real),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    // Another browser's token is no good either.
    let other = PageWalker::new();
    other.csrf_of(&server.url("/login")).await;
    let crossed = other
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &real),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn mistakes_are_shown_next_to_the_field_keeping_what_was_typed() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();

    let csrf = walker.csrf_of(&server.url("/login")).await;
    let wrong_password = "wrong horse battery";
    let response = walker
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &csrf),
                ("email", "ada@example.com"),
                ("password", wrong_password),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let page = response.text().await.unwrap();
    assert!(page.contains("The email or password is wrong."), "{page}");
    assert!(
        page.contains(r#"value="ada@example.com""#),
        "the email stays: {page}"
    );
    assert!(
        !page.contains(wrong_password),
        "the password is never echoed"
    );

    let csrf = walker.csrf_of(&server.url("/signup")).await;
    let short = "short";
    let response = walker
        .post(
            &server.url("/signup"),
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("name", "Bob"),
                ("new_password", short),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("Must have at least 8 characters."), "{page}");
    assert!(page.contains(r#"aria-invalid="true""#), "{page}");
    assert!(page.contains(r#"value="bob@example.com""#) && page.contains(r#"value="Bob""#));
    assert!(!page.contains(&format!(r#"value="{short}""#)));

    let csrf = walker
        .csrf_of(&server.url("/reset-password?token=bogus"))
        .await;
    let response = walker
        .post(
            &server.url("/reset-password"),
            &[
                ("csrf_token", &csrf),
                ("token", "bogus"),
                ("new_password", "a fine new password"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("invalid, already used or expired"), "{page}");
}

async fn sign_up_verify_and_log_in_through_the_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let walker = PageWalker::new();
    let csrf = walker.csrf_of(&server.url("/signup")).await;
    let response = walker
        .post(
            &server.url("/signup"),
            &[
                ("csrf_token", &csrf),
                ("email", "Ada@Example.com"),
                ("name", "Ada"),
                ("new_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Check your email"));

    // Not verified yet: the login page says so and offers a new link.
    let unverified = walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    assert_eq!(unverified.status(), StatusCode::FORBIDDEN);
    assert!(
        unverified
            .text()
            .await
            .unwrap()
            .contains("/verify-email/resend")
    );

    let link = server
        .mail
        .wait_for("ada@example.com", "Confirm your email")
        .await
        .link();
    assert!(
        link.starts_with(&server.url("/verify-email?token=")),
        "{link}"
    );
    // Opening the link does not use it up (mail scanners open links too).
    let page = walker.get(&link).await.text().await.unwrap();
    let token = token_of(&link);
    assert!(page.contains(&token), "the form carries the token");
    let verified = walker
        .post(
            &server.url("/verify-email"),
            &[("csrf_token", &csrf_token(&page)), ("token", &token)],
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert!(verified.text().await.unwrap().contains("Email verified"));

    let login = walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    assert_eq!(location(&login).path(), "/account/sessions");
    let sessions = walker
        .get(&server.url("/account/sessions"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        sessions.contains("ada@example.com") && sessions.contains("This browser"),
        "{sessions}"
    );

    // Forgot and reset through the pages.
    let other = PageWalker::new();
    let csrf = other.csrf_of(&server.url("/forgot-password")).await;
    other
        .post(
            &server.url("/forgot-password"),
            &[("csrf_token", &csrf), ("email", "ada@example.com")],
        )
        .await;
    let link = server
        .mail
        .wait_for("ada@example.com", "Reset your")
        .await
        .link();
    let page = other.get(&link).await.text().await.unwrap();
    let changed = other
        .post(
            &server.url("/reset-password"),
            &[
                ("csrf_token", &csrf_token(&page)),
                ("token", &token_of(&link)),
                ("new_password", "a brand new password"),
            ],
        )
        .await;
    assert!(changed.text().await.unwrap().contains("Password changed"));
    // The reset ended the first browser's login.
    let ended = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&ended).path(), "/login");
    let login = other
        .log_in(&server.base_url, "ada@example.com", "a brand new password")
        .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
}

fn set_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("gatehouse"))
        .expect("a session cookie")
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_renewed_at_login() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    let page = walker.get(&server.url("/login")).await;
    let before = set_cookie(&page);
    assert!(before.starts_with("gatehouse="), "{before}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(before.contains(attribute), "{before}");
    }
    let csrf = csrf_token(&page.text().await.unwrap());
    let login = walker
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &csrf),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let after = set_cookie(&login);
    assert_ne!(
        cookie_value(&before),
        cookie_value(&after),
        "a new session id at login"
    );
    // And a new CSRF token: one seen before the login is no good after it.
    let fresh = walker.csrf_of(&server.url("/logout")).await;
    assert_ne!(fresh, csrf);
    let stale_form = walker
        .post(&server.url("/logout"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(stale_form.status(), StatusCode::FORBIDDEN);
    // The old cookie value is worth nothing now (no session fixation).
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url("/account/sessions"))
        .header("cookie", cookie_value(&before))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&stale).path(), "/login");

    // Behind https the cookie is Secure with the __Host- prefix.
    let https =
        TestServer::start_with(Backend::Sqlite, &["issuer = \"https://id.example.com\""]).await;
    let page = PageWalker::new().get(&https.url("/login")).await;
    let cookie = set_cookie(&page);
    assert!(cookie.starts_with("__Host-gatehouse="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

async fn revoking_the_login_anywhere_logs_the_browser_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    assert_eq!(
        walker.get(&server.url("/account/sessions")).await.status(),
        StatusCode::OK
    );

    let sessions: Value = server
        .get_as(&api.access, "/api/v1/sessions")
        .await
        .json()
        .await
        .unwrap();
    let browser = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == json!(false))
        .expect("the browser's login is listed");
    let revoked = server
        .delete_as(
            &api.access,
            &format!("/api/v1/sessions/{}", browser["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let page = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&page).path(), "/login");

    // And the other way round: "sign out everywhere else" from the page ends the API login.
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    let page = walker
        .get(&server.url("/account/sessions"))
        .await
        .text()
        .await
        .unwrap();
    walker
        .post(
            &server.url("/account/sessions/revoke-others"),
            &[("csrf_token", &csrf_token(&page))],
        )
        .await;
    assert_eq!(
        server.get_as(&api.access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        walker.get(&server.url("/account/sessions")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn branding_and_templates_come_from_the_configuration() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("message.html"),
        "{% extends \"layout.html\" %}{% block title %}{{ heading }}{% endblock %}\
         {% block content %}<h1>Custom: {{ heading }}</h1>{% endblock %}",
    )
    .unwrap();
    let settings = format!(
        "[pages]\nproduct_name = \"Acme ID\"\naccent_colour = \"#ff5500\"\n\
         logo_url = \"https://cdn.example.com/logo.png\"\ntemplates_dir = \"{}\"\n",
        templates.path().display()
    );
    let server = TestServer::start_with(Backend::Sqlite, &[&settings]).await;
    let walker = PageWalker::new();
    let login = walker.get(&server.url("/login")).await;
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("img-src 'self' data: https://cdn.example.com"),
        "{csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "no script is ever allowed: {csp}"
    );
    let page = login.text().await.unwrap();
    assert!(
        page.contains("Acme ID") && page.contains("cdn.example.com"),
        "{page}"
    );
    let css = walker
        .get(&server.url("/assets/gatehouse.css"))
        .await
        .text()
        .await
        .unwrap();
    assert!(css.contains("--accent:#ff5500"));
    let signed_out = walker
        .get(&server.url("/logout"))
        .await
        .text()
        .await
        .unwrap();
    assert!(signed_out.contains("Custom: Signed out"), "{signed_out}");
}

#[tokio::test]
async fn the_browser_session_ends_after_its_idle_timeout_and_activity_extends_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    let hour = std::time::Duration::from_secs(3600);
    // Two visits 11 hours apart keep it (idle timeout: 12 hours).
    server.advance(11 * hour);
    assert_eq!(
        walker.get(&server.url("/account/sessions")).await.status(),
        StatusCode::OK
    );
    server.advance(11 * hour);
    assert_eq!(
        walker.get(&server.url("/account/sessions")).await.status(),
        StatusCode::OK
    );
    // Thirteen idle hours end it.
    server.advance(13 * hour);
    let page = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&page).path(), "/login");
}

#[tokio::test]
async fn the_bare_address_links_the_hosted_pages() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    for link in [
        "/login",
        "/signup",
        "/account/sessions",
        "/.well-known/openid-configuration",
    ] {
        assert!(
            page.contains(&format!("href=\"{link}\"")),
            "{link} missing:\n{page}"
        );
    }
}
