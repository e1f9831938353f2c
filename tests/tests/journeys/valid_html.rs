//! Every hosted page, in each of its states, is valid HTML by the W3C Nu HTML Checker
//! (the npm package `vnu-jar` in `tests/html`, run with Java).

use std::path::{Path, PathBuf};

use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// How to install the Java the Nu HTML Checker runs on, for a failure message.
const INSTALL_JAVA: &str = "run tests/run (or `apt-get install default-jre-headless` as root: \
     the Nu HTML Checker needs Java 11 or newer)";

fn validator() -> PathBuf {
    let jar =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("html/node_modules/vnu-jar/build/dist/vnu.jar");
    assert!(
        jar.exists(),
        "{} is missing: run tests/run (or `npm ci` in tests/html)",
        jar.display()
    );
    jar
}

/// Saves the body of a response as `<name>.html`.
async fn save(dir: &Path, name: &str, response: reqwest::Response) {
    let html = response.text().await.unwrap();
    assert!(
        html.starts_with("<!doctype html>"),
        "{name} is not a page:\n{html}"
    );
    std::fs::write(dir.join(format!("{name}.html")), html).unwrap();
}

#[tokio::test]
async fn every_hosted_page_is_valid_html() {
    let jar = validator();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    // A provider, so that the login, sign-up and account pages show its buttons.
    let github = gatehouse_tests::github::FakeGitHub::start();
    let provider = github.provider_settings();
    let server =
        TestServer::start_with(Backend::Sqlite, &[gatehouse_tests::FAST_HASHING, &provider]).await;
    let admin = server.admin("root@example.com").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, _) = server
        .register_client(
            &admin,
            json!({ "name": "Photos & <Friends>", "type": "confidential",
                    "grant_types": ["authorization_code"], "redirect_uris": [redirect],
                    "scopes": ["albums:read"] }),
        )
        .await;
    server.verified_user("ada@example.com", PASSWORD).await;
    server.sign_up("new@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    let url = |path: &str| server.url(path);

    save(out, "login", walker.get(&url("/login")).await).await;
    let csrf = walker.csrf_of(&url("/login")).await;
    let wrong = walker
        .post(
            &url("/login"),
            &[
                ("csrf_token", &csrf),
                ("email", "ada@example.com"),
                ("password", "nope nope nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    save(out, "login-wrong-password", wrong).await;
    let unverified = walker
        .post(
            &url("/login"),
            &[
                ("csrf_token", &csrf),
                ("email", "new@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(unverified.status(), StatusCode::FORBIDDEN);
    save(out, "login-unverified", unverified).await;
    save(out, "signup", walker.get(&url("/signup")).await).await;
    let short = walker
        .post(
            &url("/signup"),
            &[
                ("csrf_token", &csrf),
                ("email", "not-an-email"),
                ("new_password", "x"),
            ],
        )
        .await;
    save(out, "signup-errors", short).await;
    let short = walker
        .post(
            &url("/signup"),
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("new_password", "x"),
            ],
        )
        .await;
    save(out, "signup-short-password", short).await;
    let done = walker
        .post(
            &url("/signup"),
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("new_password", PASSWORD),
            ],
        )
        .await;
    save(out, "signup-done", done).await;
    save(
        out,
        "verify-email",
        walker.get(&url("/verify-email?token=abc")).await,
    )
    .await;
    let bad_token = walker
        .post(
            &url("/verify-email"),
            &[("csrf_token", &csrf), ("token", "abc")],
        )
        .await;
    save(out, "verify-email-invalid", bad_token).await;
    for page in ["confirm-email", "undo-email-change"] {
        save(
            out,
            page,
            walker.get(&url(&format!("/{page}?token=abc"))).await,
        )
        .await;
        let bad_token = walker
            .post(
                &url(&format!("/{page}")),
                &[("csrf_token", &csrf), ("token", "abc")],
            )
            .await;
        save(out, &format!("{page}-invalid"), bad_token).await;
    }
    save(out, "home", walker.get(&url("/")).await).await;
    save(
        out,
        "forgot-password",
        walker.get(&url("/forgot-password")).await,
    )
    .await;
    save(
        out,
        "reset-password",
        walker.get(&url("/reset-password?token=abc")).await,
    )
    .await;
    let bad_reset = walker
        .post(
            &url("/reset-password"),
            &[
                ("csrf_token", &csrf),
                ("token", "abc"),
                ("new_password", "x"),
            ],
        )
        .await;
    save(out, "reset-password-errors", bad_reset).await;
    let forbidden = walker.post(&url("/logout"), &[]).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    save(out, "csrf-refused", forbidden).await;
    save(
        out,
        "authorize-unknown-client",
        walker.get(&url("/oauth2/authorize?client_id=nope")).await,
    )
    .await;

    // Logged in: consent, sessions (two logins, one app), logout.
    server.log_in("ada@example.com", PASSWORD).await;
    let mut authorize = reqwest::Url::parse(&url("/oauth2/authorize")).unwrap();
    authorize.query_pairs_mut().extend_pairs([
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid email profile albums:read"),
        ("state", "s"),
    ]);
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;
    let to_consent = walker.get(authorize.as_str()).await;
    assert_eq!(location(&to_consent).path(), "/consent");
    let consent = walker.get(location(&to_consent).as_str()).await;
    let consent_html = consent.text().await.unwrap();
    std::fs::write(out.join("consent.html"), &consent_html).unwrap();
    walker
        .post(
            &url("/consent"),
            &[
                ("csrf_token", &csrf_token(&consent_html)),
                (
                    "request",
                    &gatehouse_tests::pages::hidden_field(&consent_html, "request"),
                ),
                ("decision", "allow"),
            ],
        )
        .await;
    save(out, "sessions", walker.get(&url("/account/sessions")).await).await;
    save(
        out,
        "account-delete",
        walker.get(&url("/account/delete")).await,
    )
    .await;
    save(
        out,
        "reauthenticate",
        walker
            .get(&url("/reauthenticate?next=/account/delete"))
            .await,
    )
    .await;
    let page = walker
        .get(&url("/reauthenticate"))
        .await
        .text()
        .await
        .unwrap();
    let wrong = walker
        .post(
            &url("/reauthenticate"),
            &[
                ("csrf_token", &csrf_token(&page)),
                ("password", "nope nope nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    save(out, "reauthenticate-wrong-password", wrong).await;
    save(
        out,
        "account-email",
        walker.get(&url("/account/email")).await,
    )
    .await;
    let csrf = csrf_token(&page);
    let taken = walker
        .post(
            &url("/account/email"),
            &[("csrf_token", &csrf), ("email", "ada@example.com")],
        )
        .await;
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    save(out, "account-email-unchanged", taken).await;
    save(
        out,
        "account-mfa-off",
        walker.get(&url("/account/mfa")).await,
    )
    .await;
    let enrol = walker
        .post(&url("/account/mfa/totp"), &[("csrf_token", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    std::fs::write(out.join("mfa-enrol.html"), &enrol).unwrap();
    let secret = enrol
        .split(r#"<code class="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the key on the page")
        .to_owned();
    let wrong = walker
        .post(
            &url("/account/mfa/totp/confirm"),
            &[("csrf_token", &csrf), ("code", "not a code")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    save(out, "mfa-enrol-wrong-code", wrong).await;
    let code = crate::mfa::code_now(&server, &secret);
    let codes = walker
        .post(
            &url("/account/mfa/totp/confirm"),
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(codes.status(), StatusCode::OK);
    save(out, "recovery-codes", codes).await;
    save(
        out,
        "account-mfa-on",
        walker.get(&url("/account/mfa")).await,
    )
    .await;
    save(out, "logout", walker.get(&url("/logout")).await).await;
    let page = walker.get(&url("/logout")).await.text().await.unwrap();
    let signed_out = walker
        .post(&url("/logout"), &[("csrf_token", &csrf_token(&page))])
        .await;
    save(out, "signed-out", signed_out).await;

    // The second step of a login with two-factor authentication.
    crate::mfa::enrolled_user(&server, "mfa@example.com").await;
    let second = PageWalker::new();
    let login = second
        .log_in(&server.base_url, "mfa@example.com", crate::mfa::PASSWORD)
        .await;
    assert_eq!(location(&login).path(), "/login/mfa");
    let page = second.get(&url("/login/mfa")).await.text().await.unwrap();
    std::fs::write(out.join("login-mfa.html"), &page).unwrap();
    let wrong = second
        .post(
            &url("/login/mfa"),
            &[("csrf_token", &csrf_token(&page)), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    save(out, "login-mfa-wrong-code", wrong).await;

    // An admin's impersonation in a browser: its link's form, and a page with the banner.
    let found: serde_json::Value = server
        .get_as(&admin.access, "/api/v1/admin/users?email=ada@example.com")
        .await
        .json()
        .await
        .unwrap();
    let ada = found["users"][0]["id"].as_str().unwrap().to_owned();
    let opened: serde_json::Value = server
        .post_as(
            &admin.access,
            &format!("/api/v1/admin/users/{ada}/impersonate"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let link = opened["browser_url"].as_str().unwrap();
    let admin_browser = PageWalker::new();
    let page = admin_browser.get(link).await.text().await.unwrap();
    std::fs::write(out.join("impersonate.html"), &page).unwrap();
    admin_browser
        .post(
            &url("/impersonate"),
            &[
                ("csrf_token", &csrf_token(&page)),
                ("token", &gatehouse_tests::token_of(link)),
            ],
        )
        .await;
    save(
        out,
        "sessions-impersonated",
        admin_browser.get(&url("/account/sessions")).await,
    )
    .await;

    let pages: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(pages.len(), 37);
    let output = tokio::process::Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .arg("--errors-only")
        .args(&pages)
        .output()
        .await
        .unwrap_or_else(|e| panic!("could not run java: {e}; {INSTALL_JAVA}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("UnsupportedClassVersionError") {
        format!("\nthis Java is too old: {INSTALL_JAVA}")
    } else {
        String::new()
    };
    assert!(
        output.status.success(),
        "the Nu HTML Checker found errors:\n{stderr}{hint}"
    );
}
