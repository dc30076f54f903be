//! The worker's copy of the revoked task ids (see [`crate::revoke`]): loaded from the broker
//! before the worker takes its first task, topped up from the broker every
//! [`RESYNC_EVERY`], and added to at once when a `revoke` command arrives. Whether a task is
//! revoked is then a lookup here, never a round trip.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::part::{Loop, LoopPart};
use super::Shared;
use crate::broker::Broker;
use crate::revoke::{RevokeLog, Revoked, RESYNC_EVERY};

/// How far back each read from the broker reaches before the previous read's clock, so that
/// a revoke recorded just as the previous read ran, or under a clock stepped back a little,
/// is not missed. Reading a few seconds twice costs next to nothing.
const READ_OVERLAP: f64 = 5.0;

#[derive(Debug, Default)]
pub(super) struct RevokedSet {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    log: RevokeLog,
    /// The broker's clock at the last successful read, and when (here) that was.
    last_read: Option<(f64, Instant)>,
}

impl Inner {
    /// The broker's clock now, estimated from the last read (this machine's clock before any).
    fn broker_now(&self) -> f64 {
        match self.last_read {
            Some((at, when)) => at + when.elapsed().as_secs_f64(),
            None => crate::unix_now(),
        }
    }
}

impl RevokedSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("revoked set lock")
    }

    /// Remembers `id` as revoked now (a `revoke` command just arrived).
    pub(super) fn add(&self, id: &str) {
        let mut inner = self.lock();
        let now = inner.broker_now();
        inner.log.record(id, now, now);
    }

    /// Whether `id` was revoked (and not yet forgotten). Expired ids are dropped when the set
    /// is topped up, every [`RESYNC_EVERY`].
    pub(super) fn contains(&self, id: &str) -> bool {
        let inner = self.lock();
        !inner.log.is_empty() && inner.log.contains(id, inner.broker_now())
    }

    /// The ids currently kept, for `inspect revoked`.
    pub(super) fn ids(&self) -> Vec<String> {
        let mut inner = self.lock();
        let now = inner.broker_now();
        inner.log.trim(now);
        inner.log.entries().map(|(id, _)| id.to_owned()).collect()
    }

    /// Where the next read from the broker starts: everything before the first read.
    fn next_read_from(&self) -> f64 {
        match self.lock().last_read {
            Some((at, _)) => at - READ_OVERLAP,
            None => f64::NEG_INFINITY,
        }
    }

    /// Adds what a read from the broker found; returns how many ids it held.
    fn merge(&self, read: Revoked) -> usize {
        let mut inner = self.lock();
        for (id, at) in &read.ids {
            inner.log.record(id, *at, read.now);
        }
        inner.log.trim(read.now);
        inner.last_read = Some((read.now, Instant::now()));
        read.ids.len()
    }
}

/// Loads the revokes recorded in the broker, then says so on `loaded` (the consumer waits for
/// it: a task revoked while no worker ran must not slip through), then reads what was added
/// since, every [`RESYNC_EVERY`], until the worker stops. A failed read is retried at the
/// same pace; the set keeps what it has meanwhile.
///
/// The part that keeps the revoked set in step with the broker's.
#[derive(Debug)]
pub(super) struct RevokeSync(Loop);

impl RevokeSync {
    /// Starts loading `broker`'s revokes into `revoked`, telling `loaded` after the first read.
    pub(super) fn start(
        broker: Arc<dyn Broker>,
        revoked: Arc<RevokedSet>,
        loaded: oneshot::Sender<()>,
    ) -> Self {
        Self(Loop::spawn(|stop| run(broker, revoked, loaded, stop)))
    }
}

impl LoopPart for RevokeSync {
    const NAME: &'static str = "revoke sync";

    fn into_loop(self) -> Loop {
        self.0
    }
}

async fn run(
    broker: Arc<dyn Broker>,
    revoked: Arc<RevokedSet>,
    loaded: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let mut loaded = Some(loaded);
    let mut failing = false;
    loop {
        let since = revoked.next_read_from();
        let read = tokio::select! {
            read = broker.revokes_since(since) => read,
            () = stop.cancelled() => return,
        };
        match read {
            Ok(read) => {
                let count = revoked.merge(read);
                if let Some(loaded) = loaded.take() {
                    tracing::debug!(count, "revoked task ids loaded from the broker");
                    let _ = loaded.send(());
                }
                failing = false;
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot read the revoked task ids; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(RESYNC_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Records ids revoked by a `revoke` command in the broker too, so that workers that were
/// not listening (restarting, or not started yet) honour them. Every worker receiving the
/// command does it; that is harmless.
pub(super) async fn record_in_broker(shared: &Shared, ids: &[String]) {
    if let Err(e) = shared.client.broker().record_revokes(ids).await {
        tracing::warn!(error = %e, ?ids, "cannot record revoked task ids in the broker; only this worker's memory has them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_merge_and_the_next_read_overlaps_the_last() {
        let set = RevokedSet::default();
        assert_eq!(set.next_read_from(), f64::NEG_INFINITY);
        let now = 1_800_000_000.0;
        let read = Revoked {
            now,
            ids: vec![("a".into(), now - 10.0), ("b".into(), now - 1.0)],
        };
        assert_eq!(set.merge(read), 2);
        assert!(set.contains("a") && set.contains("b") && !set.contains("c"));
        assert_eq!(set.next_read_from(), now - READ_OVERLAP);
        set.add("c");
        let mut ids = set.ids();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn ids_revoked_more_than_three_hours_before_a_read_are_dropped() {
        let set = RevokedSet::default();
        let now = 1_800_000_000.0;
        set.merge(Revoked {
            now,
            ids: vec![("stale".into(), now - 3.0 * 3600.0 - 1.0)],
        });
        assert!(!set.contains("stale"));
        assert!(set.ids().is_empty());
    }
}
