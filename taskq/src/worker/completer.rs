//! Finishes jobs in batches: stores their results in one pipeline, then acknowledges,
//! requeues or dead-letters their messages. A message is acknowledged only after its result
//! is stored.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::part::Part;
use super::workflow::FollowUp;
use super::{room, Shared};
use crate::backoff::Backoff;
use crate::broker::Delivery;
use crate::failure::TaskFailure;
use crate::protocol::{RawJson, TaskMessage};
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
    /// What follows the task in its workflow, if anything does.
    pub(super) follow_up: Option<Box<FollowUp>>,
    /// The lock of a unique call, released once the message is acknowledged or
    /// dead-lettered (not when it is put back or retried: the call still stands).
    pub(super) unique: Option<UniqueLock>,
    /// Released once the message is settled, so reservations count pending acks too.
    #[expect(
        dead_code,
        reason = "held only to be dropped when the message is settled"
    )]
    pub(super) reservation: OwnedSemaphorePermit,
}

/// A unique call's lock (see [`Options::unique_for`](crate::Options::unique_for)).
#[derive(Debug, Clone)]
pub(super) struct UniqueLock {
    key: String,
    task_id: String,
}

impl UniqueLock {
    /// The lock `message` holds, if it is a unique call.
    pub(super) fn of(message: &TaskMessage) -> Option<Self> {
        Some(Self {
            key: message.unique.clone()?,
            task_id: message.id.clone(),
        })
    }
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
        settle(&shared, &mut batch).await;
        shared.held.remove(batch.iter().map(|c| &c.delivery.tag));
        batch.clear();
    }
}

async fn settle(shared: &Shared, batch: &mut [Completion]) {
    // Workflows continue side by side: each is its own round trips, and one slow chord body
    // must not hold up the rest of the batch more than it has to.
    let continuing = batch.iter_mut().filter(|c| c.follow_up.is_some());
    join_all(continuing.map(|c| send_next_steps(shared, c))).await;
    let records: Vec<ResultMeta> = batch.iter().filter_map(|c| c.record.clone()).collect();
    if !records.is_empty() {
        retry(shared, "store results", || {
            shared.client.backend().store(&records)
        })
        .await;
    }
    let continuing = batch.iter_mut().filter(|c| c.follow_up.is_some());
    join_all(continuing.map(|c| continue_after_stored(shared, c))).await;
    for c in batch.iter() {
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
    for c in batch.iter() {
        if let Action::DeadLetter(reason) = &c.action {
            shared.metrics.dead_lettered(&task_name(&c.delivery));
            retry(shared, "dead-letter a message", || {
                shared.client.broker().dead_letter(&c.delivery, reason)
            })
            .await;
            shared.dead_letter_log.log(|| {
                tracing::error!(queue = %c.delivery.queue, %reason, "message moved to the dead-letter list")
            });
        }
    }
    release_unique_locks(shared, batch).await;
}

/// Releases the locks of the unique calls settled for good, so the next such call is queued.
/// Not retried: a lock left behind lapses by itself.
async fn release_unique_locks(shared: &Shared, batch: &[Completion]) {
    let done = batch
        .iter()
        .filter(|c| matches!(c.action, Action::Ack | Action::DeadLetter(_)))
        .filter_map(|c| c.unique.as_ref());
    let releases = done.map(|lock| async move {
        let released = shared
            .client
            .broker()
            .release_unique(&lock.key, &lock.task_id)
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, key = %lock.key, "cannot release a unique call's lock; it lapses by itself");
        }
    });
    join_all(releases).await;
}

/// The task name a message names, `""` when it cannot be read (counted for dead letters only,
/// so the envelope is read again only then).
fn task_name(delivery: &Delivery) -> String {
    TaskMessage::decode(&delivery.raw)
        .map(|message| message.task)
        .unwrap_or_default()
}

/// Sends what follows a successful task in its workflow (next chain step, callbacks) and
/// lists it in the task's record as its `children`. A continuation that cannot be sent as
/// written fails the task instead, and its message goes to the dead-letter list.
async fn send_next_steps(shared: &Shared, c: &mut Completion) {
    let Some(follow_up) = c.follow_up.as_deref() else {
        return;
    };
    let sent = retry_unless_malformed(shared, "send a workflow's next steps", || {
        follow_up.send_next(&shared.client)
    })
    .await;
    match sent {
        Some(Ok(children)) if !children.is_empty() => {
            if let Some(record) = c.record.as_mut() {
                record.children = RawJson::from_serialize(&children).expect("tuples serialize");
            }
        }
        Some(Err(reason)) => refuse_workflow(c, reason),
        _ => {}
    }
}

/// Once the task's result is stored: its chord part, and on failure the rest of its chain
/// and its errbacks.
async fn continue_after_stored(shared: &Shared, c: &mut Completion) {
    let Some(follow_up) = c.follow_up.as_deref() else {
        return;
    };
    let done = retry_unless_malformed(shared, "continue a workflow", || {
        follow_up.after_stored(&shared.client)
    })
    .await;
    if let Some(Err(reason)) = done {
        tracing::error!(id = %follow_up.task_id(), %reason, "workflow continuation refused");
        if matches!(c.action, Action::Ack) {
            c.action = Action::DeadLetter(format!("workflow continuation refused: {reason}"));
        }
    }
}

/// A continuation that cannot be sent: the task is stored as FAILURE `InvalidTaskError` with
/// the reason, and its message dead-lettered, rather than its workflow silently stopping.
fn refuse_workflow(c: &mut Completion, reason: String) {
    let Some(follow_up) = c.follow_up.as_deref() else {
        return;
    };
    tracing::error!(id = %follow_up.task_id(), %reason, "workflow continuation refused");
    let failure = TaskFailure::invalid_task(format!("workflow continuation refused: {reason}"));
    c.record = Some(ResultMeta::failure(follow_up.task_id(), &failure));
    c.action = Action::DeadLetter(format!("workflow continuation refused: {reason}"));
}

/// [`retry`], except that a malformed workflow is not retried: its reason comes back.
async fn retry_unless_malformed<T, F, Fut>(
    shared: &Shared,
    what: &str,
    mut op: F,
) -> Option<Result<T, String>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    retry(shared, what, || {
        let attempt = op();
        async move {
            match attempt.await {
                Err(crate::Error::Malformed { reason, .. }) => Ok(Err(reason)),
                other => other.map(Ok),
            }
        }
    })
    .await
}

/// Retries a store operation until it succeeds: the message stays unacknowledged in Redis
/// meanwhile, so nothing is lost while Redis is away. Once the worker is shutting down, it
/// gives up after the grace period: the messages then stay in `unacked` for recovery.
async fn retry<T, F, Fut>(shared: &Shared, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let mut backoff = Backoff::starting_at(Duration::from_millis(50));
    let mut shutdown_deadline = None;
    loop {
        match op().await {
            Ok(done) => {
                shared.room.available();
                return Some(done);
            }
            Err(e) => {
                shared.metrics.broker_error();
                if room::is_out_of_memory(&e) {
                    shared.room.refused();
                }
                if shared.stopping.is_cancelled() {
                    let deadline = *shutdown_deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + shared.config().shutdown_grace
                    });
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(error = %e, "could not {what} before shutdown; the messages stay unacknowledged in Redis and will be redelivered");
                        return None;
                    }
                }
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "could not {what}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
