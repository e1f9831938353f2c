//! OpenID Connect Back-Channel Logout and RP-Initiated Logout: when a session ends, the
//! app that holds its tokens receives a signed logout token, retried until it answers.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use gatehouse_tests::pages::{PageWalker, csrf_token, location};
use gatehouse_tests::{Backend, TestServer, Tokens, decode_claims, on_both_databases};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

on_both_databases!(
    logging_out_in_the_browser_tells_the_app,
    deleting_the_account_tells_the_app,
);

const APP: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery";

/// An app's back-channel logout endpoint: records the tokens it receives and answers
/// with the statuses it is given, then 200.
#[derive(Clone, Default)]
struct Receiver {
    tokens: Arc<Mutex<Vec<String>>>,
    failures_left: Arc<Mutex<u32>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    fn start(failures: u32) -> (Self, String) {
        let receiver = Receiver::default();
        *receiver.failures_left.lock().unwrap() = failures;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/backchannel-logout",
            listener.local_addr().unwrap()
        );
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().route(
                "/backchannel-logout",
                web::post().to(move |form: web::Form<Vec<(String, String)>>| {
                    let state = state.clone();
                    async move {
                        let token = form
                            .iter()
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        state.tokens.lock().unwrap().push(token);
                        let fail = {
                            let mut left = state.failures_left.lock().unwrap();
                            let fail = *left > 0;
                            *left = left.saturating_sub(1);
                            fail
                        };
                        state.arrived.notify_one();
                        if fail {
                            HttpResponse::InternalServerError().finish()
                        } else {
                            HttpResponse::Ok().finish()
                        }
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        (receiver, url)
    }

    /// Waits (up to 10 s) until `n` tokens arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.arrived.notified();
                if self.tokens.lock().unwrap().len() >= n {
                    return self.tokens.lock().unwrap().clone();
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} logout tokens did not arrive"))
    }
}

struct Signed {
    server: TestServer,
    admin: Tokens,
    client_id: String,
    walker: PageWalker,
    id_token: String,
}

/// A user signed in to an app (first-party, so no consent) through the browser.
async fn signed_in(backend: Backend, overrides: &[&str], backchannel: &str) -> Signed {
    let server = TestServer::start_with(backend, overrides).await;
    let admin = server.admin("root@example.com").await;
    let (client_id, secret) = server
        .register_client(
            &admin,
            json!({ "name": "Shop", "type": "confidential", "first_party": true,
                    "grant_types": ["authorization_code"], "redirect_uris": [APP],
                    "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
                    "backchannel_logout_uri": backchannel }),
        )
        .await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let walker = PageWalker::new();
    let verifier = "a-verifier-that-is-long-enough-to-be-a-valid-pkce-verifier-0123";
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        Sha256::digest(verifier.as_bytes()),
    );
    let mut url = reqwest::Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", client_id.as_str()),
        ("redirect_uri", APP),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let callback = walker
        .authorize(url.as_str(), APP, "ada@example.com", PASSWORD)
        .await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = server
        .post_form(
            "/oauth2/token",
            (&client_id, secret.as_deref().unwrap()),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP),
                ("code_verifier", verifier),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    Signed {
        server,
        admin,
        client_id,
        walker,
        id_token: tokens["id_token"].as_str().unwrap().to_owned(),
    }
}

/// Checks a logout token's signature against the JWKS and its claims against the spec.
async fn check_logout_token(signed: &Signed, token: &str) -> Value {
    let server = &signed.server;
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = server.verify_signed(token, &signed.client_id).await;
    let id_claims = decode_claims(&signed.id_token);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
    assert!(claims["jti"].is_string() && claims["iat"].is_i64() && claims["exp"].is_i64());
    claims
}

async fn audit_events(signed: &Signed) -> Vec<Value> {
    let user = decode_claims(&signed.id_token)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let page: Value = signed
        .server
        .get_as(
            &signed.admin.access,
            &format!("/api/v1/admin/audit?user_id={user}"),
        )
        .await
        .json()
        .await
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

fn has_event(events: &[Value], name: &str) -> bool {
    events.iter().any(|e| e["event"] == name)
}

async fn logging_out_in_the_browser_tells_the_app(backend: Backend) {
    let (receiver, uri) = Receiver::start(0);
    let signed = signed_in(backend, &[], &uri).await;
    let server = &signed.server;
    let page = signed
        .walker
        .get(&server.url("/logout"))
        .await
        .text()
        .await
        .unwrap();
    let done = signed
        .walker
        .post(
            &server.url("/logout"),
            &[("csrf_token", &csrf_token(&page))],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    let tokens = receiver.wait_for(1).await;
    check_logout_token(&signed, &tokens[0]).await;
    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let events = audit_events(&signed).await;
            if has_event(&events, "backchannel_logout_delivered") {
                return events;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the delivery is audited");
    assert!(has_event(&delivered, "logout"));
}

async fn deleting_the_account_tells_the_app(backend: Backend) {
    let (receiver, uri) = Receiver::start(0);
    let signed = signed_in(backend, &[], &uri).await;
    let server = &signed.server;
    let page = signed
        .walker
        .get(&server.url("/account/delete"))
        .await
        .text()
        .await
        .unwrap();
    let done = signed
        .walker
        .post(
            &server.url("/account/delete"),
            &[("csrf_token", &csrf_token(&page))],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    // The logout token names the deleted account and its session, signed as ever.
    let tokens = receiver.wait_for(1).await;
    check_logout_token(&signed, &tokens[0]).await;
}

#[tokio::test]
async fn an_admin_revocation_reaches_the_app_and_failures_are_retried_with_backoff() {
    let (receiver, uri) = Receiver::start(1);
    let signed = signed_in(
        Backend::Sqlite,
        &["[backchannel_logout]\nfirst_retry_after = \"30s\"\nmax_attempts = 3\n"],
        &uri,
    )
    .await;
    let server = &signed.server;
    let user = decode_claims(&signed.id_token)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .post_as(
            &signed.admin.access,
            &format!("/api/v1/admin/users/{user}/sessions/revoke"),
            json!({}),
        )
        .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    // The first attempt fails (500); the retry waits 30 s of the server's clock.
    receiver.wait_for(1).await;
    server.advance(Duration::from_secs(31));
    let tokens = receiver.wait_for(2).await;
    let first = check_logout_token(&signed, &tokens[0]).await;
    let second = check_logout_token(&signed, &tokens[1]).await;
    assert_eq!(first["sid"], second["sid"]);
    assert_ne!(first["jti"], second["jti"], "each attempt is a new token");
}

#[tokio::test]
async fn an_app_that_never_answers_is_given_up_and_audited() {
    let (receiver, uri) = Receiver::start(u32::MAX);
    let signed = signed_in(
        Backend::Sqlite,
        &["[backchannel_logout]\nfirst_retry_after = \"10s\"\nmax_attempts = 2\n"],
        &uri,
    )
    .await;
    let server = &signed.server;
    let page = signed
        .walker
        .get(&server.url("/logout"))
        .await
        .text()
        .await
        .unwrap();
    signed
        .walker
        .post(
            &server.url("/logout"),
            &[("csrf_token", &csrf_token(&page))],
        )
        .await;
    receiver.wait_for(1).await;
    server.advance(Duration::from_secs(11));
    receiver.wait_for(2).await;
    let events = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let events = audit_events(&signed).await;
            if has_event(&events, "backchannel_logout_failed") {
                return events;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the failure is audited");
    let failed = events
        .iter()
        .find(|e| e["event"] == "backchannel_logout_failed")
        .unwrap();
    assert_eq!(failed["details"]["attempts"], 2);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_login_and_returns_to_a_registered_uri() {
    let (receiver, uri) = Receiver::start(0);
    let signed = signed_in(Backend::Sqlite, &[], &uri).await;
    let server = &signed.server;
    let end_session = |params: &[(&str, &str)]| {
        let mut url = reqwest::Url::parse(&server.url("/oauth2/logout")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    };

    // An unregistered return address is refused on a page, never redirected to.
    let refused = signed
        .walker
        .get(&end_session(&[
            ("id_token_hint", &signed.id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get("location").is_none());
    // A forged hint is refused too.
    let forged = format!("{}x", signed.id_token);
    let refused = signed
        .walker
        .get(&end_session(&[
            ("id_token_hint", &forged),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
        ]))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // A client_id that is not the hint's audience is refused.
    let mismatch = signed
        .walker
        .get(&end_session(&[
            ("id_token_hint", &signed.id_token),
            ("client_id", "another-app"),
        ]))
        .await;
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    // Without a hint, the user confirms on the logout page.
    let unconfirmed = signed.walker.get(&end_session(&[])).await;
    assert_eq!(location(&unconfirmed).path(), "/logout");
    assert_eq!(
        signed
            .walker
            .get(&server.url("/account/sessions"))
            .await
            .status(),
        StatusCode::OK
    );

    let back = signed
        .walker
        .get(&end_session(&[
            ("id_token_hint", &signed.id_token),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ("state", "xyz"),
        ]))
        .await;
    assert_eq!(location(&back).as_str(), "http://127.0.0.1:9/bye?state=xyz");
    let after = signed.walker.get(&server.url("/account/sessions")).await;
    assert_eq!(location(&after).path(), "/login");
    let tokens = receiver.wait_for(1).await;
    check_logout_token(&signed, &tokens[0]).await;
}
