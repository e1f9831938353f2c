//! `GET /api/v1/revocations`: the revocation feed for app backends, as JSON pages or as a
//! Server-Sent Events stream (`Accept: text/event-stream`). Confidential clients only.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::revocations::Revocation;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::OAuthError;
use crate::extract::client_credentials;

/// How often an idle stream sends a keep-alive comment.
#[derive(Debug, Clone, Copy)]
pub struct KeepaliveInterval(pub Duration);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(revocations);
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<i64>,
}

#[get("/revocations")]
async fn revocations(
    req: HttpRequest,
    gatehouse: web::Data<Gatehouse>,
    keepalive: web::Data<KeepaliveInterval>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, OAuthError> {
    gatehouse
        .authenticate_confidential_client(&client_credentials(&req, None)?)
        .await?;
    let wants_stream = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        return Ok(HttpResponse::Ok().json(gatehouse.revocations_after(query.after).await?));
    }
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Subscribe before reading the backlog, so nothing falls between the two.
    let live = gatehouse.revocation_hub().subscribe();
    let mut backlog = VecDeque::new();
    let mut after = last_event_id.or(query.after);
    loop {
        let page = gatehouse.revocations_after(after).await?;
        if page.revocations.is_empty() {
            break;
        }
        after = page.next_cursor;
        backlog.extend(page.revocations);
    }
    let state = FeedStream {
        backlog,
        live,
        last_id: after.unwrap_or(0),
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + keepalive.0, keepalive.0),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(state, FeedStream::next)))
}

struct FeedStream {
    backlog: VecDeque<Revocation>,
    live: broadcast::Receiver<Revocation>,
    last_id: i64,
    keepalive: tokio::time::Interval,
}

impl FeedStream {
    /// The next chunk of the stream; `None` ends it (the client reconnects with
    /// `Last-Event-ID` and gets what it missed from the database).
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        if let Some(revocation) = self.backlog.pop_front() {
            self.last_id = revocation.id;
            return Some((Ok(event(&revocation)), self));
        }
        loop {
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(revocation) if revocation.id > self.last_id => {
                        self.last_id = revocation.id;
                        return Some((Ok(event(&revocation)), self));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
                _ = self.keepalive.tick() => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), self));
                }
            }
        }
    }
}

fn event(revocation: &Revocation) -> Bytes {
    let data = serde_json::to_string(revocation).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: revocation\ndata: {data}\n\n",
        revocation.id
    ))
}
