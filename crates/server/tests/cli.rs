//! The compiled `gatehouse` binary: help, configuration refusals, `user create` reading
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]
//! the password from stdin, `migrate status`, then `serve` answering over HTTP.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(config: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command.arg("--config").arg(config).env("RUST_LOG", "info");
    // Settings come from the file alone, whatever the developer's shell exports.
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command
}

/// A child process that is killed when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_documents_every_command() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for word in [
        "serve",
        "migrate",
        "user",
        "client",
        "keys",
        "calibrate",
        "--config",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let user_help = Command::new(BINARY)
        .args(["user", "create", "--help"])
        .output()
        .unwrap();
    let user_help = String::from_utf8(user_help.stdout).unwrap();
    for word in ["--email", "--role", "--verified", "standard input"] {
        assert!(
            user_help.contains(word),
            "{word} missing from:\n{user_help}"
        );
    }
}

#[test]
fn production_refuses_an_unsafe_configuration_naming_each_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        "mode = \"production\"\nissuer = \"http://auth.example.com\"\n",
    )
    .unwrap();
    let output = gatehouse(&config).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let problems: Vec<&str> = stderr.lines().skip(1).collect();
    assert_eq!(problems.len(), 3, "one line per problem:\n{stderr}");
    assert!(
        problems[0].starts_with("secrets.master_key: missing"),
        "{stderr}"
    );
    assert!(problems[1].starts_with("issuer: "), "{stderr}");
    assert!(problems[2].starts_with("mail.transport: "), "{stderr}");

    std::fs::write(
        &config,
        "mode = \"production\"\nissuer = \"https://auth.example.com\"\n[secrets]\nmaster_key = \"c2hvcnQ=\"\n[mail]\ntransport = \"smtp\"\n",
    )
    .unwrap();
    let output = gatehouse(&config).arg("serve").output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("secrets.master_key: unusable (it decodes to 5 bytes; 32 are needed)"),
        "{stderr}"
    );
}

#[test]
fn unknown_settings_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[server]\nbnid = \"127.0.0.1:1\"\n").unwrap();
    let output = gatehouse(&config).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bnid"), "{stderr}");
}

#[test]
fn page_branding_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        "[pages]\naccent_colour = \"red; background: url(x)\"\nlogo_url = \"http://cdn.example.com/logo.png\"\n\
         [backchannel_logout]\nmax_attempts = 0\n",
    )
    .unwrap();
    let output = gatehouse(&config).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    for setting in [
        "pages.accent_colour",
        "pages.logo_url",
        "backchannel_logout.max_attempts",
    ] {
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}

/// A production configuration that passes every other check, with this `issuer` and
/// the `tables` appended.
fn production_config(dir: &std::path::Path, issuer: &str, tables: &str) -> std::path::PathBuf {
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"production\"\nissuer = \"{issuer}\"\ndata_dir = \"{data}\"\n\
             [database]\nurl = \"sqlite://{data}/gatehouse.db?mode=rwc\"\n\
             [secrets]\nmaster_key = \"c2dd1zFOTR4Sxr6N1W1FkuSeVTTmUj4F5+TRfFtQAeE=\"\n\
             {tables}",
            data = dir.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn production_refuses_mail_to_files_and_an_issuer_without_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = production_config(dir.path(), "https://", "[mail]\ntransport = \"file\"\n");
    // A command that ends by itself even if the configuration were accepted.
    let output = gatehouse(&config)
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let problems: Vec<&str> = stderr.lines().skip(1).collect();
    assert_eq!(problems.len(), 2, "one line per problem:\n{stderr}");
    assert!(problems[0].starts_with("issuer: `https://`"), "{stderr}");
    assert!(
        problems[1].starts_with("mail.transport: `file`"),
        "{stderr}"
    );
}

