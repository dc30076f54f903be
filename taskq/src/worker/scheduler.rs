//! Moves parked ETA messages back to their queues when they fall due, by the broker's clock.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// Longest sleep between checks, so messages parked by other workers are noticed too.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Most messages moved per step.
const BATCH: usize = 1000;

pub(super) async fn run(shared: Arc<Shared>) {
    let mut sleep = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = shared.parked.notified() => {}
            () = shared.stopping.cancelled() => return,
        }
        sleep = match shared.client.broker().promote_due(BATCH).await {
            Ok(p) if p.moved == BATCH => Duration::ZERO,
            Ok(p) => {
                if p.moved > 0 {
                    tracing::debug!(count = p.moved, "due ETA messages moved to their queues");
                }
                p.next_due
                    .map(|due| Duration::from_secs_f64((due - shared.broker_now()).max(0.001)))
                    .unwrap_or(MAX_SLEEP)
                    .min(MAX_SLEEP)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot promote due ETA messages; retrying");
                MAX_SLEEP
            }
        };
    }
}
