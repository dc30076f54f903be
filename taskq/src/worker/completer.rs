//! Finishes jobs in batches: stores their results in one pipeline, then acknowledges,
//! requeues or dead-letters their messages. A message is acknowledged only after its result
//! is stored.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::part::Part;
use super::{room, Shared};
use crate::backoff::Backoff;
use crate::broker::Delivery;
use crate::state::ResultMeta;

/// Most completions handled in one round.
const MAX_BATCH: usize = 512;

/// What to do with a finished message.
#[derive(Debug)]
pub(super) enum Action {
    /// Done: remove it from `unacked`.
    Ack,
    /// Not run (shutdown): put it back at the front of its queue.
    Requeue,
    /// Cannot run: move it to the dead-letter list with the reason.
    DeadLetter(String),
    /// Not this worker's any more (its lease lapsed while it was frozen or cut off, and another
    /// worker recovered it, or will): leave it in Redis, only taking back its start mark.
    Relinquish,
    /// Failed, to be retried: park `envelope` (the next attempt) until `eta`, in the same step
    /// that releases the original.
    Retry {
        /// The next attempt's envelope.
        envelope: String,
        /// When it is due, on the broker's clock.
        eta: f64,
    },
}

/// A finished job.
#[derive(Debug)]
pub(super) struct Completion {
    pub(super) delivery: Delivery,
    pub(super) record: Option<ResultMeta>,
    pub(super) action: Action,
    /// Released once the message is settled, so reservations count pending acks too.
    #[expect(
        dead_code,
        reason = "held only to be dropped when the message is settled"
    )]
    pub(super) reservation: OwnedSemaphorePermit,
}

/// The part that settles finished messages: their results stored first, then acked,
/// requeued, parked for a retry or dead-lettered, in batches.
#[derive(Debug)]
pub(super) struct Completer {
    task: JoinHandle<()>,
}

impl Completer {
    /// Starts settling what arrives on `completions`. It runs until every sender is gone
    /// (the consumer's and every job's), so nothing finished is left unsettled.
    pub(super) fn start(
        shared: Arc<Shared>,
        completions: mpsc::UnboundedReceiver<Completion>,
    ) -> Self {
        Self {
            task: tokio::spawn(run(shared, completions)),
        }
    }
}

#[async_trait]
impl Part for Completer {
    fn name(&self) -> &'static str {
        "completer"
    }

    /// Waits for the last completion to be settled: shut down after the consumer and the
    /// dispatcher, whose jobs hold the senders.
    async fn shutdown(self: Box<Self>) {
        let _ = self.task.await;
    }
}

async fn run(shared: Arc<Shared>, mut completions: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while completions.recv_many(&mut batch, MAX_BATCH).await > 0 {
        settle(&shared, &batch).await;
        shared.held.remove(batch.iter().map(|c| &c.delivery.tag));
        batch.clear();
    }
}

async fn settle(shared: &Shared, batch: &[Completion]) {
    let records: Vec<ResultMeta> = batch.iter().filter_map(|c| c.record.clone()).collect();
    if !records.is_empty() {
        retry(shared, "store results", || {
            shared.client.backend().store(&records)
        })
        .await;
    }
    for c in batch {
        if let Action::Retry { envelope, eta } = &c.action {
            let next = Delivery {
                raw: envelope.as_str().into(),
                ..c.delivery.clone()
            };
            retry(shared, "schedule a retry", || {
                shared.client.broker().defer(&next, *eta)
            })
            .await;
        }
    }
    let acks: Vec<String> = batch
        .iter()
        .filter(|c| matches!(c.action, Action::Ack))
        .map(|c| c.delivery.tag.clone())
        .collect();
    if !acks.is_empty() {
        retry(shared, "acknowledge messages", || {
            shared.client.broker().ack(&acks)
        })
        .await;
    }
    let relinquished: Vec<String> = batch
        .iter()
        .filter(|c| matches!(c.action, Action::Relinquish))
        .map(|c| c.delivery.tag.clone())
        .collect();
    if !relinquished.is_empty() {
        retry(shared, "take back start marks", || {
            shared.client.broker().unmark_started(&relinquished)
        })
        .await;
    }
    let requeues: Vec<Delivery> = batch
        .iter()
        .filter(|c| matches!(c.action, Action::Requeue))
        .map(|c| c.delivery.clone())
        .collect();
    if !requeues.is_empty() {
        retry(shared, "requeue messages", || {
            shared.client.broker().requeue(&requeues)
        })
        .await;
        tracing::info!(
            count = requeues.len(),
            "unfinished messages put back in their queues"
        );
    }
    for c in batch {
        if let Action::DeadLetter(reason) = &c.action {
            retry(shared, "dead-letter a message", || {
                shared.client.broker().dead_letter(&c.delivery, reason)
            })
            .await;
            shared.dead_letter_log.log(|| {
                tracing::error!(queue = %c.delivery.queue, %reason, "message moved to the dead-letter list")
            });
        }
    }
}

/// Retries a store operation until it succeeds: the message stays unacknowledged in Redis
/// meanwhile, so nothing is lost while Redis is away. Once the worker is shutting down, it
/// gives up after the grace period: the messages then stay in `unacked` for recovery.
async fn retry<F, Fut>(shared: &Shared, what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<()>>,
{
    let mut backoff = Backoff::starting_at(Duration::from_millis(50));
    let mut shutdown_deadline = None;
    loop {
        match op().await {
            Ok(()) => return shared.room.available(),
            Err(e) => {
                if room::is_out_of_memory(&e) {
                    shared.room.refused();
                }
                if shared.stopping.is_cancelled() {
                    let deadline = *shutdown_deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + shared.config().shutdown_grace
                    });
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(error = %e, "could not {what} before shutdown; the messages stay unacknowledged in Redis and will be redelivered");
                        return;
                    }
                }
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "could not {what}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
