//! Request rate limits: one limiter for every class of request (`login`, `signup`,
//! `mail`, `password_reset`, `token`, `introspect`, `authorize`, the rest of the `api`),
//! each counted per client IP and, where the request names one, per account (a
//! normalised email address, a client id, a token's digest).
//!
//! The algorithm is GCRA (the generic cell rate algorithm): a limit of `n` per `period`
//! lets one request through every `period / n`, with bursts of up to `n` after a quiet
//! spell. Unlike a fixed window it has no boundary at which a second full burst opens
//! right after the first. The in-memory backend ([`memory`]) is `governor`'s keyed GCRA
//! driven by the injected [`Clock`]; the Redis backend ([`redis`]) runs the same
//! arithmetic in one Lua script per check, so several instances count together.
//!
//! When the backend cannot answer (Redis down), `on_backend_error` decides: `closed`
//! refuses with [`Error::Unavailable`] (`rate_limit_unavailable`), `open` lets the request
//! through. Either way the failure is counted ([`RateLimiter::backend_errors`]) and
//! logged once per outage, not once per request.

pub mod decision;
pub mod memory;
pub mod redis;

pub use decision::{Decision, RateClass, Scope};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::platform::clock::Clock;
use crate::platform::error::{Error, Result};
use crate::platform::secrets::KeyedHashes;
use crate::settings::{OnBackendError, RateClassSettings, RateLimitBackendKind, RateLimitSettings};

/// The reason code of the 503 answered when the backend is down and `on_backend_error`
/// is `closed`.
pub const BACKEND_UNAVAILABLE: &str = "rate_limit_unavailable";

/// Who a check counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// A client IP.
    Ip(IpAddr),
    /// An account, already normalised by the caller (a lower-cased email address, a
    /// client id, a token). Only its HMAC under a key derived from the master key is
    /// kept, never the value itself: a reader of Redis cannot test guessed addresses.
    Account(String),
}

impl RateKey {
    /// An account key.
    pub fn account(value: impl AsRef<str>) -> Self {
        RateKey::Account(value.as_ref().to_owned())
    }

    pub fn scope(&self) -> Scope {
        match self {
            RateKey::Ip(_) => Scope::Ip,
            RateKey::Account(_) => Scope::Account,
        }
    }

    /// The key as stored: the IP itself (IPv6 by its /64, one subscriber's share), an
    /// account by the keyed hash of its value.
    fn stored(&self, keyed: &KeyedHashes) -> String {
        match self {
            RateKey::Ip(IpAddr::V4(ip)) => ip.to_string(),
            RateKey::Ip(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = ip.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            RateKey::Account(value) => keyed.lookup_key("rate_limit_account", value),
        }
    }
}

/// A limit: `limit` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    /// The time one request "costs": `period / limit` (at least 1 ms).
    pub fn emission_interval(&self) -> Duration {
        (self.period / self.limit.max(1)).max(Duration::from_millis(1))
    }
}

/// What a backend answers for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub allowed: bool,
    pub remaining: u32,
    pub reset: Duration,
    pub retry_after: Option<Duration>,
}

impl RateClass {
    fn settings(self, all: &RateLimitSettings) -> &RateClassSettings {
        match self {
            RateClass::Login => &all.login,
            RateClass::Signup => &all.signup,
            RateClass::Mail => &all.mail,
            RateClass::PasswordReset => &all.password_reset,
            RateClass::Token => &all.token,
            RateClass::Introspect => &all.introspect,
            RateClass::Authorize => &all.authorize,
            RateClass::Api => &all.api,
        }
    }
}

enum Backend {
    Memory(memory::MemoryBackend),
    Redis(redis::RedisBackend),
}

