//! The explicit limits on a request's shape, checked before routing and before any
//! handler or extractor runs: total header size and count (`431 headers_too_large`),
//! path and query-string length (`414 uri_too_long`), and the nesting depth of a JSON
//! body (`400 invalid_request`, checked on the raw bytes before anything deserialises
//! them). The body size limit (`413 payload_too_large`) is enforced here for JSON bodies
//! too, as the body must be read to check its depth; the extractors enforce it for the
//! other bodies.
//!
//! The HTTP/1 layer (actix-http) has its own fixed caps that no setting changes: 96
//! headers and a 128 KiB request head, answered with a bare `431`. The configured
//! limits must stay below those (checked at start) so that every refusal carries a JSON
//! error code.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, mime};
use futures_util::StreamExt as _;

use crate::config::server::ServerSettings;
use crate::error::ApiError;

/// The HTTP/1 layer's own cap on the number of request headers (actix-http's
/// `MAX_HEADERS`); above it, it answers a bare 431 itself.
pub const HTTP_LAYER_MAX_HEADERS: usize = 96;
/// The HTTP/1 layer's own cap on the request head, in bytes (actix-http's
/// `MAX_BUFFER_SIZE`).
pub const HTTP_LAYER_MAX_HEAD_BYTES: usize = 131_072;
/// serde_json's own recursion limit; a configured depth above it could never be reached.
pub const SERDE_JSON_MAX_DEPTH: usize = 128;

/// The limits of `[server]`, as the middleware reads them from the app data.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_header_bytes: usize,
    pub max_header_count: usize,
    pub max_path_bytes: usize,
    pub max_query_bytes: usize,
    pub max_json_depth: usize,
    pub max_body_bytes: usize,
}

impl RequestLimits {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            max_header_bytes: server.max_header_bytes,
            max_header_count: server.max_header_count,
            max_path_bytes: server.max_path_bytes,
            max_query_bytes: server.max_query_bytes,
            max_json_depth: server.max_json_depth,
            max_body_bytes: server.max_body_bytes,
        }
    }
}

/// The configuration mistakes of these settings, each naming its setting.
pub fn problems(server: &ServerSettings) -> Vec<String> {
    let mut problems = Vec::new();
    if !(1..=HTTP_LAYER_MAX_HEAD_BYTES).contains(&server.max_header_bytes) {
        problems.push(format!(
            "server.max_header_bytes: must be 1 to {HTTP_LAYER_MAX_HEAD_BYTES} (the HTTP layer's own buffer)"
        ));
    }
    if !(1..=HTTP_LAYER_MAX_HEADERS).contains(&server.max_header_count) {
        problems.push(format!(
            "server.max_header_count: must be 1 to {HTTP_LAYER_MAX_HEADERS} (the HTTP layer's own cap)"
        ));
    }
    if server.max_path_bytes < 1 {
        problems.push("server.max_path_bytes: must be at least 1".to_owned());
    }
    if !(1..=SERDE_JSON_MAX_DEPTH).contains(&server.max_json_depth) {
        problems.push(format!(
            "server.max_json_depth: must be 1 to {SERDE_JSON_MAX_DEPTH} (the JSON parser's own limit)"
        ));
    }
    problems
}

/// The middleware (`actix_web::middleware::from_fn(request_limits::enforce)`); reads the
/// limits from the app data, registered by `app::http_server`.
pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(limits) = req
        .app_data::<web::Data<RequestLimits>>()
        .map(|l| *l.get_ref())
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if let Err(error) = check_head(&req, &limits) {
        return Ok(req.error_response(error).map_into_right_body());
    }
    if is_json(&req) {
        match read_body(&mut req, limits.max_body_bytes).await {
            Ok(body) => {
                if json_depth_exceeds(&body, limits.max_json_depth) {
                    let error = ApiError::InvalidRequest(format!(
                        "invalid JSON body: arrays and objects nest deeper than {} levels",
                        limits.max_json_depth
                    ));
                    return Ok(req.error_response(error).map_into_right_body());
                }
                req.set_payload(body.into());
            }
            Err(error) => return Ok(req.error_response(error).map_into_right_body()),
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Headers, path and query against their limits.
fn check_head(req: &ServiceRequest, limits: &RequestLimits) -> Result<(), ApiError> {
    let count = req.headers().iter().count();
    if count > limits.max_header_count {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request has {count} headers; at most {} are accepted",
            limits.max_header_count
        )));
    }
    let bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > limits.max_header_bytes {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request headers are larger than {} bytes",
            limits.max_header_bytes
        )));
    }
    if req.uri().path().len() > limits.max_path_bytes {
        return Err(ApiError::UriTooLong(format!(
            "the request path is longer than {} bytes",
            limits.max_path_bytes
        )));
    }
    if req.uri().query().map_or(0, str::len) > limits.max_query_bytes {
        return Err(ApiError::UriTooLong(format!(
            "the query string is longer than {} bytes",
            limits.max_query_bytes
        )));
    }
    Ok(())
}

/// A JSON body, as the JSON extractor recognises one (`application/json` or `+json`).
fn is_json(req: &ServiceRequest) -> bool {
    if !req.headers().contains_key(header::CONTENT_TYPE) {
        return false;
    }
    match req.mime_type() {
        Ok(Some(mime)) => mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON),
        _ => false,
    }
}

/// The whole body, refused as soon as it passes `limit` bytes.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Whether arrays and objects nest deeper than `max` anywhere in `json`. A scan of the
/// bytes that skips strings (with their escapes): no recursion, no allocation, so a
/// hostile body costs one pass. Malformed JSON is left to the parser to refuse.
pub fn json_depth_exceeds(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::json_depth_exceeds;

    #[test]
    fn depth_counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[{{{{\"[[["}"#, 1));
        assert!(!json_depth_exceeds(br#"[[]][[]][[]]"#, 2));
        assert!(json_depth_exceeds(&[b'['; 10_000], 128));
        assert!(!json_depth_exceeds(b"42", 1));
    }
}
