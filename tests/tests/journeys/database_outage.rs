//! The database goes away and comes back: every request that needs it answers 503 with
//! a stable code and `Retry-After` (JSON on the API and OAuth endpoints, an HTML page
//! on the hosted pages), never a 500 or a cause; nothing is half-written; once the
//! database is back the same requests succeed without restarting Gatehouse.
//!
//! The test runs a PostgreSQL of its own (`initdb` + `pg_ctl` in a temporary folder, on
//! a free port) so that it can stop it (`pg_ctl stop -m immediate`, as a crash would)
//! and start it again on the same port. It is skipped, saying so, when the PostgreSQL
//! server binaries are not installed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse_tests::{Backend, FAST_HASHING, TestServer, Tokens};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

/// A PostgreSQL server owned by one test, in a temporary folder.
struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `initdb` refuses to run as root: then the server runs as the `postgres` user.
    run_as_postgres: bool,
}

impl OwnPostgres {
    /// A new cluster, started; `None` (with a message) when the binaries are missing.
    async fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            eprintln!(
                "SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl) under \
                 /usr/lib/postgresql/*/bin or on PATH; install postgresql to run this test"
            );
            return None;
        };
        let run_as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let dir = tempfile::tempdir().expect("temp dir");
        if run_as_postgres {
            run(
                "chown",
                &["-R", "postgres", &dir.path().display().to_string()],
            )
            .await;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let postgres = Self {
            bin,
            dir,
            port,
            run_as_postgres,
        };
        let data = postgres.data().display().to_string();
        postgres
            .pg(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            )
            .await;
        postgres.start_again().await;
        Some(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same port, waiting until it accepts connections.
    async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data().display().to_string();
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
        )
        .await;
    }

    /// Stops the server at once, as a crash would: no connection is closed cleanly.
    async fn stop_immediately(&self) {
        let data = self.data().display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-w", "-m", "immediate", "stop"])
            .await;
    }

    async fn pg(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool).display().to_string();
        if self.run_as_postgres {
            let mut all = vec!["-u", "postgres", "--", tool.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all).await;
        } else {
            run(&tool, args).await;
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let tool = self.bin.join("pg_ctl").display().to_string();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let mut command = if self.run_as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &tool]);
            c
        } else {
            std::process::Command::new(&tool)
        };
        let _ = command.args(args).output();
    }
}

fn postgres_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    candidates.sort();
    candidates.reverse();
    candidates.extend(
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    candidates
        .into_iter()
        .find(|dir| has_tool(dir, "initdb") && has_tool(dir, "pg_ctl"))
}

fn has_tool(dir: &Path, tool: &str) -> bool {
    dir.join(tool).is_file()
}

async fn run(program: &str, args: &[&str]) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const PASSWORD: &str = "outage password 1";

/// What the test does during and after the outage, with what it set up before.
struct Fixture {
    user: Tokens,
    admin: Tokens,
    client: (String, String),
    browser: reqwest::Client,
}

/// Each request a client makes, as (name, response).
async fn every_request(server: &TestServer, f: &Fixture) -> Vec<(&'static str, reqwest::Response)> {
    let http = &server.http;
    let mut answers = vec![
        (
            "readyz",
            http.get(server.url("/readyz")).send().await.unwrap(),
        ),
        ("me", server.get_as(&f.user.access, "/api/v1/me").await),
        (
            "login",
            server
                .post(
                    "/api/v1/login",
                    json!({ "email": "ada@example.com", "password": PASSWORD }),
                )
                .await,
        ),
        (
            "signup",
            server
                .post(
                    "/api/v1/signup",
                    json!({ "email": "new@example.com", "password": PASSWORD }),
                )
                .await,
        ),
        (
            "admin users",
            server.get_as(&f.admin.access, "/api/v1/admin/users").await,
        ),
        (
            "refresh",
            http.post(server.url("/oauth2/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "gatehouse-api"),
                    ("refresh_token", &f.user.refresh),
                ])
                .send()
                .await
                .unwrap(),
        ),
        (
            "client credentials",
            server
                .post_form(
                    "/oauth2/token",
                    (&f.client.0, &f.client.1),
                    &[("grant_type", "client_credentials")],
                )
                .await,
        ),
        (
            "introspect",
            server
                .post_form(
                    "/oauth2/introspect",
                    (&f.client.0, &f.client.1),
                    &[("token", &f.user.refresh)],
                )
                .await,
        ),
        // A browser that has a session cookie, and one that has none.
        (
            "login page with a session",
            f.browser.get(server.url("/login")).send().await.unwrap(),
        ),
        (
            "login page",
            http.get(server.url("/login")).send().await.unwrap(),
        ),
    ];
    answers.push((
        "account page with a session",
        f.browser
            .get(server.url("/account/sessions"))
            .send()
            .await
            .unwrap(),
    ));
    answers
}

