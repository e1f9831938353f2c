//! `server.max_connections`: beyond it the listener stops accepting, so a flood of
//! connections waits in the kernel's queue instead of in the process's memory, and each
//! is served once an open one closes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails must fail the test loudly"
)]

mod support;

use std::time::Duration;

use support::{Db, Deployment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a keep-alive `GET /healthz` on `stream`.
async fn ask(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
}

/// Reads until the head of an answer has arrived; its status line.
async fn answer(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the connection closed without an answer");
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&received);
    text.lines().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let deployment = Deployment::new(Db::Sqlite).await.unwrap();
    // Two workers (the test configuration) with one connection each.
    let server = deployment.serve_with("max_connections = 2", "").await;
    let address = format!("127.0.0.1:{}", server.port);

    // Four connections, each asking at once. The kernel completes every handshake, but
    // the server takes at most two (one may already be the readiness check's pooled one),
    // so at least two wait.
    let mut connections = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        ask(&mut stream).await;
        connections.push(stream);
    }
    let mut answered = Vec::new();
    let mut waiting = Vec::new();
    for mut stream in connections {
        // A bounded wait for what must not happen: an answer beyond the limit.
        match tokio::time::timeout(Duration::from_millis(500), answer(&mut stream)).await {
            Ok(status) => {
                assert_eq!(status, "HTTP/1.1 200 OK");
                answered.push(stream);
            }
            Err(_) => waiting.push(stream),
        }
    }
    assert!(
        waiting.len() >= 2,
        "{} of 4 connections were served at once with server.max_connections = 2",
        answered.len()
    );

    // Once the answered connections close, the waiting ones are taken and answered.
    drop(answered);
    for mut stream in waiting {
        let status = tokio::time::timeout(Duration::from_secs(30), answer(&mut stream))
            .await
            .expect("a waiting connection is served once another closes");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
}
