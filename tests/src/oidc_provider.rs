#![expect(
    clippy::expect_used,
    reason = "test support: a set-up that fails must fail the test loudly"
)]

//! A small OpenID Connect provider whose ID tokens a test can spoil one way at a time (a
//! nonce of another sign-in, another audience, an expired token, another issuer, a key
//! published for another algorithm), whose discovery document can name an endpoint off
//! the provider, and whose token response or key set can be padded past a size limit: the refusals Gatehouse owes its users, which a well-behaved provider
//! (a second Gatehouse) never makes it show. Its authorization endpoint answers at once,
//! as for a user already signed in there; codes are single use.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};

/// How the provider misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    Nothing,
    /// The ID token carries a nonce of its own.
    Nonce,
    /// The ID token is for another client.
    Audience,
    /// The ID token expired an hour ago.
    Expired,
    /// The ID token names another issuer.
    Issuer,
    /// The key set says its key is for RS256; the token is EdDSA.
    KeyAlgorithm,
    /// The discovery document's `jwks_uri` is plain http off the machine.
    JwksOverHttp,
    /// The token response is valid but padded to [`PADDING_BYTES`].
    HugeTokenResponse,
    /// The key set is valid but padded to [`PADDING_BYTES`], and sent without a
    /// `Content-Length`.
    HugeKeys,
}

/// How much the `Huge...` spoils pad an answer with.
pub const PADDING_BYTES: usize = 256 * 1024;

/// A field of `PADDING_BYTES` characters, for the `Huge...` spoils.
fn padding() -> Value {
    json!("x".repeat(PADDING_BYTES))
}

struct State {
    issuer: String,
    spoil: Spoil,
    key: EncodingKey,
    public_x: String,
    /// Code -> nonce of the request.
    codes: HashMap<String, Option<String>>,
}

/// The running provider.
pub struct FakeOidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl Drop for FakeOidcProvider {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl FakeOidcProvider {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            spoil: Spoil::Nothing,
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            codes: HashMap::new(),
        }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            issuer,
            client_id: "downstream".to_owned(),
            client_secret: "fake-oidc-secret".to_owned(),
            state,
            handle,
        }
    }

    /// From now on, the provider misbehaves this way.
    pub fn spoil(&self, spoil: Spoil) {
        self.state.lock().expect("lock").spoil = spoil;
    }

    /// The `[[federation.providers]]` entry of this provider, with the id `fake`.
    pub fn provider_settings(&self) -> String {
        format!(
            "[[federation.providers]]\nid = \"fake\"\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            self.issuer, self.client_id, self.client_secret
        )
    }
}

type Shared = web::Data<Arc<Mutex<State>>>;

async fn discovery(state: Shared) -> HttpResponse {
    let state = state.lock().expect("lock");
    let issuer = &state.issuer;
    let jwks_uri = match state.spoil {
        Spoil::JwksOverHttp => "http://keys.example.com/jwks".to_owned(),
        _ => format!("{issuer}/jwks"),
    };
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": jwks_uri,
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks(state: Shared) -> HttpResponse {
    let state = state.lock().expect("lock");
    let alg = match state.spoil {
        Spoil::KeyAlgorithm => "RS256",
        _ => "EdDSA",
    };
    let mut keys = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": state.public_x, "kid": "k1", "alg": alg, "use": "sig",
    }]});
    if state.spoil == Spoil::HugeKeys {
        keys["padding"] = padding();
        // Streamed, without a Content-Length: the size shows only while reading.
        let body = web::Bytes::from(keys.to_string());
        return HttpResponse::Ok()
            .content_type("application/json")
            .streaming(futures_util::stream::once(async move {
                Ok::<_, actix_web::Error>(body)
            }));
    }
    HttpResponse::Ok().json(keys)
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
}

async fn authorize(state: Shared, query: web::Query<AuthorizeQuery>) -> HttpResponse {
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    state
        .lock()
        .expect("lock")
        .codes
        .insert(code.clone(), query.nonce.clone());
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
    code: String,
}

async fn token(state: Shared, form: web::Form<TokenForm>) -> HttpResponse {
    let mut state = state.lock().expect("lock");
    let Some(nonce) = state.codes.remove(&form.code) else {
        return HttpResponse::BadRequest().json(json!({ "error": "invalid_grant" }));
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "another party with a clock of its own, as a real provider has"
    )]
    let now = chrono::Utc::now().timestamp();
    let mut claims: Value = json!({
        "iss": state.issuer, "sub": "fake-user-1", "aud": "downstream",
        "iat": now, "exp": now + 300, "nonce": nonce,
        "email": "fake.user@example.com", "email_verified": true,
    });
    match state.spoil {
        Spoil::Nonce => claims["nonce"] = json!("another sign-in's nonce"),
        Spoil::Audience => claims["aud"] = json!("another-client"),
        Spoil::Expired => claims["exp"] = json!(now - 3600),
        Spoil::Issuer => claims["iss"] = json!("https://evil.example"),
        Spoil::Nothing
        | Spoil::KeyAlgorithm
        | Spoil::JwksOverHttp
        | Spoil::HugeTokenResponse
        | Spoil::HugeKeys => {}
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    let id_token = jsonwebtoken::encode(&header, &claims, &state.key).expect("sign");
    let mut answer = json!({
        "access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token,
    });
    if state.spoil == Spoil::HugeTokenResponse {
        answer["padding"] = padding();
    }
    HttpResponse::Ok().json(answer)
}
