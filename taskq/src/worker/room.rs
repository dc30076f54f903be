//! Whether Redis has room for this worker's writes. Under `maxmemory` with `noeviction`, a
//! full Redis refuses results (and sends) with `OOM`, while fetching still works. A worker that
//! kept fetching then would only pile up messages it cannot finish, so the completer closes
//! this gate when a write is refused for lack of memory and opens it on the next write that
//! succeeds; the consumer fetches only while it is open. Leases are renewed all along (see
//! the renewal script), so nothing is taken from a worker that waits for room.

use tokio::sync::watch;

/// The gate: closed while Redis refuses this worker's writes for lack of memory.
#[derive(Debug)]
pub(super) struct Room(watch::Sender<bool>);

impl Room {
    pub(super) fn new() -> Self {
        Self(watch::Sender::new(true))
    }

    /// A write was refused with `OOM`: stop fetching until one succeeds.
    pub(super) fn refused(&self) {
        if self.0.send_replace(false) {
            tracing::error!(
                "Redis is out of memory (maxmemory reached with the noeviction policy): results \
                 cannot be stored. This worker stops fetching and keeps its messages and their \
                 leases until Redis has room. Raise maxmemory, or free memory: shorter result \
                 expiry (TASKQ_RESULT_EXPIRES), a trimmed dead-letter list, fewer queued messages"
            );
        }
    }

    /// A write succeeded: fetching may go on.
    pub(super) fn available(&self) {
        if !*self.0.borrow() && !self.0.send_replace(true) {
            tracing::info!("Redis has room again: this worker stores its results and fetches");
        }
    }

    /// Waits until Redis has room for this worker's writes.
    pub(super) async fn wait(&self) {
        if *self.0.borrow() {
            return; // the usual case, on the fetch path: no subscription
        }
        let mut open = self.0.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

/// Whether `error` is Redis refusing a write for lack of memory.
pub(super) fn is_out_of_memory(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Redis(e) if e.code() == Some("OOM"))
}
