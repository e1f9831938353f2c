//! Session revocations: the in-memory list every verification consults, the entries of the
//! issuer's revocation feed, and the [`RevocationWatcher`] that follows the feed live.
//!
//! A revocation entry names a login session (`session_id`, the `sid` claim) and the moment all
//! its access tokens have expired anyway (`tokens_expire_at`). Until then (plus the verifier's
//! leeway, since expiry itself is only enforced with that leeway) every token carrying that
//! `sid` is refused with [`crate::VerifyError::Revoked`]; afterwards the entry is dropped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource as _};
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use reqwest::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Verifier;
use crate::credentials::Credentials;

/// First wait before reconnecting after a failure; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long to wait for the feed's response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A feed that sends nothing (not even a `:` keep-alive comment) for this long is presumed
/// dead and reopened: a half-open TCP connection would otherwise hide revocations forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One entry of the revocation feed, as `GET {issuer}/api/v1/revocations` lists it and as the
/// `data:` of each `revocation` event carries it.
///
/// ```
/// use gatehouse_verify::RevocationEntry;
///
/// let entry: RevocationEntry = serde_json::from_str(r#"{
///     "id": 17,
///     "session_id": "0190f1c2-7e4b-7c3a-9a51-3f0b7c1d2e3f",
///     "revoked_at": "2026-11-23T10:00:00Z",
///     "tokens_expire_at": 1795000000
/// }"#)?;
/// assert_eq!(entry.id, 17);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    /// Position in the feed; strictly increasing.
    pub id: u64,
    /// The revoked session: refuse tokens whose `sid` is this.
    pub session_id: String,
    /// When the session was revoked (RFC 3339), for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Unix seconds after which every token of the session has expired anyway.
    pub tokens_expire_at: i64,
}

/// One page of the JSON form of the feed.
#[derive(Debug, Deserialize)]
pub(crate) struct RevocationPage {
    pub(crate) revocations: Vec<RevocationEntry>,
    #[serde(default)]
    pub(crate) next_cursor: Option<u64>,
}

/// Revoked sessions: `sid` (lower-cased) to the unix second its tokens expire.
#[derive(Default)]
pub(crate) struct RevocationList {
    sessions: RwLock<HashMap<String, i64>>,
}

impl RevocationList {
    /// Records a revocation and drops the entries that can no longer matter.
    pub(crate) fn insert(&self, sid: &str, until: i64, now: i64, leeway: i64) {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, until| now < until.saturating_add(leeway));
        if now < until.saturating_add(leeway) {
            let entry = sessions.entry(sid.to_ascii_lowercase()).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    pub(crate) fn is_revoked(&self, sid: &str, now: i64, leeway: i64) -> bool {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        if sessions.is_empty() {
            return false;
        }
        // Session ids are UUIDs; compare them the way UUIDs compare, without allocating for
        // the usual lower-case form.
        let sid = if sid.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(sid.to_ascii_lowercase())
        } else {
            Cow::Borrowed(sid)
        };
        sessions
            .get(sid.as_ref())
            .is_some_and(|until| now < until.saturating_add(leeway))
    }

    pub(crate) fn len(&self, now: i64, leeway: i64) -> usize {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        sessions
            .values()
            .filter(|until| now < until.saturating_add(leeway))
            .count()
    }
}

/// Follows the issuer's revocation feed (Server-Sent Events) and records every revoked session
/// in its [`Verifier`]; made by [`Verifier::watch_revocations`].
///
/// The feed is read in a tokio task. When the stream ends or fails the task reconnects with
/// `Last-Event-ID` set to the last event it saw, waiting 250 ms after a connection that worked
/// and doubling the wait (up to 10 s) while attempts keep failing. Dropping the watcher, or
/// [`RevocationWatcher::stop`], ends the task.
///
/// ```no_run
/// # async fn run(verifier: gatehouse_verify::Verifier, sid: &str) {
/// let watcher = verifier.watch_revocations("notes-api", "client-secret");
/// watcher.wait_connected().await;
/// // ... the session is revoked at the issuer ...
/// while !verifier.is_session_revoked(sid) {
///     watcher.changed().await;
/// }
/// # }
/// ```
pub struct RevocationWatcher {
    task: JoinHandle<()>,
    state: Arc<WatchState>,
    batches_seen: tokio::sync::Mutex<watch::Receiver<u64>>,
}

