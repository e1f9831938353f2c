//! What argon2id costs on this machine, and the parameters that make one hash take a
//! target time within a memory budget (`gatehouse calibrate`). The choice follows what
//! Kanidm does at start-up: one lane (`p = 1`: a login is one request on one core, and
//! more lanes would only let one login take several cores), start from the configured
//! memory and passes, raise the memory first (memory is what makes guessing expensive on
//! GPUs and ASICs) up to the budget, then the passes, until a measured hash takes the
//! target. Never below OWASP's argon2id baseline (`m = 19456 KiB, t = 2, p = 1`, the
//! defaults), however fast the machine or small the target.
//!
//! The choice ([`choose`]) takes the measurement as a function, so it is tested without
//! timing anything; [`time_hash`] and [`rate_on_threads`] are the real measurements.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Serialize;

use crate::settings::PasswordSettings;
use crate::{Error, Result};

/// OWASP's argon2id baseline memory (Password Storage Cheat Sheet: 19 MiB with `t = 2`).
pub const MIN_MEMORY_KIB: u32 = 19_456;
/// OWASP's argon2id baseline passes at [`MIN_MEMORY_KIB`].
pub const MIN_ITERATIONS: u32 = 2;
/// The memory budget when none is given: 64 MiB, the memory of RFC 9106's second
/// recommended option (or the configured memory when that is more: a proposal never
/// lowers it).
pub const DEFAULT_MAX_MEMORY_KIB: u32 = 65_536;
/// Memory is raised by whole MiB at least.
const MEMORY_STEP_KIB: u32 = 1024;
/// One step raises memory or passes at most this many times over.
const MAX_FACTOR: f64 = 8.0;
/// Most measurements one choice makes.
const MAX_MEASUREMENTS: usize = 24;

/// The three argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Argon2Cost {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Argon2Cost {
    /// The parameters `[password]` configures.
    pub fn configured(settings: &PasswordSettings) -> Self {
        Self {
            m_cost_kib: settings.argon2_memory_kib,
            t_cost: settings.argon2_iterations,
            p_cost: settings.argon2_parallelism,
        }
    }

    fn params(self) -> Result<Params> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None).map_err(|e| {
            Error::invalid(
                "invalid_config",
                format!(
                    "argon2id m={} KiB, t={}, p={}: {e}",
                    self.m_cost_kib, self.t_cost, self.p_cost
                ),
            )
        })
    }
}

/// The parameters [`choose`] settled on, and the time their hash took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub cost: Argon2Cost,
    pub time: Duration,
    /// How many times `measure` was called.
    pub measurements: usize,
}

/// Chooses argon2id parameters whose hash takes at least `target`, with `measure` giving
/// the time of one hash. Starts from `start` (raised to the OWASP baseline, its memory
/// capped at the budget, `p = 1`); while the hash is faster than the target, raises the
/// memory in proportion to the time missing (whole MiB, at least one, at most
/// `max_memory_kib`), then the passes likewise (at least one more). Stops when a
/// measurement reaches the target, or after a bounded number of them (then the last,
/// strongest parameters stand).
pub fn choose(
    start: Argon2Cost,
    target: Duration,
    max_memory_kib: u32,
    mut measure: impl FnMut(Argon2Cost) -> Duration,
) -> Choice {
    let budget = max_memory_kib.max(MIN_MEMORY_KIB);
    let mut cost = Argon2Cost {
        m_cost_kib: start.m_cost_kib.clamp(MIN_MEMORY_KIB, budget),
        t_cost: start.t_cost.max(MIN_ITERATIONS),
        p_cost: 1,
    };
    let mut time = measure(cost);
    let mut measurements = 1;
    while time < target && cost.m_cost_kib < budget && measurements < MAX_MEASUREMENTS {
        let wanted = scaled(cost.m_cost_kib, target, time);
        let wanted = wanted
            .div_ceil(MEMORY_STEP_KIB)
            .saturating_mul(MEMORY_STEP_KIB);
        cost.m_cost_kib = wanted
            .max(cost.m_cost_kib.saturating_add(MEMORY_STEP_KIB))
            .min(budget);
        time = measure(cost);
        measurements += 1;
    }
    while time < target && measurements < MAX_MEASUREMENTS {
        cost.t_cost = scaled(cost.t_cost, target, time).max(cost.t_cost.saturating_add(1));
        time = measure(cost);
        measurements += 1;
    }
    Choice {
        cost,
        time,
        measurements,
    }
}

