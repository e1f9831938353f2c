//! The other mail transports: `.eml` files, the development log, and an SMTP server that
//! does not answer, which must not change the HTTP answer.

use gatehouse_tests::{Backend, FAST_HASHING, TestServer, logs, token_of};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_transport_writes_one_eml_per_mail() {
    let dir = tempfile::tempdir().unwrap();
    let transport = format!(
        "[mail]\ntransport = \"file\"\nfile_dir = \"{}\"\n",
        dir.path().display()
    );
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &transport]).await;
    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": "file@example.com", "password": "file password" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let eml = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let found = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .find(|e| e.path().extension().is_some_and(|x| x == "eml"));
            if let Some(content) = found.map(|e| std::fs::read_to_string(e.path()).unwrap())
                && content.contains("</html>")
            {
                break content;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("an .eml file appears");
    assert!(eml.contains("To: file@example.com"), "{eml}");
    assert!(eml.contains("multipart/alternative"));
    let parsed = mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .unwrap();
    let text = parsed.body_text(0).unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("verify-email?token="))
        .expect("link");
    let verified = server
        .post("/api/v1/email/verify", json!({ "token": token_of(link) }))
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_transport_writes_the_mail_to_the_log() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[FAST_HASHING, "[mail]\ntransport = \"log\"\n"],
    )
    .await;
    server
        .post(
            "/api/v1/signup",
            json!({ "email": "logged@example.com", "password": "log password" }),
        )
        .await;
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !logs::captured().contains("to=logged@example.com") {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the mail is in the log");
    assert!(server.mail.all().is_empty(), "nothing went out by SMTP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_logged_and_the_answer_is_unchanged() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = format!("[mail]\nsmtp_url = \"smtp://127.0.0.1:{closed_port}\"\ntimeout = \"2s\"\n");
    let server = TestServer::start_with(Backend::Sqlite, &[FAST_HASHING, &smtp]).await;
    let response = server
        .post(
            "/api/v1/signup",
            json!({ "email": "lost@example.com", "password": "lost password" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !logs::captured().contains("mail delivery failed") {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the failure is logged");
}