/// The rate limiter of one instance. Cheap to share (`Arc`).
pub struct RateLimiter {
    settings: RateLimitSettings,
    backend: Backend,
    backend_errors: AtomicU64,
    in_outage: AtomicBool,
    keyed: KeyedHashes,
    rejections: prometheus::IntCounterVec,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.settings.enabled)
            .field("backend", &self.settings.backend)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// The limiter the settings describe. The Redis backend connects lazily (and
    /// reconnects by itself): a Redis that is down at start is an outage, not a failed
    /// start. Must be called inside a Tokio runtime.
    pub fn new(
        settings: &RateLimitSettings,
        clock: Arc<dyn Clock>,
        keyed: KeyedHashes,
    ) -> Result<Self> {
        let backend = match settings.backend {
            RateLimitBackendKind::Memory => Backend::Memory(memory::MemoryBackend::new(clock)),
            RateLimitBackendKind::Redis => {
                Backend::Redis(redis::RedisBackend::new(settings, clock)?)
            }
        };
        Ok(Self {
            settings: settings.clone(),
            backend,
            backend_errors: AtomicU64::new(0),
            in_outage: AtomicBool::new(false),
            keyed,
            rejections: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "gatehouse_rate_limit_rejections_total",
                    "Requests refused with 429 rate_limited, by class and by what the limit counts (ip or account).",
                ),
                &["class", "scope"],
            )
            .map_err(|e| Error::internal(e.to_string()))?,
        })
    }

    /// Whether limits apply at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The quota of a class for a scope; `None` when that class or scope is not limited.
    pub fn quota(&self, class: RateClass, scope: Scope) -> Option<Quota> {
        let class_settings = class.settings(&self.settings);
        if !self.settings.enabled || !class_settings.enabled {
            return None;
        }
        let limit = match scope {
            Scope::Ip => class_settings.per_ip,
            Scope::Account => class_settings.per_account,
        };
        (limit > 0 && !class_settings.period.is_zero()).then_some(Quota {
            limit,
            period: class_settings.period,
        })
    }

    /// Counts one request of `class` against `key`. `Ok(None)`: not limited (switched
    /// off, a limit of 0, or the backend failed and `on_backend_error = "open"`).
    /// `Ok(Some(decision))` may be a refusal: see [`RateLimiter::enforce`].
    pub async fn check(&self, class: RateClass, key: &RateKey) -> Result<Option<Decision>> {
        let scope = key.scope();
        let Some(quota) = self.quota(class, scope) else {
            return Ok(None);
        };
        let stored = format!(
            "{}:{}:{}",
            class.name(),
            scope.name(),
            key.stored(&self.keyed)
        );
        let outcome = match &self.backend {
            Backend::Memory(memory) => Ok(memory.check(class, scope, stored, quota)),
            Backend::Redis(redis) => redis.check(&stored, quota).await,
        };
        match outcome {
            Ok(outcome) => {
                if self.in_outage.swap(false, Ordering::Relaxed) {
                    tracing::info!("the rate limit backend answers again");
                }
                Ok(Some(Decision {
                    class,
                    scope,
                    allowed: outcome.allowed,
                    limit: quota.limit,
                    remaining: outcome.remaining,
                    window: quota.period,
                    reset: outcome.reset,
                    retry_after: outcome.retry_after,
                }))
            }
            Err(cause) => {
                self.backend_errors.fetch_add(1, Ordering::Relaxed);
                let closed = self.settings.on_backend_error == OnBackendError::Closed;
                if !self.in_outage.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %cause,
                        on_backend_error = if closed { "closed" } else { "open" },
                        "the rate limit backend does not answer; requests are {} until it does",
                        if closed { "refused (503)" } else { "let through unlimited" }
                    );
                }
                if closed {
                    Err(Error::Unavailable {
                        reason: BACKEND_UNAVAILABLE,
                        source: Some(cause),
                    })
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// As [`RateLimiter::check`], with a refusal as [`Error::RateLimited`].
    pub async fn enforce(&self, class: RateClass, key: &RateKey) -> Result<Option<Decision>> {
        match self.check(class, key).await? {
            Some(decision) if !decision.allowed => {
                self.rejections
                    .with_label_values(&[class.name(), key.scope().name()])
                    .inc();
                Err(Error::RateLimited(Box::new(decision)))
            }
            other => Ok(other),
        }
    }

    /// The refusals counted so far: `gatehouse_rate_limit_rejections_total`.
    pub fn rejections_metric(&self) -> &prometheus::IntCounterVec {
        &self.rejections
    }

    /// How many checks the backend failed to answer since start.
    pub fn backend_errors(&self) -> u64 {
        self.backend_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::secrets::MasterKey;

    fn keyed() -> KeyedHashes {
        let key = MasterKey::generate_base64().expect("random");
        MasterKey::from_base64(&key).expect("key").keyed_hashes()
    }

    /// An account key in Redis is a keyed hash: neither the address nor its plain
    /// SHA-256 (which anyone could compute for a guessed address), and it differs under
    /// another master key.
    #[test]
    fn account_keys_are_stored_as_keyed_hashes() {
        let key = RateKey::account("victim@example.com");
        let (one, other) = (keyed(), keyed());
        let stored = key.stored(&one);
        assert!(!stored.contains("victim"));
        assert_ne!(
            stored,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                b"victim@example.com"
            ))
        );
        assert_eq!(stored, key.stored(&one));
        assert_ne!(stored, key.stored(&other));
    }
}
