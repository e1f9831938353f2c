#![expect(
    clippy::expect_used,
    reason = "test support: a set-up that fails must fail the test loudly"
)]

//! A small server that speaks GitHub's OAuth app endpoints (`/login/oauth/authorize`,
//! `/login/oauth/access_token`) and the REST endpoints Gatehouse reads (`/user`,
//! `/user/emails`), for the `github` provider kind. The user "signed in at GitHub" is the
//! one the test sets; the authorization page answers at once, as GitHub does for an app
//! the user already authorized. Codes are single use and bound to the PKCE challenge,
//! the client and its secret, as GitHub binds them.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A GitHub account as the fake's API shows it.
#[derive(Debug, Clone)]
pub struct GitHubUser {
    pub id: u64,
    pub login: String,
    /// The primary address, and whether GitHub verified it.
    pub email: String,
    pub verified: bool,
}

#[derive(Default)]
struct State {
    signed_in: Option<GitHubUser>,
    /// Code -> (PKCE challenge, redirect URI, user).
    codes: HashMap<String, (String, String, GitHubUser)>,
    /// Access token -> user.
    tokens: HashMap<String, GitHubUser>,
    exchanges: usize,
}

/// The running fake.
pub struct FakeGitHub {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

struct Config {
    client_id: String,
    client_secret: String,
    state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let (client_id, client_secret) =
            ("Iv1.fakeclient".to_owned(), "fake-github-secret".to_owned());
        let config = web::Data::new(Config {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            state: state.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(config.clone())
                .route("/login/oauth/authorize", web::get().to(authorize))
                .route("/login/oauth/access_token", web::post().to(access_token))
                .route("/user", web::get().to(user))
                .route("/user/emails", web::get().to(emails))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            client_id,
            client_secret,
            state,
            handle,
        }
    }

    /// The account the browser is signed in to at the fake GitHub.
    pub fn sign_in_as(&self, user: GitHubUser) {
        self.state.lock().expect("lock").signed_in = Some(user);
    }

    /// How many codes were exchanged for tokens.
    pub fn exchanges(&self) -> usize {
        self.state.lock().expect("lock").exchanges
    }

    /// The `[[federation.providers]]` entry of this fake, with the id `github`.
    pub fn provider_settings(&self) -> String {
        format!(
            "[[federation.providers]]\nid = \"github\"\nkind = \"github\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthorize_url = \"{url}/login/oauth/authorize\"\ntoken_url = \"{url}/login/oauth/access_token\"\napi_url = \"{url}\"\n",
            self.client_id,
            self.client_secret,
            url = self.url
        )
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
}

async fn authorize(config: web::Data<Config>, query: web::Query<AuthorizeQuery>) -> HttpResponse {
    if query.client_id != config.client_id || query.code_challenge_method != "S256" {
        return HttpResponse::BadRequest().body("unknown client or no PKCE");
    }
    let mut state = config.state.lock().expect("lock");
    let Some(user) = state.signed_in.clone() else {
        return HttpResponse::Unauthorized().body("nobody is signed in at the fake GitHub");
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    state.codes.insert(
        code.clone(),
        (
            query.code_challenge.clone(),
            query.redirect_uri.clone(),
            user,
        ),
    );
    let mut to = url::Url::parse(&query.redirect_uri).expect("redirect_uri");
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query.state);
    HttpResponse::Found()
        .insert_header(("location", to.as_str()))
        .finish()
}

#[derive(Deserialize)]
struct TokenForm {
    client_id: String,
    client_secret: String,
    code: String,
    redirect_uri: Option<String>,
    code_verifier: String,
}

/// GitHub answers 200 with an `error` member for a bad code, as here.
async fn access_token(config: web::Data<Config>, form: web::Form<TokenForm>) -> HttpResponse {
    let mut state = config.state.lock().expect("lock");
    let refused = |error: &str| HttpResponse::Ok().json(json!({ "error": error }));
    if form.client_id != config.client_id || form.client_secret != config.client_secret {
        return refused("incorrect_client_credentials");
    }
    let Some((challenge, redirect_uri, user)) = state.codes.remove(&form.code) else {
        return refused("bad_verification_code");
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(form.code_verifier.as_bytes()));
    if computed != challenge || form.redirect_uri.as_deref() != Some(redirect_uri.as_str()) {
        return refused("bad_verification_code");
    }
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    state.tokens.insert(token.clone(), user);
    state.exchanges += 1;
    HttpResponse::Ok().json(json!({
        "access_token": token, "token_type": "bearer", "scope": "read:user,user:email",
    }))
}

fn user_of(config: &Config, req: &HttpRequest) -> Option<GitHubUser> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    config
        .state
        .lock()
        .expect("lock")
        .tokens
        .get(token)
        .cloned()
}

async fn user(config: web::Data<Config>, req: HttpRequest) -> HttpResponse {
    match user_of(&config, &req) {
        Some(u) => HttpResponse::Ok().json(json!({
            "id": u.id, "login": u.login, "name": null, "email": null,
        })),
        None => HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" })),
    }
}

async fn emails(config: web::Data<Config>, req: HttpRequest) -> HttpResponse {
    match user_of(&config, &req) {
        Some(u) => HttpResponse::Ok().json(json!([
            { "email": format!("{}@users.noreply.github.com", u.login), "primary": false, "verified": true, "visibility": null },
            { "email": u.email, "primary": true, "verified": u.verified, "visibility": "public" },
        ])),
        None => HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" })),
    }
}
