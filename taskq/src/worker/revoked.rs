//! The ids of revoked tasks, kept in memory like Celery's `LimitedSet`: at most
//! [`MAX_REVOKED`] ids, each forgotten [`REVOKED_TTL`] after it was revoked. Revokes are not
//! stored in Redis (neither does Celery), so a worker only knows those sent while it runs.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most ids kept (Celery's `REVOKES_MAX`).
pub(super) const MAX_REVOKED: usize = 50_000;

/// How long an id is kept (Celery's `REVOKE_EXPIRES`, 3 hours).
pub(super) const REVOKED_TTL: Duration = Duration::from_secs(3 * 3600);

#[derive(Debug)]
pub(super) struct RevokedSet {
    inner: Mutex<Inner>,
    max: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// id → when it was (last) revoked.
    ids: HashMap<String, Instant>,
    /// Insertion order, oldest first; an entry whose time no longer matches `ids` is stale.
    order: VecDeque<(String, Instant)>,
}

impl RevokedSet {
    pub(super) fn new(max: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("revoked set lock")
    }

    /// Remembers `id` as revoked, forgetting the oldest ids beyond the limits.
    pub(super) fn add(&self, id: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.ids.insert(id.to_owned(), now);
        inner.order.push_back((id.to_owned(), now));
        self.purge(&mut inner, now);
    }

    fn purge(&self, inner: &mut Inner, now: Instant) {
        while let Some((id, at)) = inner.order.front().cloned() {
            let current = inner.ids.get(&id) == Some(&at);
            let expired = now.duration_since(at) >= self.ttl;
            if current && !expired && inner.ids.len() <= self.max {
                break;
            }
            inner.order.pop_front();
            if current {
                inner.ids.remove(&id);
            }
        }
    }

    /// Whether `id` was revoked (and not yet forgotten).
    pub(super) fn contains(&self, id: &str) -> bool {
        let inner = self.lock();
        if inner.ids.is_empty() {
            return false;
        }
        inner.ids.get(id).is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// The ids currently kept, for `inspect revoked`.
    pub(super) fn ids(&self) -> Vec<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.purge(&mut inner, now);
        inner.ids.keys().cloned().collect()
    }
}

impl Default for RevokedSet {
    fn default() -> Self {
        Self::new(MAX_REVOKED, REVOKED_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_max_ids_oldest_first_out() {
        let set = RevokedSet::new(2, REVOKED_TTL);
        set.add("a");
        set.add("b");
        set.add("a"); // re-revoking refreshes: b is now the oldest
        set.add("c");
        assert!(set.contains("a") && set.contains("c"));
        assert!(!set.contains("b"));
        assert_eq!(set.ids().len(), 2);
    }

    #[test]
    fn forgets_ids_after_the_ttl() {
        let set = RevokedSet::new(10, Duration::from_millis(20));
        set.add("a");
        assert!(set.contains("a"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!set.contains("a"));
        assert!(set.ids().is_empty());
    }
}
