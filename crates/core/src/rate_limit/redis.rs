//! The Redis backend: the same GCRA as the in-memory one, as one atomic Lua script per
//! check, so every instance using the same Redis and key prefix counts together. "Now"
//! is our [`Clock`]'s, passed to the script, so instances agree as long as their clocks
//! do (and tests can move a `ManualClock`).
//!
//! The connection is made lazily and re-made by `redis`' `ConnectionManager`; each call
//! is bounded by `rate_limit.redis_timeout`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use super::{Outcome, Quota};
use crate::platform::clock::Clock;
use crate::platform::error::{Cause, Error, Result};
use crate::settings::RateLimitSettings;

/// GCRA over one key holding the "theoretical arrival time" (TAT) in milliseconds.
/// KEYS[1]: the key. ARGV: now (ms), emission interval (ms), period (ms).
/// Answers {allowed (0/1), remaining, retry_after (ms), reset (ms)}.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
";

pub(crate) struct RedisBackend {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl RedisBackend {
    pub(crate) fn new(settings: &RateLimitSettings, clock: Arc<dyn Clock>) -> Result<Self> {
        let unusable = |e: redis::RedisError| {
            Error::invalid(
                "invalid_setting",
                format!("rate_limit.redis_url: unusable ({:?})", e.kind()),
            )
        };
        let client = redis::Client::open(settings.redis_url.expose_secret()).map_err(unusable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.redis_timeout))
            .set_response_timeout(Some(settings.redis_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(unusable)?;
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA),
            prefix: settings.redis_key_prefix.clone(),
            timeout: settings.redis_timeout,
            clock,
        })
    }

    pub(crate) async fn check(
        &self,
        key: &str,
        quota: Quota,
    ) -> std::result::Result<Outcome, Cause> {
        let now = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0);
        let interval = millis(quota.emission_interval());
        let period = millis(quota.period).max(interval);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation.arg(now).arg(interval).arg(period);
        let answer: (u8, u64, u64, u64) =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| "the rate limit backend did not answer in time")??;
        let (allowed, remaining, retry_after, reset) = answer;
        Ok(Outcome {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .min(quota.limit),
            reset: Duration::from_millis(reset),
            retry_after: (allowed != 1).then(|| Duration::from_millis(retry_after)),
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