struct WatchState {
    connected: watch::Sender<bool>,
    /// Counts the batches of revocations applied so far.
    batches: watch::Sender<u64>,
    last_event_id: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl WatchState {
    fn last_event_id(&self) -> Option<String> {
        self.last_event_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_last_event_id(&self, id: String) {
        *self
            .last_event_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(id);
    }

    fn set_last_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }
}

impl RevocationWatcher {
    /// Spawns the feed task on the current tokio runtime.
    pub(crate) fn spawn(verifier: Verifier, credentials: Credentials) -> Self {
        let (batches, batches_seen) = watch::channel(0);
        let state = Arc::new(WatchState {
            connected: watch::Sender::new(false),
            batches,
            last_event_id: Mutex::new(None),
            last_error: Mutex::new(None),
        });
        let task = tokio::spawn(run(verifier, credentials, Arc::clone(&state)));
        Self {
            task,
            state,
            batches_seen: tokio::sync::Mutex::new(batches_seen),
        }
    }

    /// Resolves once a batch of revocations (all events that arrived together) has been
    /// applied that an earlier call did not already report; batches applied before the first
    /// call count, so nothing is missed between starting an action and awaiting this.
    /// Entries whose tokens had already expired count as applied too.
    ///
    /// Never resolves after [`RevocationWatcher::stop`].
    ///
    /// ```no_run
    /// # async fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// watcher.changed().await;
    /// # }
    /// ```
    pub async fn changed(&self) {
        let mut seen = self.batches_seen.lock().await;
        // The sender lives in `self.state`, so this cannot fail while `self` exists.
        let _ = seen.changed().await;
    }

    /// `true` while the feed is open (the issuer answered `200` with an event stream).
    ///
    /// ```no_run
    /// # fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// if !watcher.connected() {
    ///     eprintln!("revocation feed down: {:?}", watcher.last_error());
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn connected(&self) -> bool {
        *self.state.connected.borrow()
    }

    /// Resolves as soon as the feed is open (at once if it already is). The backlog may still
    /// be arriving then; revocations made at the issuer from now on will reach this verifier.
    ///
    /// ```no_run
    /// # async fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// watcher.wait_connected().await;
    /// assert!(watcher.connected());
    /// # }
    /// ```
    pub async fn wait_connected(&self) {
        let mut connected = self.state.connected.subscribe();
        // The sender lives in `self.state`, so this cannot fail while `self` exists.
        let _ = connected.wait_for(|open| *open).await;
    }

    /// The id of the last event received, sent as `Last-Event-ID` when reconnecting.
    ///
    /// ```no_run
    /// # fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// println!("feed position: {:?}", watcher.last_event_id());
    /// # }
    /// ```
    #[must_use]
    pub fn last_event_id(&self) -> Option<String> {
        self.state.last_event_id()
    }

    /// Why the last connection attempt or stream failed; cleared on the next successful
    /// connection.
    ///
    /// ```no_run
    /// # fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// if let Some(error) = watcher.last_error() {
    ///     eprintln!("revocation feed: {error}");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.state
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ends the feed task (dropping the watcher does the same). Revocations already applied
    /// stay in the verifier until they expire.
    ///
    /// ```no_run
    /// # fn run(watcher: gatehouse_verify::RevocationWatcher) {
    /// watcher.stop();
    /// assert!(!watcher.connected());
    /// # }
    /// ```
    pub fn stop(&self) {
        self.task.abort();
        self.state.connected.send_replace(false);
    }
}

impl Drop for RevocationWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RevocationWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationWatcher")
            .field("connected", &self.connected())
            .field("last_event_id", &self.last_event_id())
            .finish_non_exhaustive()
    }
}

