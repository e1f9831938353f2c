//! A tiny stand-in for the Gatehouse server on 127.0.0.1, speaking just enough HTTP/1.1 for
//! the verifier's network paths: discovery, JWKS, introspection and the revocation feed (JSON
//! pages and Server-Sent Events). One request per connection, `Connection: close`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Entries per page of the JSON revocation list.
const PAGE_SIZE: usize = 2;

pub struct MockIssuer {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    new_revocation: broadcast::Sender<()>,
    kick: watch::Sender<u64>,
    task: JoinHandle<()>,
}

struct State {
    base_url: String,
    discovery_issuer: Option<String>,
    jwks: Value,
    jwks_status: u16,
    jwks_fetches: usize,
    /// The exact `Authorization` value introspection and the feed accept.
    authorization: String,
    introspection: Value,
    introspection_bodies: Vec<String>,
    revocations: Vec<Value>,
    /// The `Last-Event-ID` of each event-stream connection, in order.
    stream_connections: Vec<Option<String>>,
}

pub struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: String,
}

impl MockIssuer {
    pub async fn start(jwks: Value, authorization: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            base_url: base_url.clone(),
            discovery_issuer: None,
            jwks,
            jwks_status: 200,
            jwks_fetches: 0,
            authorization,
            introspection: json!({"active": false}),
            introspection_bodies: Vec::new(),
            revocations: Vec::new(),
            stream_connections: Vec::new(),
        }));
        let (new_revocation, _) = broadcast::channel(64);
        let (kick, _) = watch::channel(0);
        let task = tokio::spawn({
            let state = Arc::clone(&state);
            let new_revocation = new_revocation.clone();
            let kick = kick.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(serve(
                        stream,
                        Arc::clone(&state),
                        new_revocation.subscribe(),
                        kick.subscribe(),
                    ));
                }
            }
        });
        Self {
            base_url,
            state,
            new_revocation,
            kick,
            task,
        }
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.state.lock().unwrap().jwks = jwks;
    }

    pub fn set_jwks_status(&self, status: u16) {
        self.state.lock().unwrap().jwks_status = status;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().discovery_issuer = Some(issuer.to_owned());
    }

    pub fn set_introspection(&self, answer: Value) {
        self.state.lock().unwrap().introspection = answer;
    }

    pub fn introspection_bodies(&self) -> Vec<String> {
        self.state.lock().unwrap().introspection_bodies.clone()
    }

    pub fn stream_connections(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().stream_connections.clone()
    }

    /// Adds a revocation to the feed (ids count from 1) and tells open streams.
    pub fn revoke(&self, session_id: &str, tokens_expire_at: i64) -> u64 {
        let id = {
            let mut state = self.state.lock().unwrap();
            let id = state.revocations.len() as u64 + 1;
            state.revocations.push(json!({
                "id": id,
                "session_id": session_id,
                "revoked_at": "2026-11-23T10:00:00Z",
                "tokens_expire_at": tokens_expire_at,
            }));
            id
        };
        let _ = self.new_revocation.send(());
        id
    }

    /// Closes every open event stream (the server restarting, a proxy timing out).
    pub fn drop_streams(&self) {
        self.kick.send_modify(|generation| *generation += 1);
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_streams();
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    new_revocation: broadcast::Receiver<()>,
    kick: watch::Receiver<u64>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let wants_stream = request
        .headers
        .get("accept")
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if request.path == "/api/v1/revocations" && wants_stream {
        if request.headers.get("authorization") != Some(&state.lock().unwrap().authorization) {
            respond(&mut stream, 401, &json!({"error": "invalid_client"})).await;
            return;
        }
        event_stream(stream, request, state, new_revocation, kick).await;
        return;
    }
    let (status, body) = route(&request, &state);
    respond(&mut stream, status, &body).await;
}

fn route(request: &Request, state: &Mutex<State>) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    let authorized = request.headers.get("authorization") == Some(&state.authorization);
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => {
            let base = state.base_url.clone();
            let issuer = state
                .discovery_issuer
                .clone()
                .unwrap_or_else(|| base.clone());
            (
                200,
                json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{base}/jwks"),
                    "introspection_endpoint": format!("{base}/introspect"),
                }),
            )
        }
        ("GET", "/jwks") => {
            state.jwks_fetches += 1;
            (state.jwks_status, state.jwks.clone())
        }
        ("POST", "/introspect") if authorized => {
            state.introspection_bodies.push(request.body.clone());
            (200, state.introspection.clone())
        }
        ("GET", "/api/v1/revocations") if authorized => {
            let after: u64 = request.query.get("after").map_or(0, |a| a.parse().unwrap());
            let rest: Vec<Value> = state
                .revocations
                .iter()
                .filter(|entry| entry["id"].as_u64().unwrap() > after)
                .cloned()
                .collect();
            let page: Vec<Value> = rest.iter().take(PAGE_SIZE).cloned().collect();
            let next_cursor = (rest.len() > PAGE_SIZE).then(|| page.last().unwrap()["id"].clone());
            (
                200,
                json!({"revocations": page, "next_cursor": next_cursor}),
            )
        }
        (_, "/introspect" | "/api/v1/revocations") => (401, json!({"error": "invalid_client"})),
        _ => (404, json!({"error": "not_found"})),
    }
}

async fn event_stream(
    mut stream: TcpStream,
    request: Request,
    state: Arc<Mutex<State>>,
    mut new_revocation: broadcast::Receiver<()>,
    mut kick: watch::Receiver<u64>,
) {
    let last_event_id = request.headers.get("last-event-id").cloned();
    state
        .lock()
        .unwrap()
        .stream_connections
        .push(last_event_id.clone());
    let mut cursor: u64 = last_event_id
        .or_else(|| request.query.get("after").cloned())
        .map_or(0, |id| id.parse().unwrap());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n: welcome\n\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let pending: Vec<Value> = state
            .lock()
            .unwrap()
            .revocations
            .iter()
            .filter(|entry| entry["id"].as_u64().unwrap() > cursor)
            .cloned()
            .collect();
        for entry in pending {
            let id = entry["id"].as_u64().unwrap();
            let event = format!("id: {id}\nevent: revocation\ndata: {entry}\n\n: keep-alive\n\n");
            if stream.write_all(event.as_bytes()).await.is_err() {
                return;
            }
            cursor = id;
        }
        tokio::select! {
            biased;
            _ = kick.changed() => return,
            received = new_revocation.recv() => {
                if matches!(received, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Request {
        method,
        path: path.to_owned(),
        query,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}
