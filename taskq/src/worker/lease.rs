//! Lease renewal: while a worker lives, the lease (`taskq.leases`) and `unacked_index` score of
//! every message it holds are refreshed every quarter of the visibility timeout, so recovery
//! (taskq's, or kombu's in a Python worker) never takes a message from a live worker, however
//! long its task runs.
//!
//! It runs on a thread of its own, with its own runtime and Redis connection: tasks that keep
//! the worker's runtime busy (CPU-heavy code) cannot delay it.
//!
//! The worker also keeps, per message, how long its lease is known to last ([`Held`]): a
//! message whose lease may have lapsed (the worker froze, or Redis was away) is started only
//! once Redis confirms it is still this worker's ([`still_ours`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::metrics::Recorder;
use super::part::Part;
use super::Shared;
use crate::broker::Broker;

/// The messages a worker holds in `unacked`, from fetch until settled, each with how long its
/// lease is known to last.
///
/// A lease is known to last the visibility timeout from the moment the request that wrote it
/// (the fetch, or a renewal that found the message still held) was *sent*: Redis stamps it
/// later than that, so the worker's view never outlives Redis's. A worker that was frozen
/// (SIGSTOP, a VM pause) or cut off from Redis for longer than that may have lost its
/// messages to another worker's recovery. It must not start them then unless Redis confirms
/// they are still its own; only tasks already running at the freeze can run twice.
#[derive(Debug)]
pub(super) struct Held {
    leases: Mutex<HashMap<String, Lease>>,
    timeout: Duration,
    /// Whether the last renewal failed: this worker cannot tell its own lapsed leases from a
    /// dead worker's then, so its recovery waits.
    renewal_failing: AtomicBool,
}

/// What a worker knows of one of its leases.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lease {
    /// Its own until then, at least.
    Until(Instant),
    /// Redis said the message is no longer held under this tag: recovered by another worker.
    Lost,
}

/// Whether a held message may be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// The lease has at least half the visibility timeout left: start it.
    Sure,
    /// Renewals have not confirmed it for a while (the worker froze, or Redis was away): ask
    /// Redis before starting it.
    Doubtful,
    /// Another worker recovered it, or it is no longer held: never start it.
    Lost,
}

impl Held {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            leases: Mutex::new(HashMap::new()),
            timeout,
            renewal_failing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().expect("held lock")
    }

    /// Records messages just fetched by a request sent at `asked`.
    pub(super) fn add(&self, tags: impl IntoIterator<Item = String>, asked: Instant) {
        let until = Lease::Until(asked + self.timeout);
        self.lock().extend(tags.into_iter().map(|tag| (tag, until)));
    }

    pub(super) fn remove<'a>(&self, tags: impl IntoIterator<Item = &'a String>) {
        let mut held = self.lock();
        for tag in tags {
            held.remove(tag);
        }
    }

    /// How many messages the worker holds.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The tags whose leases are worth renewing: all but the lost ones.
    fn snapshot(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, lease)| **lease != Lease::Lost)
            .map(|(tag, _)| tag.clone())
            .collect()
    }

    /// Takes in what a renewal of `tags`, sent at `asked`, answered: `lost` are no longer
    /// held, the others are this worker's for another visibility timeout. Tags settled
    /// meanwhile stay forgotten.
    pub(super) fn confirm(&self, tags: &[String], asked: Instant, lost: &[String]) {
        let mut held = self.lock();
        for tag in tags {
            if let Some(lease) = held.get_mut(tag) {
                *lease = Lease::Until(asked + self.timeout);
            }
        }
        for tag in lost {
            if let Some(lease) = held.get_mut(tag) {
                *lease = Lease::Lost;
            }
        }
    }

    /// Whether the message held under `tag` may be started now.
    pub(super) fn standing(&self, tag: &str) -> Standing {
        match self.lock().get(tag) {
            Some(Lease::Until(until)) => {
                let left = until.saturating_duration_since(Instant::now());
                if left >= self.timeout / 2 {
                    Standing::Sure
                } else {
                    Standing::Doubtful
                }
            }
            Some(Lease::Lost) | None => Standing::Lost,
        }
    }

    /// Whether the last renewal failed (Redis unreachable, or refusing it).
    pub(super) fn renewal_failing(&self) -> bool {
        self.renewal_failing.load(Ordering::Relaxed)
    }

    fn set_renewal_failing(&self, failing: bool) {
        self.renewal_failing.store(failing, Ordering::Relaxed);
    }
}

