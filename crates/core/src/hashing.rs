//! Password hashing: argon2id on the blocking thread pool, never on a request worker,
//! with a bound on how many hashes run at once and how many wait.
//!
//! Every password check costs one hash, whether or not the account exists: an unknown
//! account is checked against a dummy hash made with the same parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::settings::PasswordSettings;
use crate::types::Password;
use crate::{Error, Result};

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
    argon2: Argon2<'static>,
    params: Params,
    slots: Arc<Semaphore>,
    slot_count: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    retry_after: Duration,
    dummy_hash: String,
    completed: AtomicU64,
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
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let slots = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut random = [0u8; 32];
        crate::secrets::fill_random(&mut random)?;
        let dummy_hash = hash_with(&argon2, &hex::encode(random))?;
        Ok(Self {
            argon2,
            params,
            slots: Arc::new(Semaphore::new(slots)),
            slot_count: slots,
            waiting: AtomicUsize::new(0),
            max_waiting: settings.max_queued_hashes,
            retry_after: settings.overload_retry_after,
            dummy_hash,
            completed: AtomicU64::new(0),
        })
    }

    /// Hashes a new password into an argon2id PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        self.run(move || hash_with(&argon2, password.expose()))
            .await?
    }

    /// Checks `password` against `stored` (argon2 or bcrypt PHC string), or against the
    /// dummy hash when there is no account, so both cost the same.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verification> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let current = self.params.clone();
        let verification = self
            .run(move || verify_with(password.expose(), &stored, &current))
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

    /// How many hashes are being computed right now.
    pub fn hashes_in_progress(&self) -> usize {
        self.slot_count - self.slots.available_permits()
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
        let output = tokio::task::spawn_blocking(move || {
            let output = work();
            drop(permit);
            output
        })
        .await
        .map_err(Error::internal)?;
        self.completed.fetch_add(1, Ordering::SeqCst);
        Ok(output)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    crate::secrets::fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(e.to_string()))?;
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(e.to_string()))
}

fn verify_with(password: &str, stored: &str, current: &Params) -> Verification {
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
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
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
}
