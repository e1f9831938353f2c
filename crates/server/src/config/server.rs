//! `[server]`: the listener and the limits of one request. Apart from the rest of the
//! configuration so that the modules enforcing these settings (`crate::client_ip`,
//! `crate::request_limits`) read them without depending on the whole of it.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub workers: usize,
    /// Open connections at most, over all workers; beyond it the listener stops
    /// accepting and new connections wait in the kernel's queue.
    pub max_connections: usize,
    pub max_body_bytes: usize,
    /// The boolean `server.trusted_proxies` replaced; refused with a message naming it.
    #[serde(default)]
    pub trust_forwarded_headers: Option<serde::de::IgnoredAny>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` is believed: addresses or CIDR ranges
    /// (see `crate::client_ip`).
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write the client's address into.
    pub forwarded_header: ForwardedHeader,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    // Request limits (see `crate::request_limits`).
    pub max_header_bytes: usize,
    pub max_header_count: usize,
    pub max_path_bytes: usize,
    pub max_query_bytes: usize,
    pub max_json_depth: usize,
}

/// Which header the trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}
