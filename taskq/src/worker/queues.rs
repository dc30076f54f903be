//! The queues the worker consumes, changed while it runs: Celery's `add_consumer` and
//! `cancel_consumer`, and taskq's fleet-wide pause (the broker's paused-queues set, which
//! every taskq worker reads when it starts, follows through the `pause_queue` and
//! `resume_queue` broadcasts, and reads again every [`PAUSED_RESYNC`], so that a broadcast
//! it missed, sent while it was starting or its Pub/Sub connection was down, holds within
//! seconds). The consumer asks before each fetch which queues to fetch from: the consumed ones
//! that are not paused. Messages of a paused queue stay queued.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Shared;
use crate::backoff::Backoff;

/// How often a running worker reads the broker's paused set again.
pub(super) const PAUSED_RESYNC: Duration = Duration::from_secs(5);

/// Consumed and paused queues.
#[derive(Debug)]
pub(super) struct Queues {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// In order of preference, as configured and then added.
    consumed: Vec<String>,
    paused: BTreeSet<String>,
    /// When the paused set was last read from the broker.
    paused_read_at: Option<Instant>,
}

impl Queues {
    pub(super) fn new(consumed: Vec<String>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                consumed,
                paused: BTreeSet::new(),
                paused_read_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("queues lock")
    }

    /// The queues consumed (`active_queues`), paused or not.
    pub(super) fn consumed(&self) -> Vec<String> {
        self.lock().consumed.clone()
    }

    /// The queues to fetch from now: consumed and not paused.
    pub(super) fn fetching(&self) -> Vec<String> {
        let inner = self.lock();
        let paused = &inner.paused;
        inner
            .consumed
            .iter()
            .filter(|q| !paused.contains(*q))
            .cloned()
            .collect()
    }

    /// Starts consuming `queue`, last in preference; whether it was not consumed already.
    pub(super) fn add(&self, queue: &str) -> bool {
        let mut inner = self.lock();
        if inner.consumed.iter().any(|q| q == queue) {
            return false;
        }
        inner.consumed.push(queue.to_owned());
        true
    }

    /// Stops consuming `queue`; whether it was consumed.
    pub(super) fn cancel(&self, queue: &str) -> bool {
        let mut inner = self.lock();
        let before = inner.consumed.len();
        inner.consumed.retain(|q| q != queue);
        inner.consumed.len() != before
    }

    /// Pauses (`true`) or resumes `queue`.
    pub(super) fn set_paused(&self, queue: &str, paused: bool) {
        let mut inner = self.lock();
        if paused {
            inner.paused.insert(queue.to_owned());
        } else {
            inner.paused.remove(queue);
        }
    }

    /// Replaces the paused set with the broker's.
    pub(super) fn load_paused(&self, paused: Vec<String>) {
        let mut inner = self.lock();
        inner.paused = paused.into_iter().collect();
        inner.paused_read_at = Some(Instant::now());
    }

    /// Whether the paused set was read longer than [`PAUSED_RESYNC`] ago.
    fn paused_stale(&self) -> bool {
        self.lock()
            .paused_read_at
            .is_none_or(|at| at.elapsed() >= PAUSED_RESYNC)
    }
}

/// Reads the broker's paused set again when [`PAUSED_RESYNC`] has passed since the last read;
/// a failed read keeps the set as it is (the fetch that follows meets the same error and backs
/// off).
pub(super) async fn refresh_paused(shared: &Shared) {
    if !shared.queues.paused_stale() {
        return;
    }
    match shared.client.broker().paused_queues().await {
        Ok(paused) => shared.queues.load_paused(paused),
        Err(e) => tracing::debug!(error = %e, "cannot read the paused queues again"),
    }
}

/// Reads the broker's paused queues into `shared.queues`, retrying while Redis is away, so
/// that the first fetch already skips them; returns early only when the worker stops.
pub(super) async fn load_paused(shared: &Shared) {
    let mut backoff = Backoff::starting_at(Duration::from_millis(100));
    loop {
        match shared.client.broker().paused_queues().await {
            Ok(paused) => {
                if !paused.is_empty() {
                    tracing::info!(queues = ?paused, "paused queues are not consumed until resumed");
                }
                return shared.queues.load_paused(paused);
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "cannot read the paused queues; retrying in {wait:?}");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.stopping.cancelled() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetching_skips_paused_queues_and_follows_added_and_cancelled_ones() {
        let queues = Queues::new(vec!["a".into(), "b".into()]);
        assert!(queues.add("c"));
        assert!(!queues.add("a"), "already consumed");
        queues.set_paused("b", true);
        assert_eq!(queues.fetching(), ["a", "c"]);
        assert_eq!(queues.consumed(), ["a", "b", "c"]);
        assert!(queues.cancel("a"));
        assert!(!queues.cancel("zz"));
        queues.set_paused("b", false);
        assert_eq!(queues.fetching(), ["b", "c"]);
        queues.load_paused(vec!["c".into()]);
        assert_eq!(queues.fetching(), ["b"]);
    }
}
