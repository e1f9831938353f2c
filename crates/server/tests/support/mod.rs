//! Real processes for the tests that need them: a deployment (one database, one master
//! key, one SMTP catcher) and `gatehouse serve` processes started on it, ready once
//! `/readyz` answers, stopped with real signals.
#![allow(
    dead_code,
    reason = "each test file uses the part of the helpers it needs"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails must fail the test loudly"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "waiting for a real process to come up is polling with a deadline"
)]

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
pub use gatehouse_tests::MailCatcher;
use gatehouse_tests::POSTGRES_ENV;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const BINARY: &str = env!("CARGO_BIN_EXE_gatehouse");

/// How long a process may take to answer `/readyz` (migrations on a fresh database).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two looks at something real that is not there yet.
pub const POLL: Duration = Duration::from_millis(20);

/// Cheap hashing, a generous login lockout (bursts from one IP are the point here).
pub const FAST: &str = "[password]\nargon2_memory_kib = 256\nargon2_iterations = 1\n\
    [lockout]\nmax_failures = 100000\nslow_down_after = 100000\n";

/// Which database a deployment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database (a SQLite file or a PostgreSQL database of its own, dropped at the end), a
/// master key and an SMTP catcher that the processes of one test share.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub mail: MailCatcher,
    pub issuer: String,
    /// The port of the issuer URL: the first process started listens there.
    issuer_port: u16,
    issuer_taken: std::sync::atomic::AtomicBool,
    master_key: String,
    postgres: Option<PostgresDatabase>,
}

impl Deployment {
    /// A deployment on SQLite, or on a fresh PostgreSQL database (`None`, with a message,
    /// when `GATEHOUSE_TEST_POSTGRES` is unset).
    pub async fn new(db: Db) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres) = match db {
            Db::Sqlite => (
                format!("sqlite://{}/gatehouse.db?mode=rwc", dir.path().display()),
                None,
            ),
            Db::Postgres => {
                let Some(admin_url) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
                else {
                    eprintln!("{POSTGRES_ENV} is not set: skipping this PostgreSQL test");
                    return None;
                };
                let database = PostgresDatabase::create(&admin_url).await;
                (database.url.clone(), Some(database))
            }
        };
        let mut key = [0u8; 32];
        gatehouse_core::platform::secrets::fill_random(&mut key).unwrap();
        let issuer_port = free_port();
        Some(Self {
            dir,
            database_url,
            mail: MailCatcher::start(),
            issuer: format!("http://127.0.0.1:{issuer_port}"),
            issuer_port,
            issuer_taken: std::sync::atomic::AtomicBool::new(false),
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            postgres,
        })
    }

    /// The configuration of a process on `port`: `server` holds more `[server]` lines,
    /// `extra` more tables (not `[server]`, `[database]`, `[secrets]` or `[mail]`).
    pub fn config(&self, port: u16, server: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("gatehouse-{port}.toml"));
        let text = format!(
            "issuer = \"{issuer}\"\ndata_dir = \"{data}\"\n\
             [server]\nbind = \"127.0.0.1:{port}\"\nworkers = 2\n{server}\n\
             [database]\nurl = \"{url}\"\nmax_connections = 5\n\
             [secrets]\nmaster_key = \"{key}\"\n\
             [mail]\ntransport = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:{smtp}\"\n\
             from = \"Gatehouse <no-reply@gatehouse.test>\"\ntimeout = \"1s\"\n{extra}",
            issuer = self.issuer,
            data = self.dir.path().display(),
            url = self.database_url,
            key = self.master_key,
            smtp = self.mail.port(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `gatehouse serve` once `/readyz` answers 200: the first on the issuer's port, the
    /// others on free ports (instances behind one load balancer share the issuer URL).
    pub async fn serve(&self, extra: &str) -> Instance {
        self.serve_with("", extra).await
    }

    /// [`Self::serve`] with more `[server]` lines.
    pub async fn serve_with(&self, server: &str, extra: &str) -> Instance {
        let first = !self
            .issuer_taken
            .swap(true, std::sync::atomic::Ordering::SeqCst);
        let port = if first { self.issuer_port } else { free_port() };
        self.serve_on(port, server, extra).await
    }

    /// `gatehouse serve` on `port` (a restart keeps its address).
    pub async fn serve_on(&self, port: u16, server: &str, extra: &str) -> Instance {
        let config = self.config(port, server, extra);
        let mut child = command(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let instance = Instance {
            child,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            log,
        };
        instance.ready().await
    }

    /// Runs an administration command on this deployment's database; its stdout.
    pub async fn run(&self, args: &[&str], stdin: &str) -> String {
        self.run_with("", args, stdin).await
    }

    /// [`Self::run`] with `extra` settings (tables).
    pub async fn run_with(&self, extra: &str, args: &[&str], stdin: &str) -> String {
        let config = self.config(0, "", extra);
        let mut child = command(&config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "gatehouse {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// An admin made with `gatehouse user create --role admin --verified`.
    pub async fn create_admin(&self, email: &str, password: &str) {
        self.run(
            &[
                "user",
                "create",
                "--email",
                email,
                "--role",
                "admin",
                "--verified",
            ],
            &format!("{password}\n"),
        )
        .await;
    }

    /// A confidential client made with `gatehouse client create`; (id, secret).
    pub async fn create_client(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["client", "create", "--type", "confidential"];
        all.extend_from_slice(args);
        let out: Value = serde_json::from_str(&self.run(&all, "").await).unwrap();
        (
            out["client_id"].as_str().unwrap().to_owned(),
            out["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A connection to the deployment's database, for looking at what was stored.
    pub async fn db(&self) -> DatabaseConnection {
        sea_orm::Database::connect(&self.database_url)
            .await
            .unwrap()
    }
}

/// `gatehouse --config FILE`, with no setting from the developer's environment.
fn command(config: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info,sqlx=warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command
}

/// One `gatehouse serve` process, killed when dropped.
pub struct Instance {
    child: Child,
    pub port: u16,
    pub base_url: String,
    pub http: reqwest::Client,
    log: Arc<Mutex<String>>,
}

impl Instance {
    async fn ready(mut self) -> Self {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "gatehouse exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            let ready = self.http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse not ready within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process runs")
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL (kill -9), and waits until the process is gone.
    pub async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(Result::unwrap)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Logs in; the JSON answer (access_token, refresh_token, session_id).
    pub async fn log_in(&self, email: &str, password: &str) -> Value {
        let response = self
            .post(
                "/api/v1/login",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "login of {email}"
        );
        response.json().await.unwrap()
    }
}

/// Waits up to `limit` for `check` to give `Some`, looking again every [`POLL`].
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(POLL).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL database made for one test, dropped (connections and all) after it.
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.ok();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Self {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                Ok::<_, sea_orm::DbErr>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
