//! Graceful shutdown of the real process on SIGTERM: a request in flight finishes with
//! its normal answer, new connections are refused meanwhile, and the process exits
//! within `server.shutdown_timeout`, even when a request (an event stream) never ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails must fail the test loudly"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the tests wait for a real process, polling with a deadline"
)]

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Db, Deployment, eventually};

const PASSWORD: &str = "correct horse battery";

/// CPU time the process used so far (user + system), in clock ticks (Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_connections_and_exits() {
    // A login that takes seconds: 64 MiB and many passes of argon2.
    let heavy = "[password]\nargon2_memory_kib = 65536\nargon2_iterations = 24\n";
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
    let deployment = Deployment::new(Db::Sqlite).await.unwrap();
    deployment
        .run_with(
            heavy,
            &["user", "create", "--email", "ada@example.com", "--verified"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let mut server = deployment
        .serve_with("shutdown_timeout = \"60s\"", heavy)
        .await;
    let pid = server.pid();

    let before = cpu_ticks(pid);
    let login = {
        let (http, url) = (server.http.clone(), server.url("/api/v1/login"));
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
                .send()
                .await
        })
    };
    // The hash is being computed: the request is in the server's hands.
    eventually(
        Duration::from_secs(30),
        "the login starts hashing",
        || async { (cpu_ticks(pid) >= before + 20).then_some(()) },
    )
    .await;
    assert!(!login.is_finished(), "the login must still be in flight");

    server.signal("TERM");
    let terminated = Instant::now();
    // New connections are refused while the login drains.
    eventually(
        Duration::from_secs(5),
        "new connections refused",
        || async {
            match tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
                Err(e) => panic!("unexpected connect error: {e}"),
                Ok(_) => None,
            }
        },
    )
    .await;
    assert!(
        !login.is_finished(),
        "the listener closed while the login was still in flight"
    );

    let answer = login
        .await
        .unwrap()
        .expect("the in-flight login is answered");
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());

    let status = server
        .exit_within(SHUTDOWN_TIMEOUT.saturating_sub(terminated.elapsed()))
        .await
        .expect("the process exits within server.shutdown_timeout");
    assert!(status.success(), "exit status {status}:\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_shutdown_timeout_even_with_an_endless_stream() {
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
    let deployment = Deployment::new(Db::Sqlite).await.unwrap();
    let (client_id, secret) = deployment
        .create_client(&["--name", "feed", "--grant", "client_credentials"])
        .await;
    let mut server = deployment
        .serve_with("shutdown_timeout = \"2s\"", support::FAST)
        .await;
    // An event stream never ends by itself.
    let stream = server
        .http
        .get(server.url("/api/v1/revocations"))
        .basic_auth(&client_id, Some(&secret))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    server.signal("TERM");
    let terminated = Instant::now();
    let status = server
        .exit_within(SHUTDOWN_TIMEOUT + Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", server.log()));
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    eprintln!("exited {:?} after SIGTERM", terminated.elapsed());
    drop(stream);
}
