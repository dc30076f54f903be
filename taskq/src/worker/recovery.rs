//! Recovery: messages whose lease lapsed (their worker was killed or froze past the visibility
//! timeout) go back to the front of their queues. Messages a Python worker holds are left to
//! kombu's own restore unless `celery_visibility_timeout` is set. It runs at start-up, so a
//! restarted worker picks up what its previous life held, and then every quarter of the
//! visibility timeout.
//! Each message moves in one atomic step, so any number of workers may run it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lease::{self, Held};
use super::metrics::Recorder;
use super::part::{Loop, LoopPart};
use crate::broker::{Broker, RecoverAfter};

/// Most messages moved per step.
const BATCH: usize = 1000;

/// The part that returns lost messages.
#[derive(Debug)]
pub(super) struct Recovery(Loop);

impl Recovery {
    /// Starts sweeping `broker` for messages lost as `after` says: at once, then every
    /// quarter of the visibility timeout. `held` tells whether this worker's own renewals
    /// are failing, when it must not judge others.
    pub(super) fn start(
        broker: Arc<dyn Broker>,
        held: Arc<Held>,
        after: RecoverAfter,
        metrics: Recorder,
    ) -> Self {
        let period = lease::period(after.leased());
        let sweeping = Sweeping {
            broker,
            held,
            after,
            metrics,
        };
        Self(Loop::spawn(|stop| run(sweeping, period, stop)))
    }
}

impl LoopPart for Recovery {
    const NAME: &'static str = "recovery";

    fn into_loop(self) -> Loop {
        self.0
    }
}

/// What a sweep works with.
struct Sweeping {
    broker: Arc<dyn Broker>,
    /// Whether this worker's own renewals fail.
    held: Arc<Held>,
    after: RecoverAfter,
    metrics: Recorder,
}

async fn run(sweeping: Sweeping, period: Duration, stop: CancellationToken) {
    loop {
        sweep(&sweeping).await;
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn sweep(sweeping: &Sweeping) {
    let Sweeping {
        broker,
        held,
        after,
        metrics,
    } = sweeping;
    if held.renewal_failing() {
        // Its own leases may be lapsing too: it would take its own messages for a dead
        // worker's, and run them twice.
        return tracing::warn!(
            "recovery waits: this worker cannot renew its own leases, so it cannot tell its \
             messages from a dead worker's"
        );
    }
    loop {
        match broker.recover(*after, BATCH).await {
            Ok(0) => return,
            Ok(restored) => {
                metrics.recovered(restored);
                tracing::warn!(
                    count = restored,
                    "messages of a dead or frozen worker returned to their queues"
                );
                if restored < BATCH {
                    return;
                }
            }
            Err(e) => {
                metrics.broker_error();
                return tracing::warn!(error = %e, "cannot run recovery; retrying next period");
            }
        }
    }
}
