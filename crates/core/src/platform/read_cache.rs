//! Rows read within the last `read_cache.ttl` (one second by default), kept in memory so
//! that the checks every request makes (a token's session and user, a client's
//! credentials) need no database round-trip. What each view holds, and which changes
//! empty it, is said where it is used: [`crate::sessions::live`] and
//! [`crate::oauth::clients`].
//!
//! The rules every view follows:
//!
//! - A change made through this instance empties the view after its commit and before
//!   the request that made it answers ([`ReadCache::forget_all`]).
//! - A read that raced such a change never puts its stale rows back: it takes a
//!   [`ReadTicket`] before it queries; emptying the view bumps the generation; rows read
//!   under an older generation are not kept.
//! - Whatever another instance changes is seen within the TTL, which may not exceed one
//!   second; a revocation is dropped sooner, when the revocation feed brings it.

use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

/// A bounded map of recently read rows, with the generation that guards reads in flight.
pub(crate) struct ReadCache<K, V> {
    entries: Option<Cache<K, V>>,
    generation: AtomicU64,
    /// Held while a read's rows are checked against the generation and inserted, and
    /// while the view is emptied: an insert never lands between the two halves of
    /// either, so no reader can see rows read before a change once it emptied the view.
    changes: Mutex<()>,
}

/// Empties the view when dropped: after a commit, whether it succeeded, failed (a COMMIT
/// may have landed anyway) or its request was dropped mid-way.
pub(crate) struct ForgetAllOnDrop<'a, K, V>(&'a ReadCache<K, V>)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static;

impl<K, V> Drop for ForgetAllOnDrop<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.0.forget_all();
    }
}

/// What a read must present to keep its rows: the generation before it queried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket(u64);

impl<K, V> ReadCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A view keeping up to `capacity` entries for `ttl`; none at all when either is zero.
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        let entries = (!ttl.is_zero() && capacity > 0).then(|| {
            Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build()
        });
        Self {
            entries,
            generation: AtomicU64::new(0),
            changes: Mutex::new(()),
        }
    }

    /// The value read within the TTL, if any (looked up by any borrowed form of the key:
    /// a client id as `&str`, with no allocation).
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.as_ref()?.get(key)
    }

    /// Taken before reading, to keep what was read afterwards.
    pub(crate) fn ticket(&self) -> ReadTicket {
        ReadTicket(self.generation.load(Ordering::SeqCst))
    }

    /// Keeps a value read under `ticket`, unless the view was emptied since.
    pub(crate) fn keep(&self, ticket: ReadTicket, key: K, value: V) {
        let Some(entries) = &self.entries else { return };
        let _changes = self.lock();
        if self.generation.load(Ordering::SeqCst) == ticket.0 {
            entries.insert(key, value);
        }
    }

    /// Forgets everything, after a commit that changed what the view holds.
    pub(crate) fn forget_all(&self) {
        let _changes = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    /// A guard that forgets everything when dropped; take it before a commit.
    pub(crate) fn forget_all_on_drop(&self) -> ForgetAllOnDrop<'_, K, V> {
        ForgetAllOnDrop(self)
    }

    /// Forgets one entry (a change another instance made, when it is known here).
    pub(crate) fn forget(&self, key: &K) {
        let _changes = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it half-changed.
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ReadCache<u32, &'static str> {
        ReadCache::new(Duration::from_secs(1), 100)
    }

    #[test]
    fn rows_read_before_a_change_are_not_kept_after_it() {
        let cache = view();
        let ticket = cache.ticket();
        // The change commits while the read is in flight.
        cache.forget_all();
        cache.keep(ticket, 1, "stale");
        assert_eq!(cache.get(&1), None, "stale rows were kept");
        let fresh = cache.ticket();
        cache.keep(fresh, 1, "fresh");
        assert_eq!(cache.get(&1), Some("fresh"));
    }

    #[test]
    fn forgetting_one_entry_also_stops_reads_in_flight() {
        let cache = view();
        let ticket = cache.ticket();
        cache.forget(&2);
        cache.keep(ticket, 1, "read before the change");
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn forgetting_drops_what_was_kept() {
        let cache = view();
        cache.keep(cache.ticket(), 1, "a");
        cache.keep(cache.ticket(), 2, "b");
        cache.forget(&1);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some("b"));
        cache.forget_all();
        assert_eq!(cache.get(&2), None);
    }

    #[test]
    fn the_guard_forgets_when_dropped() {
        let cache = view();
        cache.keep(cache.ticket(), 1, "a");
        {
            let _guard = cache.forget_all_on_drop();
            assert_eq!(cache.get(&1), Some("a"));
        }
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache: ReadCache<u32, &str> = ReadCache::new(Duration::ZERO, 100);
        cache.keep(cache.ticket(), 1, "a");
        assert_eq!(cache.get(&1), None);
    }
}