/// How often leases are renewed and recovery runs: a quarter of the visibility timeout,
/// between 0.2 s and 60 s.
pub(super) fn period(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// The part that renews this worker's leases, on a thread of its own: a runtime busy with
/// tasks that never yield cannot starve it, so a busy worker is never taken for a dead one.
#[derive(Debug)]
pub(super) struct LeaseRenewer {
    stop: CancellationToken,
    /// `None` when the thread could not be started (logged); leases then lapse, and messages
    /// are redelivered rather than lost.
    thread: Option<JoinHandle<()>>,
}

impl LeaseRenewer {
    /// Starts renewing the leases `held` lists, on a connection of its own to `broker`, every
    /// quarter of `visibility_timeout`.
    pub(super) fn start(
        broker: &Arc<dyn Broker>,
        held: Arc<Held>,
        visibility_timeout: Duration,
        metrics: Recorder,
    ) -> Self {
        let stop = CancellationToken::new();
        let thread = match broker.detached() {
            Ok(broker) => {
                let renewing = Renewing {
                    broker,
                    held,
                    metrics,
                };
                spawn(renewing, period(visibility_timeout), stop.clone())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot connect for lease renewal");
                None
            }
        };
        Self { stop, thread }
    }
}

#[async_trait]
impl Part for LeaseRenewer {
    fn name(&self) -> &'static str {
        "lease renewer"
    }

    /// Stops renewing: every message this worker held is settled by now.
    async fn shutdown(self: Box<Self>) {
        self.stop.cancel();
        if let Some(thread) = self.thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// What the renewal thread works with.
struct Renewing {
    /// A connection of its own.
    broker: Arc<dyn Broker>,
    held: Arc<Held>,
    metrics: Recorder,
}

/// Starts the renewal thread; it ends when `stop` is cancelled.
fn spawn(renewing: Renewing, period: Duration, stop: CancellationToken) -> Option<JoinHandle<()>> {
    let started = std::thread::Builder::new()
        .name("taskq-leases".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(renew_until(renewing, period, stop)),
                Err(e) => tracing::error!(error = %e, "cannot start the lease renewal runtime"),
            }
        });
    match started {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the lease renewal thread");
            None
        }
    }
}

async fn renew_until(renewing: Renewing, period: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
        renew_once(&renewing).await;
    }
}

/// Renews every lease this worker holds, and takes in which are no longer its own.
async fn renew_once(renewing: &Renewing) {
    let Renewing {
        broker,
        held,
        metrics,
    } = renewing;
    let tags = held.snapshot();
    if tags.is_empty() {
        return held.set_renewal_failing(false);
    }
    let asked = Instant::now();
    match broker.renew(&tags).await {
        Ok(lost) => {
            if !lost.is_empty() {
                tracing::warn!(
                    count = lost.len(),
                    "messages this worker held were recovered by another worker while its \
                     leases lapsed (it was frozen or cut off from Redis); this worker leaves them to it"
                );
            }
            held.confirm(&tags, asked, &lost);
            held.set_renewal_failing(false);
            metrics.renewed(tags.len() - lost.len());
        }
        Err(e) => {
            held.set_renewal_failing(true);
            metrics.broker_error();
            tracing::warn!(error = %e, count = tags.len(), "cannot renew leases; retrying next period");
        }
    }
}

/// Whether this worker may start the message held under `tag`: its lease is surely its own,
/// or Redis confirms so now (renewing it). A message that is not is left alone: another
/// worker recovered it, or will once its lease lapses.
pub(super) async fn still_ours(shared: &Shared, tag: &str) -> bool {
    match shared.held.standing(tag) {
        Standing::Sure => true,
        Standing::Lost => false,
        Standing::Doubtful => {
            let tags = [tag.to_owned()];
            let asked = Instant::now();
            match shared.client.broker().renew(&tags).await {
                Ok(lost) => {
                    shared.held.confirm(&tags, asked, &lost);
                    lost.is_empty()
                }
                Err(e) => {
                    tracing::warn!(error = %e, %tag, "cannot confirm a lapsing lease");
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_period_is_a_quarter_within_bounds() {
        assert_eq!(period(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(period(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(
            period(Duration::from_millis(400)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn held_tags_are_added_and_removed() {
        let held = Held::new(Duration::from_secs(30));
        held.add(["a".to_owned(), "b".to_owned()], Instant::now());
        held.remove([&"a".to_owned()]);
        assert_eq!(held.snapshot(), ["b"]);
        assert_eq!(held.standing("a"), Standing::Lost);
    }

    #[test]
    fn a_lease_not_confirmed_for_half_the_timeout_is_doubtful() {
        let timeout = Duration::from_secs(30);
        let held = Held::new(timeout);
        let now = Instant::now();
        held.add(["fresh".to_owned()], now);
        held.add(
            ["old".to_owned()],
            now - timeout / 2 - Duration::from_secs(1),
        );
        held.add(["lapsed".to_owned()], now - timeout * 2);
        assert_eq!(held.standing("fresh"), Standing::Sure);
        assert_eq!(held.standing("old"), Standing::Doubtful);
        assert_eq!(held.standing("lapsed"), Standing::Doubtful);
        // A renewal sent now confirms one and reports the other recovered elsewhere.
        let tags = ["old".to_owned(), "lapsed".to_owned()];
        held.confirm(&tags, Instant::now(), &["lapsed".to_owned()]);
        assert_eq!(held.standing("old"), Standing::Sure);
        assert_eq!(held.standing("lapsed"), Standing::Lost);
        assert_eq!(held.snapshot().len(), 2, "lost leases are not renewed");
    }
}
