//! Moves parked ETA messages back to their queues when they fall due, by the broker's clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::part::{Loop, LoopPart};
use crate::Client;

/// Longest sleep between checks, so messages parked by other workers are noticed too.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Most messages moved per step.
const BATCH: usize = 1000;

/// The part that promotes due ETA messages.
#[derive(Debug)]
pub(super) struct Scheduler(Loop);

impl Scheduler {
    /// Starts promoting the due messages of `client`'s broker: at once, whenever one falls
    /// due by the broker's clock (checking at least every second), and when `parked` says a
    /// message was parked.
    pub(super) fn start(client: Client, parked: Arc<Notify>) -> Self {
        Self(Loop::spawn(|stop| run(client, parked, stop)))
    }
}

impl LoopPart for Scheduler {
    const NAME: &'static str = "scheduler";

    fn into_loop(self) -> Loop {
        self.0
    }
}

async fn run(client: Client, parked: Arc<Notify>, stop: CancellationToken) {
    let mut sleep = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = parked.notified() => {}
            () = stop.cancelled() => return,
        }
        sleep = match client.broker().promote_due(BATCH).await {
            Ok(p) if p.moved == BATCH => Duration::ZERO,
            Ok(p) => {
                if p.moved > 0 {
                    tracing::debug!(count = p.moved, "due ETA messages moved to their queues");
                }
                p.next_due
                    .map(|due| {
                        Duration::from_secs_f64((due - client.clock().estimate()).max(0.001))
                    })
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