fn is_page(name: &str) -> bool {
    name.contains("page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_without_restart() {
    let Some(postgres) = OwnPostgres::start().await else {
        return;
    };
    let server = TestServer::start_with(
        Backend::Postgres(postgres.url()),
        &[FAST_HASHING, "[database]\nconnect_timeout = \"1s\"\n"],
    )
    .await;
    let admin = server.admin("root@example.com").await;
    let client = server.service_client(&admin, &["a"]).await;
    let user = server.verified_user("ada@example.com", PASSWORD).await;
    let browser = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = browser.get(server.url("/login")).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the browser has a session cookie"
    );
    let fixture = Fixture {
        user,
        admin,
        client,
        browser,
    };

    postgres.stop_immediately().await;

    for (name, response) in every_request(&server, &fixture).await {
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {body}");
        assert!(
            retry_after.is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1),
            "{name}: a 503 says when to come back"
        );
        for internal in [
            "sqlx",
            "Connection refused",
            "connection",
            "Pool",
            "SQLSTATE",
            "postgres",
        ] {
            assert!(!body.contains(internal), "{name} shows its cause: {body}");
        }
        if is_page(name) {
            assert!(
                content_type.starts_with("text/html"),
                "{name}: {content_type}"
            );
            assert!(
                body.contains("<h1>Service Unavailable</h1>"),
                "{name}: {body}"
            );
        } else {
            let json: Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
            let code = json["error"].as_str().unwrap();
            // The OAuth endpoints answer the same code, in RFC 6749 form.
            assert_eq!(code, "database_unreachable", "{name}");
            if ["refresh", "client credentials", "introspect"].contains(&name) {
                assert!(json["error_description"].is_string(), "{name}");
            }
        }
    }

    postgres.start_again().await;

    // The pool reconnects on its own: poll readiness with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut polls = tokio::time::interval(Duration::from_millis(100));
    loop {
        polls.tick().await;
        let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the database came back"
        );
    }
    for (name, response) in every_request(&server, &fixture).await {
        let status = response.status();
        let body = response.text().await.unwrap();
        let expected = match name {
            "signup" => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        };
        assert_eq!(status, expected, "{name} after the outage: {body}");
    }
    // The refresh that failed during the outage used nothing up: the same token
    // refreshed after it (above, "refresh" answered 200).
    // The sign-up made during the outage wrote nothing: the one after it was the first.
    server
        .mail
        .wait_for("new@example.com", "Confirm your email")
        .await;
    let mails = server.mail.to("new@example.com");
    assert_eq!(
        mails.len(),
        1,
        "one verification mail, from the sign-up after the outage"
    );
}

/// SQLite held by another writer past the busy timeout: the request that needs to write
/// answers 503 `database_unreachable` (not 500), and succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_answers_503_until_it_is_free() {
    use sea_orm::ConnectionTrait;
    let server = TestServer::start(Backend::Sqlite).await;
    server.verified_user("ada@example.com", PASSWORD).await;
    let mut options = sea_orm::ConnectOptions::new(server.config.database.url.clone());
    options.max_connections(1).sqlx_logging(false);
    let other_writer = sea_orm::Database::connect(options).await.unwrap();
    other_writer
        .execute_unprepared("BEGIN EXCLUSIVE")
        .await
        .unwrap();

    // A login records the session: it must write, and waits out the busy timeout.
    let login = |password: &'static str| {
        server.post(
            "/api/v1/login",
            json!({ "email": "ada@example.com", "password": password }),
        )
    };
    let locked = login(PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(locked.headers().get(RETRY_AFTER).is_some());
    let body: Value = locked.json().await.unwrap();
    assert_eq!(body["error"], "database_unreachable");

    other_writer.execute_unprepared("ROLLBACK").await.unwrap();
    assert_eq!(login(PASSWORD).await.status(), StatusCode::OK);
}