#[test]
fn production_refuses_plaintext_smtp_across_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = "smtp://user:pass@mail.example.com:25";
    let refusal = |extra: &str| {
        let config = production_config(dir.path(), "https://auth.example.com", extra);
        let output = gatehouse(&config)
            .args(["migrate", "status"])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };

    let (code, stderr) = refusal(&format!(
        "[mail]\ntransport = \"smtp\"\nsmtp_url = \"{plaintext}\"\n"
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("mail.smtp_url: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pass"),
        "the URL's password leaked: {stderr}"
    );

    // The same from a secret file: the error names the setting, never the file's text.
    let secret = dir.path().join("smtp_url");
    std::fs::write(&secret, format!("{plaintext}\n")).unwrap();
    let (code, stderr) = refusal(&format!(
        "[mail]\ntransport = \"smtp\"\nsmtp_url_file = \"{}\"\n",
        secret.display()
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("mail.smtp_url"), "{stderr}");
    assert!(
        !stderr.contains("pass"),
        "the URL's password leaked: {stderr}"
    );

    // Accepted past the configuration check: the operator's say-so, TLS, or loopback.
    for mail in [
        format!(
            "[mail]\ntransport = \"smtp\"\nsmtp_url = \"{plaintext}\"\nallow_insecure_smtp = true\n"
        ),
        "[mail]\ntransport = \"smtp\"\nsmtp_url = \"smtp://user:pass@mail.example.com:587?tls=required\"\n"
            .to_owned(),
        "[mail]\ntransport = \"smtp\"\nsmtp_url = \"smtps://user:pass@mail.example.com\"\n"
            .to_owned(),
        "[mail]\ntransport = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\n".to_owned(),
    ] {
        let (_, stderr) = refusal(&mail);
        assert!(
            !stderr.contains("mail.smtp_url") && !stderr.contains("refusing to start"),
            "{mail}: {stderr}"
        );
    }
}

#[test]
fn create_an_admin_then_serve_and_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "issuer = \"http://127.0.0.1:{port}\"\ndata_dir = \"{data}\"\n[server]\nbind = \"127.0.0.1:{port}\"\nworkers = 1\n[database]\nurl = \"sqlite://{data}/db/gatehouse.db?mode=rwc\"\n",
            data = dir.path().display()
        ),
    )
    .unwrap();

    let mut create = gatehouse(&config)
        // Not asked for with RUST_LOG: the migrations it applies stay quiet.
        .env_remove("RUST_LOG")
        .args([
            "user",
            "create",
            "--email",
            "Root@Example.com",
            "--role",
            "admin",
            "--verified",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"root password 1\n")
        .unwrap();
    let created = create.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Applying migration"),
        "an administration command prints its answer, not the migrator's progress: {stderr}"
    );
    let user: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(user["email"], "root@example.com");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["email_verified"], true);
    assert!(
        dir.path().join("master.key").is_file(),
        "development master key generated"
    );

    let created = gatehouse(&config)
        .args([
            "client",
            "create",
            "--name",
            "Reports",
            "--type",
            "confidential",
        ])
        .args([
            "--grant",
            "client_credentials",
            "--scope",
            "reports:read",
            "--audience",
            "reports-api",
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let client: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let client_secret = client["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        client.as_object().unwrap().len(),
        2,
        "exactly client_id and client_secret: {client}"
    );
    let public = gatehouse(&config)
        .args([
            "client",
            "create",
            "--name",
            "SPA",
            "--type",
            "public",
            "--grant",
            "refresh_token",
        ])
        .output()
        .unwrap();
    let public: serde_json::Value = serde_json::from_slice(&public.stdout).unwrap();
    assert!(
        public["client_secret"].is_null(),
        "public clients have no secret"
    );
    let refused = gatehouse(&config)
        .args([
            "client",
            "create",
            "--name",
            "Bad",
            "--type",
            "public",
            "--grant",
            "client_credentials",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let listed = gatehouse(&config)
        .args(["client", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(
        listed.lines().count(),
        3,
        "the built-in API client and two more:\n{listed}"
    );
    assert!(!listed.contains(&client_secret));

    let keys = gatehouse(&config).args(["keys", "list"]).output().unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    assert_eq!(keys.lines().count(), 1);
    assert!(
        keys.contains("\"state\":\"active\"") && keys.contains("\"algorithm\":\"RS256\""),
        "{keys}"
    );
    let rotated = gatehouse(&config)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    let rotated: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["state"], "next");
    assert_eq!(rotated["generation"], 2);

    let status = gatehouse(&config)
        .args(["migrate", "status"])
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.starts_with("applied\tm20261123_000001_initial_schema"),
        "{status}"
    );

    let mut server = KillOnDrop(
        gatehouse(&config)
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = BufReader::new(server.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("gatehouse listening") {
        line.clear();
        assert!(
            log.read_line(&mut line).unwrap() > 0,
            "server exited before listening"
        );
    }
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let login: serde_json::Value = http
            .post(format!("{base}/api/v1/login"))
            .json(
                &serde_json::json!({ "email": "root@example.com", "password": "root password 1" }),
            )
            .send()
            .await?
            .json()
            .await?;
        let token = login["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let users = http
            .get(format!("{base}/api/v1/admin/users"))
            .bearer_auth(token)
            .send()
            .await?;
        let service = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(&client_id, Some(&client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        assert_eq!(
            service.status(),
            reqwest::StatusCode::OK,
            "the CLI-made client gets tokens"
        );
        let jwks: serde_json::Value = http
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(
            jwks["keys"].as_array().map(Vec::len),
            Some(2),
            "the rotated-in key is published ahead"
        );
        Ok::<_, reqwest::Error>((users.status(), users.json::<serde_json::Value>().await?))
    });
    drop(server);
    let (status, users) = outcome.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(users["users"][0]["email"], "root@example.com");
}

/// A `VmRSS:`-style line of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .map(|kib| kib.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}

/// Issue 8: a flood of logins must not grow memory past the hashing slots. Hashing runs
/// on a fixed pool of `max_concurrent_hashes` threads, each reusing one argon2 buffer of
/// `argon2_memory_kib`, so the peak stays within idle + slots x m_cost + a margin.
/// (Measured on 2 cores: with a fresh 19 MiB allocation per hash on the blocking thread
/// pool this flood peaked at 871 MiB; on the fixed pool but still allocating per hash,
/// glibc's arenas kept fragmented buffers and it peaked at 225 MiB; now about 73 MiB,
/// from about 29 MiB at start.)
#[test]
fn login_flood_memory_stays_within_the_hashing_slots() {
    const SLOTS: u64 = 2;
    const MEMORY_KIB: u64 = 19456;
    const LOGINS: usize = 400;
    const CONNECTIONS: usize = 64;
    // What is not argon2 memory: 64 connections' HTTP buffers (a few tens of KiB each,
    // 2-4 MiB in all), the SQLite page caches of the pooled connections (up to 2 MiB each,
    // 10 connections), and allocator slack. Measured: 5-6 MiB above start + 2 buffers;
    // 64 MiB leaves room for a slower or busier machine while staying far below the
    // failure it guards against (hundreds of MiB).
    const MARGIN_KIB: u64 = 64 * 1024;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "issuer = \"http://127.0.0.1:{port}\"\ndata_dir = \"{data}\"\n\
             [server]\nbind = \"127.0.0.1:{port}\"\nworkers = 2\n\
             [database]\nurl = \"sqlite://{data}/gatehouse.db?mode=rwc\"\n\
             [password]\nargon2_memory_kib = {MEMORY_KIB}\nargon2_iterations = 1\n\
             max_concurrent_hashes = {SLOTS}\nmax_queued_hashes = 1000\n\
             [lockout]\nmax_failures = 1000000\nslow_down_after = 1000000\n\
             [rate_limit]\nenabled = false\n",
            data = dir.path().display()
        ),
    )
    .unwrap();
    let mut server = KillOnDrop(
        gatehouse(&config)
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    let mut log = BufReader::new(server.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("gatehouse listening") {
        line.clear();
        assert!(
            log.read_line(&mut line).unwrap() > 0,
            "server exited before listening"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/login");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Unknown addresses: each login still costs one full hash, against the dummy hash.
    let login = |http: reqwest::Client, url: String, n: usize| async move {
        http.post(url)
            .json(&serde_json::json!({
                "email": format!("flood{n}@example.com"),
                "password": "not the password",
            }))
            .send()
            .await
            .map(|response| response.status())
    };

    // Before any hash but the start-up one (the dummy hash, in memory of its own).
    let started = proc_status_kib(pid, "VmRSS");
    // Warm-up: the database pool, the throttle rows' statements, the HTTP paths.
    for n in 0..3 {
        let status = runtime
            .block_on(login(http.clone(), url.clone(), n))
            .unwrap();
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    }
    let idle = proc_status_kib(pid, "VmRSS");

    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(LOGINS));
    let statuses = runtime.block_on(async {
        let mut connections = tokio::task::JoinSet::new();
        for _ in 0..CONNECTIONS {
            let (http, url, remaining) = (http.clone(), url.clone(), remaining.clone());
            connections.spawn(async move {
                let mut statuses = Vec::new();
                while let Ok(n) = remaining.fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |left| left.checked_sub(1),
                ) {
                    statuses.push(login(http.clone(), url.clone(), n).await);
                }
                statuses
            });
        }
        connections.join_all().await
    });
    let peak = proc_status_kib(pid, "VmHWM");
    let after = proc_status_kib(pid, "VmRSS");
    drop(server);

    let statuses: Vec<_> = statuses.into_iter().flatten().collect();
    assert_eq!(statuses.len(), LOGINS);
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Ok(reqwest::StatusCode::UNAUTHORIZED))),
        "every login hashed and failed: {:?}",
        statuses
            .iter()
            .find(|s| !matches!(s, Ok(reqwest::StatusCode::UNAUTHORIZED)))
    );
    let slots_kib = SLOTS * MEMORY_KIB;
    let report = format!(
        "RSS at start {started} KiB, idle after warm-up {idle} KiB, peak {peak} KiB, \
         after the flood {after} KiB; slots {SLOTS} x {MEMORY_KIB} KiB, margin {MARGIN_KIB} KiB"
    );
    eprintln!("{report}");
    assert!(
        peak <= idle + slots_kib + MARGIN_KIB,
        "peak over idle + slots + margin: {report}"
    );
    // Stricter: the warm-up may already have made some of the slots' buffers.
    assert!(
        peak <= started + slots_kib + MARGIN_KIB,
        "peak over start + slots + margin: {report}"
    );
}

fn mail_test_config(dir: &std::path::Path, smtp_port: u16) -> std::path::PathBuf {
    let path = dir.join("gatehouse.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[mail]\ntransport = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"Gatehouse <no-reply@cli.test>\"\ntimeout = \"5s\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn mail_test_sends_through_smtp_and_reports_the_servers_answer() {
    let dir = tempfile::tempdir().unwrap();
    // The journeys' SMTP catcher: a real listener on a port of its own.
    let catcher = gatehouse_tests::MailCatcher::start();
    let output = gatehouse(&mail_test_config(dir.path(), catcher.port()))
        .args(["mail", "test", "--to", "ops@example.com"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["sent"], true);
    assert_eq!(report["transport"], "smtp");
    assert_eq!(report["to"], "ops@example.com");
    assert!(
        report["response"].as_str().unwrap().starts_with("250"),
        "the server's answer: {report}"
    );
    // The listener had the whole message before it answered 250.
    let received = catcher.all();
    assert_eq!(received.len(), 1, "one message reached the listener");
    assert_eq!(received[0].to, ["ops@example.com"]);
    assert_eq!(received[0].subject, "Gatehouse test message");
}

#[test]
fn mail_test_fails_with_the_error_when_no_smtp_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(&mail_test_config(dir.path(), free_port()))
        .args(["mail", "test", "--to", "ops@example.com"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a failed send is a failed command"
    );
    assert!(output.stdout.is_empty(), "nothing claims success");
    assert!(
        stderr.contains("mail test: sending to ops@example.com through the smtp transport failed"),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("connect"),
        "the cause: {stderr}"
    );
}

fn calibrate_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, format!("data_dir = \"{}\"\n", dir.display())).unwrap();
    path
}

/// `calibrate --json` measures the configured parameters and proposes some, never below
/// OWASP's argon2id baseline (m = 19456 KiB with t = 2, p = 1) nor the configured ones,
/// without touching a database. No timing is asserted: only the shape and the floors.
#[test]
fn calibrate_prints_the_configured_and_proposed_parameters_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(&calibrate_config(dir.path()))
        .args(["calibrate", "--json", "--target", "5ms"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cores = report["cores"].as_u64().unwrap();
    assert!(cores >= 1, "{report}");
    assert_eq!(report["target_ms"].as_f64(), Some(5.0), "{report}");
    assert_eq!(report["max_memory_kib"].as_u64(), Some(65_536), "{report}");
    for side in ["configured", "proposed"] {
        let cost = &report[side];
        for field in [
            "hash_ms",
            "hashes_per_second_per_core",
            "hashes_per_second_all_cores",
        ] {
            assert!(
                cost[field].as_f64().unwrap() > 0.0,
                "{side}.{field}: {report}"
            );
        }
        assert!(cost["m_cost_kib"].as_u64().unwrap() >= 19_456, "{report}");
        assert!(cost["t_cost"].as_u64().unwrap() >= 2, "{report}");
        assert_eq!(cost["p_cost"].as_u64(), Some(1), "{report}");
    }
    // The defaults are the baseline: what is configured now.
    assert_eq!(report["configured"]["m_cost_kib"], 19_456);
    assert_eq!(report["configured"]["t_cost"], 2);
    assert!(report["proposed"]["m_cost_kib"].as_u64().unwrap() <= 65_536);
}

/// Without `--json`: TOML that `[password]` takes as it is, comments included.
#[test]
fn calibrate_prints_a_password_section() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(&calibrate_config(dir.path()))
        .args(["calibrate", "--target", "1ms", "--max-memory-kib", "20480"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("# configured: m = 19456 KiB, t = 2, p = 1"),
        "{text}"
    );
    let section: Vec<&str> = text.lines().skip_while(|l| *l != "[password]").collect();
    assert_eq!(section.len(), 4, "{text}");
    let value = |line: &str, key: &str| -> u64 {
        let (name, value) = line.split_once(" = ").unwrap();
        assert_eq!(name, key, "{text}");
        value.parse().unwrap()
    };
    let memory = value(section[1], "argon2_memory_kib");
    assert!((19_456..=20_480).contains(&memory), "{text}");
    assert!(value(section[2], "argon2_iterations") >= 2, "{text}");
    assert_eq!(value(section[3], "argon2_parallelism"), 1, "{text}");
    // Every line but the section is a comment: the output is TOML as it is.
    assert!(
        text.lines()
            .take_while(|l| *l != "[password]")
            .all(|l| l.starts_with('#')),
        "{text}"
    );
    let zero = gatehouse(&calibrate_config(dir.path()))
        .args(["calibrate", "--target", "0s"])
        .output()
        .unwrap();
    assert!(!zero.status.success());
}
