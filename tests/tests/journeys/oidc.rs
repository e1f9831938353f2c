//! OpenID Connect: an app sends the user to `/oauth2/authorize`, gets a code back and
//! exchanges it with its PKCE verifier, using the `oauth2` crate as the client app.
//! Every error path of the authorization and token endpoints, consent, and userinfo.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::pages::{PageWalker, location};
use gatehouse_tests::{Backend, TestServer, Tokens, decode_claims, on_both_databases};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    code_flow_with_pkce_signs_the_user_in,
    a_reused_code_revokes_the_tokens_of_its_first_use,
);

const APP: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery";

/// The token response with the ID token, which the `oauth2` crate leaves to extensions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;

type App = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn app(server: &TestServer, client_id: &str) -> App {
    oauth2::Client::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::new(server.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(server.url("/oauth2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(APP.to_owned()).unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A started authorization request: its URL and what the app keeps.
struct Request {
    url: Url,
    state: CsrfToken,
    verifier: PkceCodeVerifier,
    nonce: String,
}

fn request(app: &App, scopes: &[&str]) -> Request {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = CsrfToken::new_random().secret().clone();
    let (url, state) = app
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
        .add_extra_param("nonce", &nonce)
        .set_pkce_challenge(challenge)
        .url();
    Request {
        url,
        state,
        verifier,
        nonce,
    }
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct Setup {
    server: TestServer,
    admin: Tokens,
    client_id: String,
    email: String,
}

async fn setup(backend: Backend, client: Value) -> Setup {
    let server = TestServer::start(backend).await;
    let admin = server.admin("root@example.com").await;
    let mut registration = json!({
        "name": "Photo app", "type": "public",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [APP],
    });
    for (key, value) in client.as_object().unwrap() {
        registration[key] = value.clone();
    }
    let (client_id, _) = server.register_client(&admin, registration).await;
    let email = "ada@example.com".to_owned();
    server.verified_user(&email, PASSWORD).await;
    Setup {
        server,
        admin,
        client_id,
        email,
    }
}

/// Signs in through the pages and returns the code of the callback.
async fn code_for(setup: &Setup, walker: &PageWalker, request: &Request) -> String {
    let callback = walker
        .authorize(request.url.as_str(), APP, &setup.email, PASSWORD)
        .await;
    assert_eq!(
        param(&callback, "state").as_deref(),
        Some(request.state.secret().as_str())
    );
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some(setup.server.base_url.as_str())
    );
    param(&callback, "code").expect("a code")
}

async fn code_flow_with_pkce_signs_the_user_in(backend: Backend) {
    let setup = setup(backend, json!({})).await;
    let server = &setup.server;
    let app = app(server, &setup.client_id);
    let walker = PageWalker::new();
    let request = request(&app, &["openid", "email", "profile", "offline_access"]);

    // Not logged in: the authorization endpoint sends the browser to the login page,
    // which resumes the request; a third-party app needs consent.
    let first = walker.get(request.url.as_str()).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&first).path(), "/login");
    let login = walker
        .log_in(&server.base_url, &setup.email, PASSWORD)
        .await;
    assert_eq!(location(&login).path(), "/oauth2/authorize/continue");
    let resumed = walker.get(location(&login).as_str()).await;
    assert_eq!(location(&resumed).path(), "/consent");
    let consent_page = walker
        .get(location(&resumed).as_str())
        .await
        .text()
        .await
        .unwrap();
    assert!(consent_page.contains("Photo app"), "{consent_page}");
    assert!(
        consent_page.contains("See your email address"),
        "{consent_page}"
    );
    let code = code_for(&setup, &walker, &request).await;

    let tokens = app
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(request.verifier)
        .request_async(&http())
        .await
        .expect("the code is exchanged");
    let access = tokens.access_token().secret().clone();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token");
    let id_token = tokens.extra_fields().id_token.clone().expect("an ID token");

    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "JWT");
    let claims = decode_claims(&id_token);
    assert_eq!(claims["iss"], server.base_url.as_str());
    assert_eq!(claims["aud"], setup.client_id.as_str());
    assert_eq!(claims["nonce"], request.nonce.as_str());
    assert_eq!(claims["email"], setup.email.as_str());
    assert_eq!(claims["email_verified"], true);
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    let digest = Sha256::digest(access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    let access_claims = decode_claims(&access);
    assert_eq!(
        access_claims["sid"], claims["sid"],
        "one app session behind both"
    );
    assert_eq!(access_claims["client_id"], setup.client_id.as_str());

    // The ID token is signed by a key of the published JWKS.
    server.verify_signed(&id_token, &setup.client_id).await;

    // userinfo, by GET and by POST.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let info: Value = server
            .http
            .request(method, server.url("/oauth2/userinfo"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["email"], setup.email.as_str());
    }
    let refused = server
        .http
        .get(server.url("/oauth2/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // The refresh token works for this client.
    let refreshed = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.secret()),
            ("client_id", &setup.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    // With a new ID token for the same user, app and login (OIDC Core 12.2), no nonce.
    let refreshed: Value = refreshed.json().await.unwrap();
    let renewed = server
        .verify_signed(refreshed["id_token"].as_str().unwrap(), &setup.client_id)
        .await;
    for claim in ["sub", "aud", "sid", "auth_time", "email"] {
        assert_eq!(renewed[claim], claims[claim], "{claim}");
    }
    assert!(renewed.get("nonce").is_none());
    let renewed_access = refreshed["access_token"].as_str().unwrap();
    let digest = Sha256::digest(renewed_access.as_bytes());
    assert_eq!(renewed["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    // Consent is remembered: the next request comes straight back with a code.
    let again = request_for(&app, &["openid", "email"]);
    let direct = walker.get(again.url.as_str()).await;
    let callback = location(&direct);
    assert!(callback.as_str().starts_with(APP), "{callback}");
    assert!(param(&callback, "code").is_some());
}

fn request_for(app: &App, scopes: &[&str]) -> Request {
    request(app, scopes)
}

async fn exchange(
    server: &TestServer,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

async fn oauth_error(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

async fn a_reused_code_revokes_the_tokens_of_its_first_use(backend: Backend) {
    let setup = setup(backend, json!({ "first_party": true })).await;
    let server = &setup.server;
    let app = app(server, &setup.client_id);
    let walker = PageWalker::new();
    let request = request(&app, &["openid", "offline_access"]);
    let code = code_for(&setup, &walker, &request).await;
    let verifier = request.verifier.secret().clone();

    let first: Value = exchange(server, &setup.client_id, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap();
    let userinfo = |token: String| async move {
        server
            .http
            .get(server.url("/oauth2/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(userinfo(access.to_owned()).await, StatusCode::OK);

    let second = exchange(server, &setup.client_id, &code, &verifier).await;
    assert_eq!(oauth_error(second).await, "invalid_grant");
    assert_eq!(userinfo(access.to_owned()).await, StatusCode::UNAUTHORIZED);
    let refresh = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", &setup.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(refresh).await, "invalid_grant");
    // The browser login itself stands: only the app's tokens ended.
    let page = walker.get(&server.url("/account/sessions")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let _ = &setup.admin;
}

#[tokio::test]
async fn token_endpoint_checks_pkce_redirect_uri_client_and_expiry() {
    let setup = setup(Backend::Sqlite, json!({ "first_party": true })).await;
    let server = &setup.server;
    let app = app(server, &setup.client_id);
    let walker = PageWalker::new();

    // A wrong verifier, a missing one, another redirect_uri: each is invalid_grant, and
    // each uses the code up.
    let wrong = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &wrong).await;
    let other_verifier = PkceCodeChallenge::new_random_sha256().1;
    let response = exchange(server, &setup.client_id, &code, other_verifier.secret()).await;
    assert_eq!(oauth_error(response).await, "invalid_grant");

    let missing = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &missing).await;
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP),
            ("client_id", &setup.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(response).await, "invalid_grant");

    let elsewhere = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &elsewhere).await;
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", &setup.client_id),
            ("code_verifier", elsewhere.verifier.secret()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(response).await, "invalid_grant");

    // Another client cannot use the code.
    let (other_client, _) = server
        .register_client(
            &setup.admin,
            json!({ "name": "Other", "type": "public", "grant_types": ["authorization_code"],
                    "redirect_uris": [APP] }),
        )
        .await;
    let stolen = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &stolen).await;
    let response = exchange(server, &other_client, &code, stolen.verifier.secret()).await;
    assert_eq!(oauth_error(response).await, "invalid_grant");

    // Codes live 60 seconds.
    let late = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &late).await;
    server.advance(std::time::Duration::from_secs(61));
    let response = exchange(server, &setup.client_id, &code, late.verifier.secret()).await;
    assert_eq!(oauth_error(response).await, "invalid_grant");

    // The right verifier within the time works (the control for all of the above).
    let good = request(&app, &["openid"]);
    let code = code_for(&setup, &walker, &good).await;
    let response = exchange(server, &setup.client_id, &code, good.verifier.secret()).await;
    assert_eq!(response.status(), StatusCode::OK);
    // And the oauth2 crate sees a refused exchange as the server's OAuth error.
    let replay = app
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(good.verifier.secret().clone()))
        .request_async(&http())
        .await;
    match replay {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().as_ref(), "invalid_grant");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

/// The authorization endpoint with hand-made parameters.
fn authorize_url(server: &TestServer, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

#[tokio::test]
async fn untrusted_requests_get_an_error_page_and_never_a_redirect() {
    let setup = setup(Backend::Sqlite, json!({})).await;
    let server = &setup.server;
    let walker = PageWalker::new();
    let challenge = PkceCodeChallenge::new_random_sha256().0;
    let base = [
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("client_id", "no-such-client"), ("redirect_uri", APP)],
        vec![
            ("client_id", &setup.client_id),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![
            ("client_id", &setup.client_id),
            ("redirect_uri", "http://127.0.0.1:9/callback/"),
        ],
        vec![("client_id", &setup.client_id)],
    ];
    for case in cases {
        let mut params = base.to_vec();
        params.extend(case);
        let response = walker.get(&authorize_url(server, &params)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains("cannot be used"), "{page}");
    }
}

#[tokio::test]
async fn request_errors_go_back_to_the_app_with_state_and_issuer() {
    let setup = setup(Backend::Sqlite, json!({})).await;
    let server = &setup.server;
    let walker = PageWalker::new();
    let challenge = PkceCodeChallenge::new_random_sha256().0;
    let client_id = setup.client_id.as_str();
    let good = vec![
        ("client_id", client_id),
        ("redirect_uri", APP),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with = |changes: &[(&'static str, Option<&'static str>)]| {
        let mut params: Vec<(&str, &str)> = good
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .copied()
            .collect();
        params.extend(changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
        params
    };
    // (parameters, expected error, expected state)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (with(&[("state", None)]), "invalid_request", None),
        (
            with(&[("response_type", Some("token"))]),
            "unsupported_response_type",
            Some("s1"),
        ),
        (
            with(&[("code_challenge_method", Some("plain"))]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("code_challenge", None), ("code_challenge_method", None)]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("scope", Some("openid admin:everything"))]),
            "invalid_scope",
            Some("s1"),
        ),
        (
            with(&[("prompt", Some("none"))]),
            "login_required",
            Some("s1"),
        ),
        (
            with(&[("max_age", Some("soon"))]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("code_challenge", Some("too-short"))]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("prompt", Some("none login"))]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("response_mode", Some("fragment"))]),
            "invalid_request",
            Some("s1"),
        ),
        (
            with(&[("request", Some("eyJ"))]),
            "request_not_supported",
            Some("s1"),
        ),
    ];
    for (params, error, state) in cases {
        let response = walker.get(&authorize_url(server, &params)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{params:?}");
        let back = location(&response);
        assert!(back.as_str().starts_with(APP), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{params:?}");
        assert!(param(&back, "error_description").is_some());
        assert_eq!(param(&back, "state").as_deref(), state);
        assert_eq!(
            param(&back, "iss").as_deref(),
            Some(server.base_url.as_str())
        );
    }
    // A repeated parameter is refused too.
    let mut repeated = good.clone();
    repeated.push(("scope", "email"));
    let response = walker.get(&authorize_url(server, &repeated)).await;
    assert_eq!(
        param(&location(&response), "error").as_deref(),
        Some("invalid_request")
    );

    // Logged in but not yet allowed: prompt=none cannot ask, so consent_required.
    walker
        .log_in(&server.base_url, &setup.email, PASSWORD)
        .await;
    let response = walker
        .get(&authorize_url(server, &with(&[("prompt", Some("none"))])))
        .await;
    assert_eq!(
        param(&location(&response), "error").as_deref(),
        Some("consent_required")
    );
    // Denying on the consent page: access_denied.
    let response = walker.get(&authorize_url(server, &good)).await;
    assert_eq!(location(&response).path(), "/consent");
    let page = walker
        .get(location(&response).as_str())
        .await
        .text()
        .await
        .unwrap();
    let denied = walker
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &gatehouse_tests::pages::csrf_token(&page)),
                (
                    "request",
                    &gatehouse_tests::pages::hidden_field(&page, "request"),
                ),
                ("decision", "deny"),
            ],
        )
        .await;
    let back = location(&denied);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_the_password_again() {
    let setup = setup(Backend::Sqlite, json!({ "first_party": true })).await;
    let server = &setup.server;
    let app = app(server, &setup.client_id);
    let walker = PageWalker::new();
    walker
        .log_in(&server.base_url, &setup.email, PASSWORD)
        .await;

    // A first-party app with a login in the browser: straight back with a code.
    let plain = request(&app, &["openid"]);
    let response = walker.get(plain.url.as_str()).await;
    assert!(location(&response).as_str().starts_with(APP));

    let mut forced = request(&app, &["openid"]).url;
    forced.query_pairs_mut().append_pair("prompt", "login");
    let response = walker.get(forced.as_str()).await;
    assert_eq!(location(&response).path(), "/login");

    server.advance(std::time::Duration::from_secs(120));
    let mut aged = request(&app, &["openid"]).url;
    aged.query_pairs_mut().append_pair("max_age", "60");
    let response = walker.get(aged.as_str()).await;
    assert_eq!(location(&response).path(), "/login");
    let login = walker
        .log_in(&server.base_url, &setup.email, PASSWORD)
        .await;
    let resumed = walker.get(location(&login).as_str()).await;
    let back = location(&resumed);
    assert!(back.as_str().starts_with(APP), "{back}");
    assert!(param(&back, "code").is_some());
}

#[tokio::test]
async fn withdrawing_consent_ends_the_apps_tokens() {
    let setup = setup(Backend::Sqlite, json!({})).await;
    let server = &setup.server;
    let app = app(server, &setup.client_id);
    let walker = PageWalker::new();
    let request = request(&app, &["openid", "email"]);
    let code = code_for(&setup, &walker, &request).await;
    let tokens: Value = exchange(server, &setup.client_id, &code, request.verifier.secret())
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    let page = walker
        .get(&server.url("/account/sessions"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Photo app"), "{page}");
    let csrf = gatehouse_tests::pages::csrf_token(&page);
    let withdrawn = walker
        .post(
            &server.url(&format!("/account/apps/{}/withdraw", setup.client_id)),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::SEE_OTHER);
    let status = server
        .http
        .get(server.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The next request asks for consent again.
    let again = request_for(&app, &["openid", "email"]);
    let response = walker.get(again.url.as_str()).await;
    assert_eq!(location(&response).path(), "/consent");
}

#[tokio::test]
async fn discovery_describes_the_provider() {
    let server = TestServer::start(Backend::Sqlite).await;
    let doc = server.get_json("/.well-known/openid-configuration").await;
    let issuer = &server.base_url;
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{issuer}/oauth2/userinfo")
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{issuer}/oauth2/logout")
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    for scope in ["openid", "email", "profile", "offline_access"] {
        assert!(
            doc["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope))
        );
    }
}

#[tokio::test]
async fn refresh_tokens_come_with_offline_access_or_by_client_setting() {
    let setup = setup(Backend::Sqlite, json!({ "first_party": true })).await;
    let server = &setup.server;
    let walker = PageWalker::new();
    let tokens_for = |client_id: String, scopes: &'static [&'static str]| {
        let walker = &walker;
        let setup = &setup;
        async move {
            let app = app(server, &client_id);
            let request = request(&app, scopes);
            let code = code_for(setup, walker, &request).await;
            let body: Value = exchange(server, &client_id, &code, request.verifier.secret())
                .await
                .json()
                .await
                .unwrap();
            body
        }
    };
    let plain = tokens_for(setup.client_id.clone(), &["openid"]).await;
    assert!(plain.get("refresh_token").is_none(), "{plain}");
    let offline = tokens_for(setup.client_id.clone(), &["openid", "offline_access"]).await;
    assert!(offline["refresh_token"].is_string(), "{offline}");

    let (always, _) = server
        .register_client(
            &setup.admin,
            json!({ "name": "Always", "type": "public", "first_party": true,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": [APP], "always_issue_refresh_token": true }),
        )
        .await;
    let by_setting = tokens_for(always, &["openid"]).await;
    assert!(by_setting["refresh_token"].is_string(), "{by_setting}");

    // Without the refresh_token grant, offline_access is ignored (OIDC Core 11).
    let (no_refresh, _) = server
        .register_client(
            &setup.admin,
            json!({ "name": "Online only", "type": "public", "first_party": true,
                    "grant_types": ["authorization_code"], "redirect_uris": [APP] }),
        )
        .await;
    let ignored = tokens_for(no_refresh, &["openid", "offline_access"]).await;
    assert!(ignored.get("refresh_token").is_none(), "{ignored}");
    assert_eq!(ignored["scope"], "openid");
}

#[tokio::test]
async fn pkce_downgrade_scopes_and_ended_logins_are_refused() {
    let setup = setup(Backend::Sqlite, json!({})).await;
    let server = &setup.server;
    let (confidential, secret) = server
        .register_client(
            &setup.admin,
            json!({ "name": "Backend app", "type": "confidential", "first_party": true,
                    "grant_types": ["authorization_code"], "redirect_uris": [APP] }),
        )
        .await;
    let secret = secret.unwrap();
    let walker = PageWalker::new();
    let no_pkce = |scope: &str| {
        authorize_url(
            server,
            &[
                ("client_id", &confidential),
                ("redirect_uri", APP),
                ("response_type", "code"),
                ("scope", scope),
                ("state", "s"),
            ],
        )
    };
    let code_of = |url: Url| param(&url, "code").unwrap();
    let exchange_confidential = |code: String, verifier: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", APP.to_owned()),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        server
            .http
            .post(server.url("/oauth2/token"))
            .basic_auth(&confidential, Some(&secret))
            .form(&form)
            .send()
    };

    // A confidential client may skip PKCE, but a verifier for a request without a
    // challenge is a downgrade attempt.
    let verifier = "a-verifier-that-is-long-enough-to-be-a-valid-pkce-verifier-0123";
    let code = code_of(
        walker
            .authorize(&no_pkce("openid"), APP, &setup.email, PASSWORD)
            .await,
    );
    let downgrade = exchange_confidential(code, Some(verifier)).await.unwrap();
    assert_eq!(oauth_error(downgrade).await, "invalid_grant");
    let code = code_of(
        walker
            .authorize(&no_pkce("email"), APP, &setup.email, PASSWORD)
            .await,
    );
    let plain = exchange_confidential(code, None).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);

    // userinfo needs the openid scope.
    let body: Value = plain.json().await.unwrap();
    let response = server
        .http
        .get(server.url("/oauth2/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // Consent covers the scopes allowed: asking for one more asks again.
    let app = app(server, &setup.client_id);
    let first = request(&app, &["openid", "email"]);
    code_for(&setup, &walker, &first).await;
    let same = request(&app, &["openid"]);
    assert!(
        location(&walker.get(same.url.as_str()).await)
            .as_str()
            .starts_with(APP)
    );
    let more = request(&app, &["openid", "email", "profile"]);
    assert_eq!(
        location(&walker.get(more.url.as_str()).await).path(),
        "/consent"
    );

    // A code whose login ended before the exchange is refused.
    let code = code_of(
        walker
            .authorize(&no_pkce("openid"), APP, &setup.email, PASSWORD)
            .await,
    );
    let user = server.log_in(&setup.email, PASSWORD).await;
    let user_id = decode_claims(&user.access)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .post_as(
            &setup.admin.access,
            &format!("/api/v1/admin/users/{user_id}/sessions/revoke"),
            json!({}),
        )
        .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let ended = exchange_confidential(code, None).await.unwrap();
    assert_eq!(oauth_error(ended).await, "invalid_grant");
}