/// `value` times `target / time` (rounded up, at most [`MAX_FACTOR`] times `value`): the
/// cost that would take `target` if time grows in proportion to it, as it does for
/// argon2's memory and passes.
fn scaled(value: u32, target: Duration, time: Duration) -> u32 {
    let factor = if time.is_zero() {
        MAX_FACTOR
    } else {
        (target.as_secs_f64() / time.as_secs_f64()).min(MAX_FACTOR)
    };
    let scaled = (f64::from(value) * factor).ceil();
    if scaled >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range: 0 <= scaled < u32::MAX.
        scaled as u32
    }
}

/// Runs argon2id with `cost` into a reused buffer: the work of one login, as the hashing
/// pool's threads do it (they keep their argon2 memory from one hash to the next).
struct Bench {
    argon2: Argon2<'static>,
    memory: Vec<Block>,
}

impl Bench {
    fn new(cost: Argon2Cost) -> Result<Self> {
        let params = cost.params()?;
        let memory = vec![Block::default(); params.block_count()];
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            memory,
        })
    }

    fn hash(&mut self) -> Result<Duration> {
        let mut out = [0u8; 32];
        let started = Instant::now();
        self.argon2
            .hash_password_into_with_memory(
                b"correct horse battery staple",
                b"gatehouse-calibrate-salt",
                &mut out,
                &mut self.memory[..],
            )
            .map_err(Error::internal)?;
        Ok(started.elapsed())
    }
}

/// The time of one argon2id hash with `cost` on this thread: the fastest of `runs`
/// (at least one), its memory allocated before the clock starts.
pub fn time_hash(cost: Argon2Cost, runs: usize) -> Result<Duration> {
    let mut bench = Bench::new(cost)?;
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        best = best.min(bench.hash()?);
    }
    Ok(best)
}

/// Hashes per second with `threads` threads hashing at once, `per_thread` hashes each,
/// after one hash each to warm up: what the machine does when every core is busy
/// logging people in (shared caches and memory bandwidth included).
pub fn rate_on_threads(cost: Argon2Cost, threads: usize, per_thread: usize) -> Result<f64> {
    let threads = threads.max(1);
    let per_thread = per_thread.max(1);
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<()> {
                    // Every thread reaches the barrier, failed or not.
                    let warmed = Bench::new(cost).and_then(|mut bench| bench.hash().map(|_| bench));
                    barrier.wait();
                    let mut bench = warmed?;
                    for _ in 0..per_thread {
                        bench.hash()?;
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker
                .join()
                .map_err(|_| Error::internal("a calibration thread panicked"))??;
        }
        let elapsed = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
        let hashes = (threads * per_thread) as f64;
        Ok(hashes / elapsed)
    })
}

/// One set of parameters, measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// One hash on one thread, in milliseconds (the fastest of a few).
    pub hash_ms: f64,
    /// `1000 / hash_ms`: logins per second one core can check.
    pub hashes_per_second_per_core: f64,
    /// Measured with one thread per core hashing at once.
    pub hashes_per_second_all_cores: f64,
}

/// What `gatehouse calibrate` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The parameters `[password]` configures now.
    pub configured: Measured,
    /// The parameters [`choose`] settled on.
    pub proposed: Measured,
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    pub target_ms: f64,
    pub max_memory_kib: u32,
}

/// Hashes timed per parameter set on one thread (the fastest counts).
const RUNS: usize = 3;
/// Hashes per thread when every core hashes at once.
const RUNS_PER_THREAD: usize = 3;

/// The cores hashing may use: `std::thread::available_parallelism`.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The budget when none is given: [`DEFAULT_MAX_MEMORY_KIB`], or the configured memory
/// when that is more.
pub fn default_max_memory_kib(settings: &PasswordSettings) -> u32 {
    DEFAULT_MAX_MEMORY_KIB.max(settings.argon2_memory_kib)
}

