//! A real SMTP listener (mailin-embedded) on an ephemeral port that keeps every message
//! it receives, for tests to read. Tests can stop it (the port refuses connections, open
//! ones are cut) and start it again on the same port: mailin-embedded serves forever, so
//! the port the server is configured with belongs to a small TCP relay in front of it.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MessageParser;
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};
use tokio::sync::{Notify, mpsc};

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
    relay: mpsc::UnboundedSender<RelayCommand>,
}

/// What the relay in front of the SMTP listener is told to do; it answers on the channel.
enum RelayCommand {
    Stop(std::sync::mpsc::Sender<()>),
    Start(std::sync::mpsc::Sender<std::io::Result<()>>),
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
        let smtp = listener.local_addr().expect("addr");
        let front = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP port");
        let port = front.local_addr().expect("addr").port();
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
        let (relay, commands) = mpsc::unbounded_channel();
        front.set_nonblocking(true).expect("non-blocking listener");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            runtime.block_on(relay_smtp(front, smtp, commands));
        });
        Self { port, inbox, relay }
    }

    /// Stops listening: from now on connections to the port are refused, and the open
    /// ones are cut. Returns once that is so.
    pub fn stop(&self) {
        let (done, stopped) = std::sync::mpsc::channel();
        self.relay
            .send(RelayCommand::Stop(done))
            .expect("the relay runs");
        stopped.recv().expect("the relay stopped");
    }

    /// Listens again on the same port after [`MailCatcher::stop`].
    pub fn restart(&self) {
        let (done, started) = std::sync::mpsc::channel();
        self.relay
            .send(RelayCommand::Start(done))
            .expect("the relay runs");
        started
            .recv()
            .expect("the relay answered")
            .expect("the SMTP port is free again");
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

/// Relays connections on `front` to the SMTP listener at `smtp`, until every
/// [`MailCatcher`] is dropped; stops and starts listening when told.
async fn relay_smtp(
    front: TcpListener,
    smtp: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<RelayCommand>,
) {
    let port = front.local_addr().expect("addr").port();
    let mut listener = Some(tokio::net::TcpListener::from_std(front).expect("relay listener"));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = accept(listener.as_ref()) => {
                if let Ok((mut client, _)) = accepted {
                    connections.spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(smtp).await {
                            // Ends when either side closes.
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
            command = commands.recv() => match command {
                None => return,
                Some(RelayCommand::Stop(done)) => {
                    listener = None;
                    connections.shutdown().await;
                    let _ = done.send(());
                }
                Some(RelayCommand::Start(done)) => {
                    let outcome = match listener {
                        Some(_) => Ok(()),
                        None => tokio::net::TcpListener::bind(("127.0.0.1", port))
                            .await
                            .map(|bound| listener = Some(bound)),
                    };
                    let _ = done.send(outcome);
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The next connection, or never while stopped.
async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
