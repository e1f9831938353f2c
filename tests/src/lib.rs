#![expect(
    clippy::expect_used,
    reason = "test support: a set-up that fails must fail the test loudly"
)]

//! Test support: the real Gatehouse server on an ephemeral port against a fresh database
//! (SQLite always, PostgreSQL when `GATEHOUSE_TEST_POSTGRES` is set), a real SMTP listener
//! that captures mail, an HTTP client, and a clock the test moves.

pub mod browser;
pub mod github;
pub mod logs;
pub mod mail;
pub mod oidc_provider;
pub mod pages;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use base64::Engine;
use gatehouse_core::{Gatehouse, ManualClock, Role};
use gatehouse_server::app;
use gatehouse_server::config::Config;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

pub use mail::{CapturedMail, MailCatcher};

/// Environment variable naming a PostgreSQL server (URL of any database on it) on which
/// each test creates and drops a database of its own.
pub const POSTGRES_ENV: &str = "GATEHOUSE_TEST_POSTGRES";

/// Which database a test server uses.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL, when the environment names a server.
    pub fn postgres() -> Option<Self> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("{POSTGRES_ENV} is not set: this test ran on SQLite only");
                None
            }
        }
    }
}

/// Runs each named `async fn name(backend: Backend)` as two tests: `name::sqlite` and
/// `name::postgres` (the latter only does work when `GATEHOUSE_TEST_POSTGRES` is set).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::Backend::postgres() {
                        super::$name(backend).await
                    }
                }
            }
        )*
    };
}

/// Cheap argon2 parameters for the suite; one test runs the defaults. The rate limits
/// stay on but so high that no journey from 127.0.0.1 trips them (the rate limit journeys
/// set their own).
pub const FAST_HASHING: &str = "[password]\nargon2_memory_kib = 256\nargon2_iterations = 1\n[rate_limit.login]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.signup]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.mail]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.password_reset]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.token]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.introspect]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.authorize]\nper_ip = 1000000\nper_account = 1000000\n[rate_limit.api]\nper_ip = 1000000\nper_account = 1000000\n";

/// A database made for one test and dropped after it.
enum TestDatabase {
    Sqlite,
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Another instance's database: that instance drops it.
    Shared,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, database) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime guarantee: use a thread with its own runtime.
            let dropped = std::thread::spawn(move || {
                let name = database;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let db = sea_orm::Database::connect(&admin_url)
                        .await
                        .map_err(std::io::Error::other)?;
                    use sea_orm::ConnectionTrait;
                    db.execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .await
                    .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {name}");
            }
        }
    }
}

/// What a second instance shares with the first (see [`TestServer::another_instance`]).
struct Sibling<'a> {
    issuer: &'a str,
    clock: Arc<ManualClock>,
    mail: MailCatcher,
}

/// The socket a test server listens on, bound before it starts.
pub struct Listener {
    pub socket: TcpListener,
    /// The issuer's host is `localhost` instead of `127.0.0.1`: a second server whose
    /// browser cookies must not mix with the first's (cookies ignore ports).
    pub localhost: bool,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            socket: TcpListener::bind("127.0.0.1:0").expect("bind"),
            localhost: false,
        }
    }
}

impl Listener {
    /// The URL the server will have, `path` on it.
    pub fn url(&self, path: &str) -> String {
        let host = if self.localhost {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let port = self.socket.local_addr().expect("addr").port();
        format!("http://{host}:{port}{path}")
    }
}

/// A running server and everything a test needs to talk to it.
pub struct TestServer {
    pub base_url: String,
    pub http: reqwest::Client,
    pub gatehouse: Gatehouse,
    pub clock: Arc<ManualClock>,
    pub mail: MailCatcher,
    pub config: Config,
    /// The base URL of the `metrics.bind` listener, when the configuration has one.
    pub metrics_url: Option<String>,
    handle: ServerHandle,
    metrics_handle: Option<ServerHandle>,
    background: Vec<tokio::task::JoinHandle<()>>,
    layers: Vec<String>,
    _data_dir: Arc<tempfile::TempDir>,
    _database: TestDatabase,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Sends the stop command now; nothing needs to wait for it.
        drop(self.handle.stop(false));
        if let Some(handle) = &self.metrics_handle {
            drop(handle.stop(false));
        }
        self.background.iter().for_each(|task| task.abort());
    }
}

