//! A consent page's answer applies to the request that page showed, once: another site
//! that sends the browser to `/oauth2/authorize` for its own app after the user opened
//! Good App's consent page does not get Good App's "Allow", and two tabs with two
//! consent pages each complete for their own app.

use gatehouse_tests::pages::{PageWalker, csrf_token, hidden_field, location};
use gatehouse_tests::{Backend, TestServer, on_both_databases};
use reqwest::{StatusCode, Url};
use sea_orm::EntityTrait;
use serde_json::json;

on_both_databases!(
    allow_on_one_page_cannot_be_switched_to_another_app,
    two_tabs_each_complete_their_own_request,
    oversized_request_parameters_are_refused_before_anything_is_stored,
);

const GOOD: &str = "http://127.0.0.1:9/good";
const EVIL: &str = "http://127.0.0.1:9/evil";
const PASSWORD: &str = "ada password 1";

struct Apps {
    server: TestServer,
    good: (String, String),
    evil: (String, String),
}

async fn two_apps(backend: Backend) -> Apps {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let mut register = Vec::new();
    for (name, uri) in [("Good App", GOOD), ("Evil App", EVIL)] {
        let (id, secret) = server
            .register_client(
                &admin,
                json!({ "name": name, "type": "confidential",
                        "grant_types": ["authorization_code"], "redirect_uris": [uri] }),
            )
            .await;
        register.push((id, secret.unwrap()));
    }
    server.verified_user("ada@example.com", PASSWORD).await;
    let evil = register.pop().unwrap();
    let good = register.pop().unwrap();
    Apps { server, good, evil }
}

fn authorize_url(server: &TestServer, client_id: &str, redirect_uri: &str) -> String {
    let mut url = Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("state", "st"),
    ]);
    url.into()
}

/// Opens an authorization request in the (logged-in) browser; returns its consent page.
async fn consent_page(walker: &PageWalker, url: &str) -> (Url, String) {
    let response = walker.get(url).await;
    let page_url = location(&response);
    assert_eq!(page_url.path(), "/consent");
    let html = walker.get(page_url.as_str()).await.text().await.unwrap();
    (page_url, html)
}

/// Posts a consent page's own form ("Allow" or "Deny").
async fn answer(
    walker: &PageWalker,
    server: &TestServer,
    html: &str,
    decision: &str,
) -> reqwest::Response {
    walker
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &csrf_token(html)),
                ("request", &hidden_field(html, "request")),
                ("decision", decision),
            ],
        )
        .await
}

async fn exchange(
    server: &TestServer,
    client: &(String, String),
    code: &str,
    redirect_uri: &str,
) -> StatusCode {
    server
        .post_form(
            "/oauth2/token",
            (&client.0, &client.1),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
        .status()
}

fn code_of(url: &Url) -> String {
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {url}"))
}

async fn allow_on_one_page_cannot_be_switched_to_another_app(backend: Backend) {
    let apps = two_apps(backend).await;
    let server = &apps.server;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;

    let (_, good_page) = consent_page(&walker, &authorize_url(server, &apps.good.0, GOOD)).await;
    assert!(good_page.contains("Good App"), "{good_page}");
    // Another site sends the browser to Evil App's request (a top-level GET).
    let evil_response = walker.get(&authorize_url(server, &apps.evil.0, EVIL)).await;
    assert_eq!(location(&evil_response).path(), "/consent");

    // "Allow" on Good App's page goes to Good App, with a code Good App can use.
    let allowed = answer(&walker, server, &good_page, "allow").await;
    let back = location(&allowed);
    assert!(back.as_str().starts_with(GOOD), "{back}");
    assert_eq!(
        exchange(server, &apps.good, &code_of(&back), GOOD).await,
        StatusCode::OK
    );

    // Evil App got no consent: it is still asked for, and prompt=none is refused.
    let mut silent = Url::parse(&authorize_url(server, &apps.evil.0, EVIL)).unwrap();
    silent.query_pairs_mut().append_pair("prompt", "none");
    let refused = location(&walker.get(silent.as_str()).await);
    assert!(refused.as_str().starts_with(EVIL));
    assert!(
        refused
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "consent_required"),
        "{refused}"
    );
    let page = walker
        .get(&server.url("/account/sessions"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Good App") && !page.contains("Evil App"),
        "{page}"
    );

    // The page's answer is single use, and a made-up request is nothing.
    let again = answer(&walker, server, &good_page, "allow").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let forged = good_page.replace(&hidden_field(&good_page, "request"), "not-a-request");
    assert_eq!(
        answer(&walker, server, &forged, "allow").await.status(),
        StatusCode::BAD_REQUEST
    );
    let bare = walker
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &csrf_token(&good_page)),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
}

async fn two_tabs_each_complete_their_own_request(backend: Backend) {
    let apps = two_apps(backend).await;
    let server = &apps.server;
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, "ada@example.com", PASSWORD)
        .await;

    let (_, first) = consent_page(&walker, &authorize_url(server, &apps.good.0, GOOD)).await;
    let (_, second) = consent_page(&walker, &authorize_url(server, &apps.evil.0, EVIL)).await;
    assert!(second.contains("Evil App"));

    // Answered in the other order than opened: each goes back to its own app.
    let back = location(&answer(&walker, server, &second, "allow").await);
    assert!(back.as_str().starts_with(EVIL), "{back}");
    assert_eq!(
        exchange(server, &apps.evil, &code_of(&back), EVIL).await,
        StatusCode::OK
    );
    let back = location(&answer(&walker, server, &first, "deny").await);
    assert!(back.as_str().starts_with(GOOD), "{back}");
    assert!(
        back.query_pairs()
            .any(|(k, v)| k == "error" && v == "access_denied")
    );

    // Another user's browser cannot answer this browser's page.
    let (_, third) = consent_page(&walker, &authorize_url(server, &apps.good.0, GOOD)).await;
    let other = PageWalker::new();
    server
        .verified_user("eve@example.com", "eve password 1")
        .await;
    other
        .log_in(&server.base_url, "eve@example.com", "eve password 1")
        .await;
    let eve_csrf = other.csrf_of(&server.url("/account/sessions")).await;
    let stolen = other
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &eve_csrf),
                ("request", &hidden_field(&third, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    let back = location(&answer(&walker, server, &third, "allow").await);
    assert!(back.as_str().starts_with(GOOD), "{back}");
}

/// A request parameter the browser session would have to keep is capped: a stranger's
/// oversized `state` or `login_hint` goes back as `invalid_request`, and no browser
/// session is stored for it.
async fn oversized_request_parameters_are_refused_before_anything_is_stored(backend: Backend) {
    let apps = two_apps(backend).await;
    let server = &apps.server;
    let walker = PageWalker::new();
    let huge = "x".repeat(2048);
    for (name, value) in [("state", huge.as_str()), ("login_hint", huge.as_str())] {
        let mut url = Url::parse(&authorize_url(server, &apps.good.0, GOOD)).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair(name, value);
        let back = location(&walker.get(url.as_str()).await);
        assert!(back.as_str().starts_with(GOOD), "{name}: {back}");
        assert!(
            back.query_pairs()
                .any(|(k, v)| k == "error" && v == "invalid_request"),
            "{name}: {back}"
        );
        assert!(
            back.as_str().len() < 1024,
            "the oversized value is not sent back"
        );
    }
    let stored = gatehouse_entity::browser_sessions::Entity::find()
        .all(server.gatehouse.db())
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "{} browser sessions stored",
        stored.len()
    );
}
