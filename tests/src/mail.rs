//! A real SMTP listener (mailin-embedded) on an ephemeral port that keeps every message
//! it receives, for tests to read.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MessageParser;
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};
use tokio::sync::Notify;

/// How long a test waits for a mail before failing.
const MAIL_TIMEOUT: Duration = Duration::from_secs(15);

/// One received message.
#[derive(Debug, Clone)]
pub struct CapturedMail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

impl CapturedMail {
    /// The first link in the text part that carries a token.
    pub fn link(&self) -> String {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with("http") && word.contains("token="))
            .unwrap_or_else(|| panic!("no link with a token in {:?}", self.text))
            .to_owned()
    }
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<CapturedMail>>,
    arrived: Notify,
}

/// The listener and what it received.
#[derive(Clone)]
pub struct MailCatcher {
    port: u16,
    inbox: Arc<Inbox>,
}

#[derive(Clone)]
struct Receiver {
    inbox: Arc<Inbox>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Receiver {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let raw = String::from_utf8_lossy(&self.data).into_owned();
        let parsed = MessageParser::default().parse(&self.data);
        let mail = CapturedMail {
            to: self.to.clone(),
            subject: parsed
                .as_ref()
                .and_then(|m| m.subject())
                .unwrap_or_default()
                .to_owned(),
            text: parsed
                .as_ref()
                .and_then(|m| m.body_text(0))
                .unwrap_or_default()
                .into_owned(),
            html: parsed
                .as_ref()
                .and_then(|m| m.body_html(0))
                .unwrap_or_default()
                .into_owned(),
            raw,
        };
        self.inbox
            .mails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(mail);
        self.inbox.arrived.notify_waiters();
        OK
    }
}

impl MailCatcher {
    /// Starts a listener on 127.0.0.1 and an ephemeral port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP listener");
        let port = listener.local_addr().expect("addr").port();
        let inbox = Arc::new(Inbox::default());
        let receiver = Receiver {
            inbox: inbox.clone(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(receiver);
        server
            .with_name("mail.gatehouse.test")
            .with_num_threads(4)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("SMTP listener stopped: {e}");
            }
        });
        Self { port, inbox }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every mail received so far.
    pub fn all(&self) -> Vec<CapturedMail> {
        self.inbox
            .mails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Mails received so far for `address`.
    pub fn to(&self, address: &str) -> Vec<CapturedMail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }

    /// Waits for the newest-unseen mail to `address` whose subject contains `subject`;
    /// returns the latest such mail once there is one.
    pub async fn wait_for(&self, address: &str, subject: &str) -> CapturedMail {
        self.wait_for_nth(address, subject, 1).await
    }

    /// Waits until at least `n` mails to `address` with `subject` arrived; returns the n-th.
    pub async fn wait_for_nth(&self, address: &str, subject: &str, n: usize) -> CapturedMail {
        let deadline = tokio::time::Instant::now() + MAIL_TIMEOUT;
        loop {
            let arrived = self.inbox.arrived.notified();
            let matching: Vec<_> = self
                .to(address)
                .into_iter()
                .filter(|m| m.subject.contains(subject))
                .collect();
            if matching.len() >= n {
                return matching[n - 1].clone();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "no mail #{n} to {address} with subject {subject:?}; received: {:#?}",
                    self.all()
                );
            }
        }
    }
}
