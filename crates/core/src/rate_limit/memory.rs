//! The in-memory backend: `governor`'s keyed GCRA, one limiter per class and scope,
//! driven by the injected [`Clock`] (tests move a `ManualClock`). Counters of one
//! process only: with several instances, use the Redis backend.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Reference as _;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;

use super::{Outcome, Quota, RateClass, Scope};
use crate::platform::clock::Clock;

/// Checks between two sweeps of keys whose quota is whole again (bounds memory under a
/// flood of distinct keys).
const SWEEP_EVERY: u64 = 4096;

/// Our [`Clock`] as governor's clock: nanoseconds since the Unix epoch.
#[derive(Clone)]
struct InjectedClock(Arc<dyn Clock>);

impl governor::clock::Clock for InjectedClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let nanos = self.0.now().timestamp_nanos_opt().unwrap_or(0);
        Nanos::from(u64::try_from(nanos).unwrap_or(0))
    }
}

type KeyedLimiter = governor::RateLimiter<
    String,
    DashMapStateStore<String>,
    InjectedClock,
    StateInformationMiddleware,
>;

pub(crate) struct MemoryBackend {
    clock: InjectedClock,
    limiters: Mutex<HashMap<(RateClass, Scope, Quota), Arc<KeyedLimiter>>>,
    checks: AtomicU64,
}

impl MemoryBackend {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: InjectedClock(clock),
            limiters: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    fn limiter(&self, class: RateClass, scope: Scope, quota: Quota) -> Arc<KeyedLimiter> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        limiters
            .entry((class, scope, quota))
            .or_insert_with(|| {
                let burst = NonZeroU32::new(quota.limit).unwrap_or(NonZeroU32::MIN);
                let gcra = governor::Quota::with_period(quota.emission_interval())
                    .unwrap_or_else(|| governor::Quota::per_second(burst))
                    .allow_burst(burst);
                Arc::new(
                    governor::RateLimiter::dashmap_with_clock(gcra, self.clock.clone())
                        .with_middleware::<StateInformationMiddleware>(),
                )
            })
            .clone()
    }

    pub(crate) fn check(
        &self,
        class: RateClass,
        scope: Scope,
        key: String,
        quota: Quota,
    ) -> Outcome {
        let limiter = self.limiter(class, scope, quota);
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let emission = quota.emission_interval();
        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(quota.limit);
                Outcome {
                    allowed: true,
                    remaining,
                    reset: emission * (quota.limit - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let now = governor::clock::Clock::now(&self.clock);
                let wait: Duration = not_until.earliest_possible().duration_since(now).into();
                Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: wait + emission * (quota.limit - 1),
                    retry_after: Some(wait),
                }
            }
        }
    }

    /// Forgets keys whose quota is whole again: they behave exactly like new keys.
    fn sweep(&self) {
        let limiters: Vec<_> = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        for limiter in limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
