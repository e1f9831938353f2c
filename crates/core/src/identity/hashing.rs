//! Password hashing: argon2id on a fixed pool of `max_concurrent_hashes` threads of its
//! own, never on a request worker, with a bound on how many hashes run at once and how
//! many wait.
//!
//! Memory is bounded by the slots too: each of the pool's threads keeps one argon2 buffer
//! of `argon2_memory_kib` and reuses it for every hash, so hashing holds at most
//! slots x `argon2_memory_kib`. (With a new 19 MiB allocation per hash, on a growing set
//! of blocking threads, glibc's per-thread arenas each kept such buffers, fragmented:
//! RSS grew by hundreds of MiB under a login flood and stayed there.)
//!
//! Every password check costs one hash, whether or not the account exists: an unknown
//! account is checked against a dummy hash made with the same parameters.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use prometheus::Histogram;
use tokio::sync::Semaphore;

use crate::identity::types::Password;
use crate::settings::PasswordSettings;
use crate::{Error, Result};

/// The `password_hash` of an account without a password (made by a first sign-in at an
/// upstream provider): no PHC string, so no password can match it.
pub(crate) const NO_PASSWORD: &str = "!";

/// The hash to check a password of `user` against: none for an account without a
/// password, which [`PasswordHasher::verify`] then checks against the dummy hash (the
/// same work, never a match).
pub(crate) fn stored_password(user: &gatehouse_entity::users::Model) -> Option<&str> {
    has_password(user).then_some(user.password_hash.as_str())
}

/// Whether the account has a password to log in with.
pub(crate) fn has_password(user: &gatehouse_entity::users::Model) -> bool {
    user.password_hash != NO_PASSWORD
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The stored hash uses bcrypt or outdated argon2 parameters and should be replaced.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords within the configured concurrency limits.
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    slot_count: usize,
    pool: rayon::ThreadPool,
    waiting: AtomicUsize,
    max_waiting: usize,
    retry_after: Duration,
    dummy_hash: String,
    completed: AtomicU64,
    duration: Histogram,
    /// How long the decoy hash made at start took (fresh memory, so a little slower than
    /// the pool's): what the start-up log reports, without a hash of its own.
    startup_hash_time: Duration,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// Counts a request waiting for a hashing slot for as long as it waits, even when the
/// request is dropped while waiting.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// Builds a hasher; computes the dummy hash once, so call it at start-up.
    pub fn new(settings: &PasswordSettings) -> Result<Self> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| Error::invalid("invalid_config", format!("password.argon2_*: {e}")))?;
        let slots = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(slots)
            .thread_name(|n| format!("pwhash-{n}"))
            // Without a handler a panic in a job aborts the process; with one, it unwinds
            // the job, whose result sender drops: the caller gets an internal error.
            .panic_handler(|_| tracing::error!("a password hashing job panicked"))
            .build()
            .map_err(Error::internal)?;
        let mut random = [0u8; 32];
        crate::platform::secrets::fill_random(&mut random)?;
        let started = Instant::now();
        let dummy_hash = hash_with(&params, &hex::encode(random), Memory::Fresh)?;
        let startup_hash_time = started.elapsed();
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(slots)),
            slot_count: slots,
            pool,
            waiting: AtomicUsize::new(0),
            max_waiting: settings.max_queued_hashes,
            retry_after: settings.overload_retry_after,
            dummy_hash,
            completed: AtomicU64::new(0),
            duration: hash_duration_histogram()?,
            startup_hash_time,
        })
    }

    /// How long one hash at the configured parameters took at start.
    pub fn startup_hash_time(&self) -> Duration {
        self.startup_hash_time
    }

    /// Hashes computed at once (`password.max_concurrent_hashes`, or one per core).
    pub fn slot_count(&self) -> usize {
        self.slot_count
    }

    /// Hashes a new password into an argon2id PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        let memory = self.kept_memory();
        self.run(move || hash_with(&params, password.expose(), memory))
            .await?
    }

    /// Checks `password` against `stored` (argon2 or bcrypt PHC string), or against the
    /// dummy hash when there is no account, so both cost the same.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verification> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let current = self.params.clone();
        let memory = self.kept_memory();
        let verification = self
            .run(move || verify_with(password.expose(), &stored, &current, memory))
            .await?;
        Ok(Verification {
            matches: known && verification.matches,
            needs_rehash: known && verification.needs_rehash,
        })
    }

    /// How many hashing operations have completed since start (hash and verify alike).
    pub fn completed_operations(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// How many hashes wait for a hashing slot right now.
    pub fn hashes_waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The time each hash (and verification) took on the pool, not counting its wait
    /// for a slot: `gatehouse_password_hash_duration_seconds`.
    pub fn duration_metric(&self) -> &Histogram {
        &self.duration
    }

    /// How many hashes are being computed right now.
    pub fn hashes_in_progress(&self) -> usize {
        self.slot_count - self.slots.available_permits()
    }

    /// The memory of a hash on the pool: the thread's own buffer, as large as the current
    /// parameters need.
    fn kept_memory(&self) -> Memory {
        Memory::Kept {
            blocks: self.params.block_count(),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let already_waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _guard = WaitingGuard(&self.waiting);
                if already_waiting >= self.max_waiting {
                    return Err(Error::Overloaded {
                        retry_after: self.retry_after,
                    });
                }
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(Error::internal)?
            }
        };
        // The permit moves into the job: it is released when the hash ends (or unwinds),
        // even if this future is dropped meanwhile.
        let (done, output) = tokio::sync::oneshot::channel();
        let duration = self.duration.clone();
        self.pool.spawn(move || {
            let started = Instant::now();
            let output = work();
            duration.observe(started.elapsed().as_secs_f64());
            drop(permit);
            let _ = done.send(output);
        });
        let output = output.await.map_err(Error::internal)?;
        self.completed.fetch_add(1, Ordering::SeqCst);
        Ok(output)
    }
}