async fn run(verifier: Verifier, credentials: Credentials, state: Arc<WatchState>) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let result = follow_feed(&verifier, &credentials, &state).await;
        let was_connected = state.connected.send_replace(false);
        if was_connected {
            backoff = INITIAL_BACKOFF;
        }
        match result {
            Ok(()) => tracing::debug!(retry_in = ?backoff, "revocation feed ended"),
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "revocation feed failed");
                state.set_last_error(Some(error));
            }
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "the back-off between two reconnections of a long-lived watcher is a real wait"
        )]
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: open the stream, apply events until it ends (`Ok`) or fails (`Err`).
async fn follow_feed(
    verifier: &Verifier,
    credentials: &Credentials,
    state: &WatchState,
) -> Result<(), String> {
    let mut request = verifier
        .http()
        .get(verifier.revocations_url())
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .header(
            AUTHORIZATION,
            credentials.header().map_err(|e| e.to_string())?,
        );
    if let Some(id) = state.last_event_id() {
        request = request.header("Last-Event-ID", id);
    }
    let response = tokio::time::timeout(CONNECT_TIMEOUT, request.send())
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the issuer answered {status}"));
    }
    let is_event_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
    if !is_event_stream {
        return Err("the issuer did not answer with an event stream".into());
    }
    state.connected.send_replace(true);
    state.set_last_error(None);

    let mut events = Box::pin(idle_guard(response.bytes_stream()).eventsource());
    loop {
        let Some(first) = events.next().await else {
            return Ok(());
        };
        // Everything that already arrived is applied as one batch, then waiters are told once.
        let mut outcome = apply(verifier, state, first);
        let mut applied = false;
        let mut ended = false;
        loop {
            match outcome {
                Ok(did_apply) => applied |= did_apply,
                Err(error) => {
                    notify(state, applied);
                    return Err(error);
                }
            }
            match events.next().now_or_never() {
                Some(Some(item)) => outcome = apply(verifier, state, item),
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        notify(state, applied);
        if ended {
            return Ok(());
        }
    }
}

fn notify(state: &WatchState, applied: bool) {
    if applied {
        state.batches.send_modify(|batches| *batches += 1);
    }
}

/// Applies one event; `Ok(true)` when it was a revocation.
fn apply(
    verifier: &Verifier,
    state: &WatchState,
    item: Result<Event, EventStreamError<String>>,
) -> Result<bool, String> {
    let event = item.map_err(|e| format!("stream failed: {e}"))?;
    let mut applied = false;
    if event.event == "revocation" {
        match serde_json::from_str::<RevocationEntry>(&event.data) {
            Ok(entry) => {
                verifier.revoke_session_locally(&entry.session_id, entry.tokens_expire_at);
                applied = true;
            }
            Err(error) => {
                tracing::warn!(%error, id = %event.id, "skipping an unreadable revocation event");
            }
        }
    }
    if !event.id.is_empty() {
        state.set_last_event_id(event.id);
    }
    Ok(applied)
}

/// Ends the stream with an error when no bytes arrive for [`IDLE_TIMEOUT`].
fn idle_guard<B, E>(
    stream: impl Stream<Item = Result<B, E>> + Send + 'static,
) -> impl Stream<Item = Result<B, String>> + Send + 'static
where
    B: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    futures_util::stream::unfold(Box::pin(stream), |mut stream| async move {
        match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), stream)),
            Ok(Some(Err(error))) => Some((Err(error.to_string()), stream)),
            Ok(None) => None,
            Err(_) => Some((
                Err(format!("nothing received for {IDLE_TIMEOUT:?}")),
                stream,
            )),
        }
    })
}
