//! Liveness of a worker's consumption: a worker can be alive (answering, renewing leases)
//! and still not consume, when its connection to Redis is wedged. The consumer records every
//! broker round trip that succeeded; a worker that is neither consuming nor merely waiting
//! for a free execution slot for longer than its stall limit is unhealthy. Remote control's
//! `ping` answers with the error then, so `celery inspect ping` shows it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A handle on a worker's health, for a liveness probe or an admin endpoint. Cheap to clone;
/// get it from [`Worker::health`](super::Worker::health) before running the worker.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// let client = taskq::Client::from_config(taskq::Config::default())?;
/// let worker = taskq::Worker::builder(client).build();
/// let health = worker.health();
/// assert!(!health.check().healthy, "not running yet");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HealthHandle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    base: Instant,
    stall_after: Duration,
    running: AtomicBool,
    /// Milliseconds after `base` of the consumer's last successful broker round trip.
    last_contact_ms: AtomicU64,
    /// Whether the consumer waits for a free slot (busy, not stalled).
    waiting_for_slot: AtomicBool,
}

/// What [`HealthHandle::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Running, and consumed (or was only waiting for a free slot) within the stall limit.
    pub healthy: bool,
    /// Whether the worker runs (started and not stopped).
    pub running: bool,
    /// Time since the consumer's last successful round trip to the broker.
    pub since_broker_contact: Duration,
}

impl HealthHandle {
    pub(super) fn new(stall_after: Duration) -> Self {
        Self(Arc::new(Inner {
            base: Instant::now(),
            stall_after,
            running: AtomicBool::new(false),
            last_contact_ms: AtomicU64::new(0),
            waiting_for_slot: AtomicBool::new(false),
        }))
    }

    /// The worker's health now.
    pub fn check(&self) -> Health {
        let inner = &self.0;
        let last = Duration::from_millis(inner.last_contact_ms.load(Ordering::Relaxed));
        let since = inner.base.elapsed().saturating_sub(last);
        let running = inner.running.load(Ordering::Relaxed);
        let busy = inner.waiting_for_slot.load(Ordering::Relaxed);
        Health {
            healthy: running && (busy || since < inner.stall_after),
            running,
            since_broker_contact: since,
        }
    }

    /// Why the worker is unhealthy, or `None` when it is healthy.
    pub(super) fn problem(&self) -> Option<String> {
        let health = self.check();
        match (health.healthy, health.running) {
            (true, _) => None,
            (false, false) => Some("the worker is not running".to_owned()),
            (false, true) => Some(format!(
                "not consuming: no round trip to the broker for {:.1} s",
                health.since_broker_contact.as_secs_f64()
            )),
        }
    }

    pub(super) fn set_running(&self, running: bool) {
        if running {
            self.contact();
        }
        self.0.running.store(running, Ordering::Relaxed);
    }

    /// The consumer's round trip to the broker succeeded.
    pub(super) fn contact(&self) {
        let now = self.0.base.elapsed().as_millis() as u64;
        self.0.last_contact_ms.store(now, Ordering::Relaxed);
    }

    /// The consumer starts or stops waiting for a free slot.
    pub(super) fn waiting_for_slot(&self, waiting: bool) {
        if !waiting {
            // Waiting that long was not a stall: count from now.
            self.contact();
        }
        self.0.waiting_for_slot.store(waiting, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_only_when_running_and_neither_consuming_nor_waiting_for_a_slot() {
        let health = HealthHandle::new(Duration::from_millis(30));
        assert!(!health.check().healthy);
        health.set_running(true);
        assert!(health.check().healthy);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!health.check().healthy);
        assert!(health.problem().unwrap().contains("not consuming"));
        health.waiting_for_slot(true);
        assert!(health.check().healthy, "busy, not stalled");
        health.waiting_for_slot(false);
        assert!(health.check().healthy);
        health.set_running(false);
        assert_eq!(health.problem().unwrap(), "the worker is not running");
    }
}
