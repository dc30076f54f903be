//! Recovery: messages whose lease lapsed (their worker was killed or froze past the visibility
//! timeout) go back to the front of their queues, and so do messages a Python worker has held
//! for longer than kombu's visibility timeout. It runs at start-up, so a restarted worker
//! picks up what its previous life held, and then every quarter of the visibility timeout.
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
    let after = RecoverAfter::new(
        shared.settings.visibility_timeout,
        shared.settings.celery_visibility_timeout,
    );
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
