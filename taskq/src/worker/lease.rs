//! Lease renewal: while a worker lives, the lease (`taskq.leases`) and `unacked_index` score of
//! every message it holds are refreshed every quarter of the visibility timeout, so recovery
//! (taskq's, or kombu's in a Python worker) never takes a message from a live worker, however
//! long its task runs.
//!
//! It runs on a thread of its own, with its own runtime and Redis connection: tasks that keep
//! the worker's runtime busy (CPU-heavy code) cannot delay it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;

/// The delivery tags a worker holds in `unacked`: from fetch until the message is settled.
#[derive(Debug, Default)]
pub(super) struct Held(Mutex<HashSet<String>>);

impl Held {
    pub(super) fn add(&self, tags: impl IntoIterator<Item = String>) {
        self.0.lock().expect("held lock").extend(tags);
    }

    pub(super) fn remove<'a>(&self, tags: impl IntoIterator<Item = &'a String>) {
        let mut held = self.0.lock().expect("held lock");
        for tag in tags {
            held.remove(tag);
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.lock().expect("held lock").iter().cloned().collect()
    }
}

/// How often leases are renewed and recovery runs: a quarter of the visibility timeout,
/// between 0.2 s and 60 s.
pub(super) fn period(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// Starts the renewal thread; it ends when `stop` is cancelled. `None` (logged) if the
/// thread or its runtime cannot be made; leases then lapse, and messages are redelivered
/// rather than lost.
pub(super) fn spawn(shared: Arc<Shared>, stop: CancellationToken) -> Option<JoinHandle<()>> {
    let started = std::thread::Builder::new()
        .name("taskq-leases".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(renew_until(shared, stop)),
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

async fn renew_until(shared: Arc<Shared>, stop: CancellationToken) {
    let broker = match shared.client.broker().detached() {
        Ok(broker) => broker,
        Err(e) => return tracing::error!(error = %e, "cannot connect for lease renewal"),
    };
    let period = period(shared.settings.visibility_timeout);
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
        let tags = shared.held.snapshot();
        if tags.is_empty() {
            continue;
        }
        if let Err(e) = broker.renew(&tags).await {
            tracing::warn!(error = %e, count = tags.len(), "cannot renew leases; retrying next period");
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
        let held = Held::default();
        held.add(["a".to_owned(), "b".to_owned()]);
        held.remove([&"a".to_owned()]);
        assert_eq!(held.snapshot(), ["b"]);
    }
}
