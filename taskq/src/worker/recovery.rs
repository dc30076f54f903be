//! Recovery: messages whose lease lapsed (their worker was killed or froze past the visibility
//! timeout) go back to the front of their queues. Messages a Python worker holds are left to
//! kombu's own restore unless `celery_visibility_timeout` is set. It runs at start-up, so a
//! restarted worker picks up what its previous life held, and then every quarter of the
//! visibility timeout.
//! Each message moves in one atomic step, so any number of workers may run it at once.

use std::sync::Arc;

use super::{lease, Shared};
use crate::broker::RecoverAfter;

/// Most messages moved per step.
const BATCH: usize = 1000;

pub(super) async fn run(shared: Arc<Shared>) {
    let period = lease::period(shared.settings.visibility_timeout);
    loop {
        sweep(&shared).await;
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shared.stopping.cancelled() => return,
        }
    }
}

async fn sweep(shared: &Shared) {
    if shared.held.renewal_failing() {
        // Its own leases may be lapsing too: it would take its own messages for a dead
        // worker's, and run them twice.
        return tracing::warn!(
            "recovery waits: this worker cannot renew its own leases, so it cannot tell its \
             messages from a dead worker's"
        );
    }
    let mut after = RecoverAfter::new(shared.settings.visibility_timeout);
    if let Some(unleased) = shared.settings.celery_visibility_timeout {
        after = after.unleased_after(unleased);
    }
    loop {
        match shared.client.broker().recover(after, BATCH).await {
            Ok(0) => return,
            Ok(restored) => {
                tracing::warn!(
                    count = restored,
                    "messages of a dead or frozen worker returned to their queues"
                );
                if restored < BATCH {
                    return;
                }
            }
            Err(e) => {
                return tracing::warn!(error = %e, "cannot run recovery; retrying next period")
            }
        }
    }
}