/// The histogram of hash durations: argon2 with the OWASP parameters takes tens of
/// milliseconds; the buckets reach well past what a login should ever wait.
fn hash_duration_histogram() -> Result<Histogram> {
    let opts = prometheus::HistogramOpts::new(
        "gatehouse_password_hash_duration_seconds",
        "Time one password hash or verification took on the hashing pool, without its wait for a slot.",
    )
    .buckets(vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]);
    Histogram::with_opts(opts).map_err(|e| Error::internal(e.to_string()))
}

thread_local! {
    /// The argon2 memory of a hashing thread, kept from one hash to the next.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Where a hash gets its argon2 memory.
#[derive(Debug, Clone, Copy)]
enum Memory {
    /// This thread's buffer (`MEMORY`), allocated at its first hash with this many
    /// blocks (the current parameters') and reused; a hash needing more blocks (a stored
    /// hash with a larger m) gets a buffer of its own.
    Kept { blocks: usize },
    /// A buffer of its own: for the dummy hash, made once at start-up off the pool.
    Fresh,
}

/// argon2 into `out`, in the memory `memory` says.
fn argon2_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: Memory,
) -> argon2::Result<()> {
    match memory {
        Memory::Kept { blocks } if argon2.params().block_count() <= blocks => {
            MEMORY.with_borrow_mut(|kept| {
                if kept.len() < blocks {
                    *kept = vec![Block::default(); blocks];
                }
                // Every block a hash reads it has written first: what an earlier hash
                // left in the buffer does not matter.
                argon2.hash_password_into_with_memory(password, salt, out, &mut kept[..])
            })
        }
        _ => argon2.hash_password_into(password, salt, out),
    }
}