/// Measures the configured parameters, chooses parameters for `target` within
/// `max_memory_kib`, and measures those. Takes a few seconds of every core.
pub fn calibrate(
    settings: &PasswordSettings,
    target: Duration,
    max_memory_kib: u32,
) -> Result<Calibration> {
    let cores = cores();
    let configured = Argon2Cost::configured(settings);
    let mut failure = None;
    let choice = choose(configured, target, max_memory_kib, |cost| {
        time_hash(cost, RUNS).unwrap_or_else(|e| {
            failure.get_or_insert(e);
            Duration::MAX
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let measure = |cost: Argon2Cost| -> Result<Measured> {
        let time = time_hash(cost, RUNS)?;
        let hash_ms = time.as_secs_f64() * 1000.0;
        Ok(Measured {
            m_cost_kib: cost.m_cost_kib,
            t_cost: cost.t_cost,
            p_cost: cost.p_cost,
            hash_ms,
            hashes_per_second_per_core: 1.0 / time.as_secs_f64().max(f64::MIN_POSITIVE),
            hashes_per_second_all_cores: rate_on_threads(cost, cores, RUNS_PER_THREAD)?,
        })
    };
    Ok(Calibration {
        configured: measure(configured)?,
        proposed: measure(choice.cost)?,
        cores,
        target_ms: target.as_secs_f64() * 1000.0,
        max_memory_kib: max_memory_kib.max(MIN_MEMORY_KIB),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cost(m_cost_kib: u32, t_cost: u32) -> Argon2Cost {
        Argon2Cost {
            m_cost_kib,
            t_cost,
            p_cost: 1,
        }
    }

    /// A machine where a hash takes `ns_per_kib_pass` nanoseconds per KiB and pass.
    fn machine(ns_per_kib_pass: u64) -> impl FnMut(Argon2Cost) -> Duration {
        move |c| {
            Duration::from_nanos(u64::from(c.m_cost_kib) * u64::from(c.t_cost) * ns_per_kib_pass)
        }
    }

    #[test]
    fn memory_rises_first_and_stops_at_the_target() {
        // 19456 KiB x 2 passes x 500 ns = 19.5 ms: the memory has room to reach 50 ms.
        let choice = choose(cost(19_456, 2), 50 * MS, 65_536, machine(500));
        assert_eq!(choice.cost.t_cost, 2, "{choice:?}");
        assert!(choice.cost.m_cost_kib > 19_456, "{choice:?}");
        assert!(choice.cost.m_cost_kib <= 65_536, "{choice:?}");
        assert_eq!(choice.cost.m_cost_kib % 1024, 0, "{choice:?}");
        assert!(choice.time >= 50 * MS, "{choice:?}");
        // Not far past it: one proportional step and the rounding to a MiB.
        assert!(choice.time < 52 * MS, "{choice:?}");
    }

    #[test]
    fn passes_rise_once_the_memory_budget_is_spent() {
        // A fast machine: 64 MiB x 2 passes takes 13 ms; the target needs 8 passes.
        let choice = choose(cost(19_456, 2), 50 * MS, 65_536, machine(100));
        assert_eq!(choice.cost.m_cost_kib, 65_536, "{choice:?}");
        assert_eq!(choice.cost.t_cost, 8, "{choice:?}");
        assert!(choice.time >= 50 * MS, "{choice:?}");
        assert_eq!(choice.cost.p_cost, 1);
    }

    #[test]
    fn a_machine_slower_than_the_target_keeps_the_baseline() {
        let mut calls = Vec::new();
        let choice = choose(cost(19_456, 2), 5 * MS, 65_536, |c| {
            calls.push(c);
            20 * MS
        });
        assert_eq!(choice.cost, cost(19_456, 2));
        assert_eq!(calls, [cost(19_456, 2)], "measured once");
        assert_eq!(choice.measurements, 1);
    }

    #[test]
    fn never_below_the_owasp_baseline_nor_more_lanes() {
        let weak = Argon2Cost {
            m_cost_kib: 4096,
            t_cost: 1,
            p_cost: 4,
        };
        let choice = choose(weak, Duration::ZERO, 1024, |_| MS);
        assert_eq!(choice.cost, cost(MIN_MEMORY_KIB, MIN_ITERATIONS));
    }

    #[test]
    fn the_configured_memory_above_the_budget_is_capped_to_it() {
        let choice = choose(cost(262_144, 3), 5 * MS, 65_536, |_| 10 * MS);
        assert_eq!(choice.cost, cost(65_536, 3));
    }

    #[test]
    fn a_measurement_that_takes_no_time_ends_in_bounded_steps() {
        let mut calls = 0;
        let choice = choose(cost(19_456, 2), 50 * MS, 65_536, |_| {
            calls += 1;
            Duration::ZERO
        });
        assert_eq!(calls, MAX_MEASUREMENTS);
        assert_eq!(choice.cost.m_cost_kib, 65_536);
        assert!(choice.cost.t_cost > 2);
    }

    #[test]
    fn a_real_hash_is_timed() {
        let cost = cost(MIN_MEMORY_KIB, 1);
        time_hash(cost, 1).unwrap();
        rate_on_threads(cost, 2, 1).unwrap();
        let bad = Argon2Cost {
            m_cost_kib: 1,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(time_hash(bad, 1).is_err());
        assert!(rate_on_threads(bad, 2, 1).is_err());
    }
}
