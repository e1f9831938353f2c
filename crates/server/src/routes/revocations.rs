//! `GET /api/v1/revocations`: the revocation feed for app backends, as JSON pages or as a
//! Server-Sent Events stream (`Accept: text/event-stream`). Confidential clients only.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_core::Gatehouse;
use gatehouse_core::sessions::revocations::{Revocation, RevocationFeed};
use serde::Deserialize;

use crate::error::OAuthError;
use crate::extract::client_credentials;

/// How often an idle stream sends a keep-alive comment.
#[derive(Debug, Clone, Copy)]
pub struct KeepaliveInterval(pub Duration);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(revocations);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FeedQuery {
    /// The `next_cursor` of the last page seen.
    after: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/revocations",
    tag = "oauth2",
    security(("client_basic" = [])),
    params(FeedQuery),
    responses((
        status = 200,
        description = "Sessions revoked after the cursor: a JSON page, or a stream of `revocation` events with `Accept: text/event-stream`",
        content(
            (gatehouse_core::sessions::revocations::RevocationPage = "application/json"),
            (String = "text/event-stream"),
        ),
    )),
)]
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
    if !wants_event_stream(&req) {
        return Ok(HttpResponse::Ok().json(gatehouse.revocations_after(query.after).await?));
    }
    let after = last_event_id(&req).or(query.after);
    let state = FeedStream {
        feed: gatehouse.follow_revocations(after).await?,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + keepalive.0, keepalive.0),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(state, FeedStream::next)))
}

/// Whether the client asked for the event stream (`Accept: text/event-stream`).
fn wants_event_stream(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The last event a reconnecting stream client saw (`Last-Event-ID`).
fn last_event_id(req: &HttpRequest) -> Option<i64> {
    req.headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
}

/// The feed as Server-Sent Events, with a keep-alive comment when idle.
struct FeedStream {
    feed: RevocationFeed,
    keepalive: tokio::time::Interval,
}

impl FeedStream {
    /// The next chunk of the stream; `None` ends it (the client reconnects with
    /// `Last-Event-ID` and gets what it missed from the database).
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        tokio::select! {
            revocation = self.feed.next() => {
                let revocation = revocation?;
                Some((Ok(event(&revocation)), self))
            }
            _ = self.keepalive.tick() => Some((Ok(Bytes::from_static(b": keepalive\n\n")), self)),
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