/// A new argon2id PHC string for `password` with a random salt: what argon2's
/// `PasswordHasher::hash_password` makes, in the memory `memory` says.
fn hash_with(params: &Params, password: &str, memory: Memory) -> Result<String> {
    let mut salt = [0u8; 16];
    crate::platform::secrets::fill_random(&mut salt)?;
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| Error::internal(e.to_string()))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(argon2_into(
            &argon2,
            password.as_bytes(),
            &salt,
            out,
            memory,
        )?)
    })
    .map_err(|e| Error::internal(e.to_string()))?;
    let params = ParamsString::try_from(params).map_err(|e| Error::internal(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params,
        salt: Some(salt_string.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the argon2 hash `stored`, computed with the stored hash's
/// own algorithm, version and parameters: what argon2's
/// `PasswordVerifier::verify_password` checks, in the memory `memory` says.
fn argon2_matches(password: &str, stored: &PasswordHash<'_>, memory: Memory) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(stored.algorithm),
        stored
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(stored),
    ) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    // `Output`'s equality is constant-time.
    Output::init_with(expected.len(), |out| {
        Ok(argon2_into(
            &argon2,
            password.as_bytes(),
            salt,
            out,
            memory,
        )?)
    })
    .is_ok_and(|computed| computed == *expected)
}

fn verify_with(password: &str, stored: &str, current: &Params, memory: Memory) -> Verification {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        let matches = bcrypt::verify(password, stored).unwrap_or(false);
        return Verification {
            matches,
            needs_rehash: true,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::warn!("a stored password hash is not a PHC string this server understands");
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    let outdated = parsed.algorithm != argon2::ARGON2ID_IDENT
        || parsed.version != Some(Version::V0x13.into())
        || Params::try_from(&parsed).map_or(true, |p| {
            p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        });
    // The parameters of the stored hash are used to verify it, whatever the current ones.
    let matches = argon2_matches(password, &parsed, memory);
    Verification {
        matches,
        needs_rehash: outdated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(memory: u32) -> PasswordSettings {
        PasswordSettings {
            min_length: 8,
            max_length: 128,
            argon2_memory_kib: memory,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            max_concurrent_hashes: 1,
            max_queued_hashes: 4,
            overload_retry_after: Duration::from_secs(1),
        }
    }

    fn password(s: &str) -> Password {
        Password::presented(SecretString::from(s), &settings(64), "password").unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(&settings(64)).unwrap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let good = hasher
            .verify(&password("correct horse"), Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            good,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = hasher
            .verify(&password("battery staple"), Some(&hash))
            .await
            .unwrap();
        assert!(!bad.matches);
    }

    #[tokio::test]
    async fn outdated_parameters_and_bcrypt_ask_for_a_rehash() {
        let old = PasswordHasher::new(&settings(32)).unwrap();
        let hash = old.hash(&password("correct horse")).await.unwrap();
        let current = PasswordHasher::new(&settings(64)).unwrap();
        let v = current
            .verify(&password("correct horse"), Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );

        let bcrypt_hash = bcrypt::hash("correct horse", 4).unwrap();
        let v = current
            .verify(&password("correct horse"), Some(&bcrypt_hash))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        let v = current
            .verify(&password("wrong horse"), Some(&bcrypt_hash))
            .await
            .unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn an_unknown_account_costs_one_hash_and_never_matches() {
        let hasher = PasswordHasher::new(&settings(64)).unwrap();
        let before = hasher.completed_operations();
        let v = hasher
            .verify(&password("anything at all"), None)
            .await
            .unwrap();
        assert!(!v.matches);
        assert_eq!(hasher.completed_operations(), before + 1);
    }

    #[tokio::test]
    async fn hashes_are_those_of_the_argon2_crate_in_reused_memory() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&settings(64)).unwrap();
        // Twice each, so the second runs in memory a first hash left behind.
        for _ in 0..2 {
            let ours = hasher.hash(&password("correct horse")).await.unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"battery staple", &parsed)
                    .is_err()
            );
        }
        let mut theirs = Vec::new();
        for (algorithm, memory) in [
            (Algorithm::Argon2id, 64),
            (Algorithm::Argon2id, 32),
            // Larger than the kept buffer: a buffer of its own.
            (Algorithm::Argon2id, 256),
            (Algorithm::Argon2i, 64),
            (Algorithm::Argon2d, 64),
        ] {
            let params = Params::new(memory, 2, 1, None).unwrap();
            let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
            theirs.push(
                Argon2::new(algorithm, Version::V0x13, params)
                    .hash_password(b"correct horse", &salt)
                    .unwrap()
                    .to_string(),
            );
        }
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        theirs.push(
            Argon2::new(
                Algorithm::Argon2id,
                Version::V0x10,
                Params::new(64, 1, 1, None).unwrap(),
            )
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string(),
        );
        for stored in &theirs {
            for _ in 0..2 {
                let good = hasher
                    .verify(&password("correct horse"), Some(stored))
                    .await
                    .unwrap();
                assert!(good.matches, "{stored}");
                assert!(good.needs_rehash, "{stored}");
                let bad = hasher
                    .verify(&password("correct horsf"), Some(stored))
                    .await
                    .unwrap();
                assert!(!bad.matches, "{stored}");
            }
        }
    }

    #[tokio::test]
    async fn hashes_run_on_one_named_thread_per_slot() {
        let hasher = Arc::new(
            PasswordHasher::new(&PasswordSettings {
                max_concurrent_hashes: 2,
                max_queued_hashes: 16,
                ..settings(64)
            })
            .unwrap(),
        );
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let hasher = hasher.clone();
            runs.spawn(async move {
                hasher
                    .run(|| {
                        std::thread::sleep(Duration::from_millis(5));
                        std::thread::current().name().map(str::to_owned)
                    })
                    .await
            });
        }
        let mut names: Vec<_> = runs
            .join_all()
            .await
            .into_iter()
            .map(|name| name.unwrap().unwrap())
            .collect();
        names.sort();
        names.dedup();
        assert!(
            names.iter().all(|n| n == "pwhash-0" || n == "pwhash-1"),
            "{names:?}"
        );
        assert_eq!(hasher.completed_operations(), 12);
        assert_eq!(hasher.hashes_in_progress(), 0);
    }

    #[tokio::test]
    async fn a_panicking_hash_is_an_internal_error_and_frees_its_slot() {
        let hasher = PasswordHasher::new(&settings(64)).unwrap();
        let failed = hasher.run(|| -> u8 { panic!("argon2 went wrong") }).await;
        assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
        assert_eq!(hasher.hashes_in_progress(), 0);
        assert_eq!(hasher.completed_operations(), 0);
        let v = hasher
            .verify(&password("anything at all"), None)
            .await
            .unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn a_caller_dropped_while_its_hash_runs_still_frees_the_slot() {
        let hasher = Arc::new(PasswordHasher::new(&settings(64)).unwrap());
        let (started, running) = tokio::sync::oneshot::channel();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let caller = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(move || {
                        let _ = started.send(());
                        let _ = finishing.recv();
                    })
                    .await
            }
        });
        running.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(hasher.hashes_in_progress(), 1, "the job still runs");
        finish.send(()).unwrap();
        // The job ends and frees the slot; the next hash gets it.
        let v = hasher
            .verify(&password("anything at all"), None)
            .await
            .unwrap();
        assert!(!v.matches);
        assert_eq!(hasher.hashes_in_progress(), 0);
    }
}