impl TestServer {
    /// A server with the suite's defaults (fast hashing).
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[FAST_HASHING]).await
    }

    /// A server with extra TOML settings applied after the suite's own.
    pub async fn start_with(backend: Backend, overrides: &[&str]) -> Self {
        Self::start_on(backend, overrides, Listener::default()).await
    }

    /// [`Self::start_with`] on a listener bound beforehand (whose address other servers
    /// must know first), maybe with `localhost` as the issuer's host.
    pub async fn start_on(backend: Backend, overrides: &[&str], listener: Listener) -> Self {
        logs::capture();
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (database, database_url) = match backend {
            Backend::Sqlite => (
                TestDatabase::Sqlite,
                format!(
                    "sqlite://{}/gatehouse.db?mode=rwc",
                    data_dir.path().display()
                ),
            ),
            Backend::Postgres(url) => create_postgres_database(&url).await,
        };
        let master_key = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
        let shared = format!(
            "data_dir = \"{}\"\n[database]\nurl = \"{database_url}\"\nmax_connections = 5\n[secrets]\nmaster_key = \"{master_key}\"\n",
            data_dir.path().display()
        );
        let mut layers = vec![shared];
        layers.extend(overrides.iter().map(|s| (*s).to_owned()));
        Self::launch(layers, data_dir, database, None, listener).await
    }

    /// A second instance on the same database and master key, with the same public
    /// issuer URL, clock and mail relay (`self.mail` holds what either sent), as behind a
    /// load balancer.
    pub async fn another_instance(&self) -> Self {
        Self::launch(
            self.layers.clone(),
            self._data_dir.clone(),
            TestDatabase::Shared,
            Some(Sibling {
                issuer: &self.config.issuer,
                clock: self.clock.clone(),
                mail: self.mail.clone(),
            }),
            Listener::default(),
        )
        .await
    }

    async fn launch(
        layers: Vec<String>,
        data_dir: Arc<tempfile::TempDir>,
        database: TestDatabase,
        sibling: Option<Sibling<'_>>,
        listener: Listener,
    ) -> Self {
        let host = if listener.localhost {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let listener = listener.socket;
        let port = listener.local_addr().expect("addr").port();
        // Instances behind one load balancer share the public URL, (synchronised) time and
        // the mail relay: whichever instance's outbox worker claims a mail, it reaches the
        // same inbox.
        let (issuer, clock, mail) = match sibling {
            Some(Sibling {
                issuer,
                clock,
                mail,
            }) => (issuer.to_owned(), clock, mail),
            None => (
                format!("http://{host}:{port}"),
                Arc::new(ManualClock::default()),
                MailCatcher::start(),
            ),
        };
        let instance = format!(
            r#"
issuer = "{issuer}"
[server]
bind = "127.0.0.1:{port}"
workers = 1
[mail]
transport = "smtp"
smtp_url = "smtp://127.0.0.1:{smtp_port}"
from = "Gatehouse <no-reply@gatehouse.test>"
[revocations]
poll_interval = "100ms"
[backchannel_logout]
poll_interval = "50ms"
timeout = "2s"
[mail.outbox]
poll_interval = "50ms"
"#,
            smtp_port = mail.port(),
        );
        let mut all: Vec<&str> = vec![&instance];
        all.extend(layers.iter().map(String::as_str));
        let config = Config::load_with(None, &all).expect("test configuration");
        let gatehouse = app::build_gatehouse(&config, clock.clone())
            .await
            .expect("server starts");
        let background =
            app::spawn_background(gatehouse.clone(), &config).expect("background tasks");
        let server = app::http_server(&config, gatehouse.clone(), listener).expect("http server");
        let handle = server.handle();
        tokio::spawn(server);
        // `metrics.bind` (a test gives port 0): the separate metrics listener.
        let (metrics_url, metrics_handle) = match config.metrics.listener() {
            Some(bind) => {
                let listener = TcpListener::bind(bind).expect("bind the metrics listener");
                let url = format!("http://{}", listener.local_addr().expect("addr"));
                let server =
                    gatehouse_server::metrics::metrics_server(&config, gatehouse.clone(), listener)
                        .expect("metrics server");
                let handle = server.handle();
                tokio::spawn(server);
                (Some(url), Some(handle))
            }
            None => (None, None),
        };
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            gatehouse,
            clock,
            mail,
            config,
            metrics_url,
            handle,
            metrics_handle,
            background,
            layers,
            _data_dir: data_dir,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// POSTs a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Exchanges a refresh token (`POST /api/v1/token/refresh`).
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post(
            "/api/v1/token/refresh",
            serde_json::json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// Exchanges the refresh tokens all at once, answers in their order.
    pub async fn refresh_at_once<'a>(
        &self,
        refresh_tokens: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Response> {
        futures_util::future::join_all(refresh_tokens.into_iter().map(|t| self.refresh(t))).await
    }

    /// POSTs a JSON body with a Bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// GETs with a Bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// DELETEs with a Bearer token.
    pub async fn delete_as(&self, token: &str, path: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// PATCHes a JSON body with a Bearer token.
    pub async fn patch_as(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Signs up and returns the link from the verification mail.
    pub async fn sign_up(&self, email: &str, password: &str) -> String {
        let response = self
            .post(
                "/api/v1/signup",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        self.mail.wait_for(email, "Confirm your email").await.link()
    }

    /// Signs up, follows the verification link, and logs in.
    pub async fn verified_user(&self, email: &str, password: &str) -> Tokens {
        let link = self.sign_up(email, password).await;
        let response = self
            .post("/api/v1/email/verify", json!({ "token": token_of(&link) }))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        self.log_in(email, password).await
    }

    /// Logs in, expecting success.
    pub async fn log_in(&self, email: &str, password: &str) -> Tokens {
        let response = self
            .post(
                "/api/v1/login",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        Tokens::from(response.json::<Value>().await.expect("json"))
    }

    /// Creates an admin the way `gatehouse user create --role admin --verified` does, and
    /// logs in as them.
    pub async fn admin(&self, email: &str) -> Tokens {
        let password = "admin password 1";
        self.gatehouse
            .create_user(email, SecretString::from(password), Role::Admin, true)
            .await
            .expect("admin created");
        self.log_in(email, password).await
    }

    /// Registers a client through the admin API; returns its id and secret.
    pub async fn register_client(&self, admin: &Tokens, client: Value) -> (String, Option<String>) {
        let response = self
            .post_as(&admin.access, "/api/v1/admin/clients", client)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        (
            body["client_id"].as_str().expect("client_id").to_owned(),
            body["client_secret"].as_str().map(str::to_owned),
        )
    }

    /// A confidential client allowed `client_credentials`, with the given scopes.
    pub async fn service_client(&self, admin: &Tokens, scopes: &[&str]) -> (String, String) {
        let (id, secret) = self
            .register_client(
                admin,
                json!({ "name": "backend", "type": "confidential", "grant_types": ["client_credentials"], "scopes": scopes }),
            )
            .await;
        (id, secret.expect("confidential clients get a secret"))
    }

    /// POSTs a form with HTTP Basic client authentication.
    pub async fn post_form(
        &self,
        path: &str,
        client: (&str, &str),
        form: &[(&str, &str)],
    ) -> Response {
        self.http
            .post(self.url(path))
            .basic_auth(client.0, Some(client.1))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// GETs a path and reads its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("a JSON body")
    }

    /// Checks a JWT's signature against the published JWKS, its issuer and audience (not
    /// its expiry: the server's clock is a test clock); returns its claims.
    pub async fn verify_signed(&self, token: &str, audience: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(self.get_json("/.well-known/jwks.json").await).expect("a JWKS");
        let header = jsonwebtoken::decode_header(token).expect("a JWT");
        let kid = header.kid.expect("a kid");
        let jwk = jwks.find(&kid).expect("the key is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("a usable key");
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.base_url]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("signed by a published key, for this issuer and audience")
            .claims
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// What a successful login or refresh returned.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: Uuid,
    pub body: Value,
}

impl From<Value> for Tokens {
    fn from(body: Value) -> Self {
        Self {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            session_id: body["session_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("session_id"),
            body,
        }
    }
}

/// The `token` query parameter of a link from a mail.
pub fn token_of(link: &str) -> String {
    link.split_once("token=")
        .map(|(_, t)| t.split('&').next().unwrap_or(t).to_owned())
        .expect("link has a token")
}

/// The claims of a JWT, unverified (tests look at what the server put in).
pub fn decode_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("JSON claims")
}

/// Reads an error body and returns its `error` code, checking the shape on the way.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    body["error"].as_str().expect("error code").to_owned()
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    gatehouse_core::platform::secrets::fill_random(&mut bytes).expect("random");
    bytes
}

async fn create_postgres_database(admin_url: &str) -> (TestDatabase, String) {
    use sea_orm::ConnectionTrait;
    let name = format!("gatehouse_test_{}", Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url)
        .await
        .expect("PostgreSQL answers");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("URL with a database name");
    let url = format!("{base}/{name}");
    (
        TestDatabase::Postgres {
            admin_url: admin_url.to_owned(),
            name,
        },
        url,
    )
}
