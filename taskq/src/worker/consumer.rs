//! Takes messages from the broker in batches, as many as there are free reservation slots,
//! and decides each one's fate: run it (handed in order to the dispatcher), park it until its
//! ETA, or settle it at once (expired, unknown task, refused).
//!
//! A refused message (one the fetch dead-lettered as too large or untrackable, or one that
//! does not decode into a task taskq can run) also gets a FAILURE stored under its task id
//! whenever the id can be read, so that its caller learns why instead of waiting.
//!
//! Fetching and deciding overlap: a batch is decoded on a task of its own while the next
//! fetch is in flight, so Redis's time and the worker's add up less.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::completer::{Action, Completion, UniqueLock};
use super::metrics::Ending;
use super::part::Part;
use super::workflow::{Ended, FollowUp};
use super::{events, executor, rate_limits, Shared};
use crate::backoff::Backoff;
use crate::broker::{Delivery, Fetched, RefusedMessage};
use crate::failure::TaskFailure;
use crate::protocol::edit::with_header;
use crate::protocol::names::header;
use crate::protocol::{DecodeError, TaskMessage};
use crate::registry;
use crate::state::ResultMeta;

/// How long one wait for messages lasts before it is renewed.
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Most messages taken in one fetch.
const MAX_FETCH: usize = 256;

/// A fetched batch on its way to be decided, with one reservation per message.
struct Batch {
    deliveries: Vec<Delivery>,
    reservations: Vec<OwnedSemaphorePermit>,
    /// How many of the first deliveries the fetch marked started (for idle slots).
    start_marked: usize,
    /// The broker's clock at the fetch.
    now: f64,
}

/// One message of a batch, as the decider takes it.
struct Arrival {
    delivery: Delivery,
    reservation: OwnedSemaphorePermit,
    /// The broker's clock at the fetch.
    now: f64,
    /// Whether the fetch already marked it started.
    start_marked: bool,
}

/// Batches fetched ahead of the one being decided: one is enough to overlap the two.
const BATCHES_AHEAD: usize = 1;

/// The part that takes messages from the broker.
#[derive(Debug)]
pub(super) struct Consumer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Starts consuming once `revokes_loaded` says the revoked ids are loaded, so that a task
    /// revoked while no worker ran is never started, and once it has read the paused queues.
    /// Messages to run go to `ready` (the dispatcher), settled ones to `completions` (the
    /// completer).
    pub(super) fn start(
        shared: Arc<Shared>,
        revokes_loaded: oneshot::Receiver<()>,
        completions: mpsc::UnboundedSender<Completion>,
        ready: mpsc::UnboundedSender<executor::Job>,
    ) -> Self {
        let task = tokio::spawn(consume_once_revokes_loaded(
            shared.clone(),
            revokes_loaded,
            completions,
            ready,
        ));
        Self { shared, task }
    }
}

#[async_trait]
impl Part for Consumer {
    fn name(&self) -> &'static str {
        "consumer"
    }

    /// Stops fetching (the worker's stop signal) and returns once the last fetch is handed
    /// on; dropping its senders then lets the dispatcher and the completer finish.
    async fn shutdown(self: Box<Self>) {
        self.shared.stopping.cancel();
        let _ = self.task.await;
    }
}

/// Runs the consumer once the revoked ids are loaded; nothing if the worker stops first.
async fn consume_once_revokes_loaded(
    shared: Arc<Shared>,
    revokes_loaded: oneshot::Receiver<()>,
    completions: mpsc::UnboundedSender<Completion>,
    ready: mpsc::UnboundedSender<executor::Job>,
) {
    tokio::select! {
        loaded = revokes_loaded => {
            if loaded.is_ok() {
                super::queues::load_paused(&shared).await;
                run(shared, completions, ready).await;
            }
        }
        () = shared.stopping.cancelled() => {}
    }
}

async fn run(
    shared: Arc<Shared>,
    completions: mpsc::UnboundedSender<Completion>,
    ready: mpsc::UnboundedSender<executor::Job>,
) {
    let (batches, fetched_batches) = mpsc::channel(BATCHES_AHEAD);
    let decider = tokio::spawn(decide_batches(
        shared.clone(),
        completions,
        ready,
        fetched_batches,
    ));
    fetch_batches(&shared, batches).await;
    // Every fetched message is handed on before the consumer reports done.
    let _ = decider.await;
}

/// Decides each message of each batch, in fetch order.
async fn decide_batches(
    shared: Arc<Shared>,
    completions: mpsc::UnboundedSender<Completion>,
    ready: mpsc::UnboundedSender<executor::Job>,
    mut batches: mpsc::Receiver<Batch>,
) {
    while let Some(batch) = batches.recv().await {
        let pairs = batch.deliveries.into_iter().zip(batch.reservations);
        let mut limited = Vec::new();
        for (n, (delivery, reservation)) in pairs.enumerate() {
            let fetched = Arrival {
                delivery,
                reservation,
                now: batch.now,
                start_marked: n < batch.start_marked,
            };
            decide(&shared, &completions, &ready, fetched, &mut limited).await;
        }
        if !limited.is_empty() {
            // One step per rate-limited task for the whole batch, in fetch order.
            for job in rate_limits::give_turns(&shared, limited).await {
                hand_over(&ready, job);
            }
        }
    }
}

/// Hands a job to the dispatcher, in fetch order, so priorities and FIFO order hold; if the
/// dispatcher is gone (shutdown), the message goes back to its queue.
fn hand_over(ready: &mpsc::UnboundedSender<executor::Job>, job: executor::Job) {
    if let Err(mpsc::error::SendError(job)) = ready.send(job) {
        job.requeue();
    }
}

/// Fetches batches as slots free up and hands them to the decider, until shutdown.
async fn fetch_batches(shared: &Arc<Shared>, batches: mpsc::Sender<Batch>) {
    let broker = shared.client.broker();
    let max_bytes = shared.client.config().max_message_size;
    let mut backoff = Backoff::starting_at(Duration::from_millis(100));
    while let Some(reservations) = reserve(shared).await {
        tokio::select! {
            () = shared.room.wait() => {}
            () = shared.stopping.cancelled() => break,
        }
        // Read before each fetch: remote control adds, cancels, pauses and resumes queues.
        super::queues::refresh_paused(shared).await;
        let queues = &shared.queues.fetching();
        if queues.is_empty() {
            drop(reservations);
            wait_for_a_queue(shared).await;
            continue;
        }
        // Sent before the fetch: the leases it writes last at least a timeout from here.
        let asked = std::time::Instant::now();
        let startable = startable_now(shared);
        // Never cancelled: once Redis has moved messages to `unacked`, they must be handed on.
        let fetch =
            fetch_reporting_refusals(shared, queues, reservations.len(), max_bytes, startable);
        match fetch.await {
            Ok(fetched) if fetched.deliveries.is_empty() => {
                shared.health.contact();
                drop(reservations);
                let waited = tokio::select! {
                    waited = broker.wait_for_messages(queues, FETCH_WAIT) => waited,
                    () = shared.stopping.cancelled() => Ok(()),
                };
                if let Err(e) = waited {
                    pause_after_error(shared, &e, &mut backoff).await;
                }
            }
            Ok(fetched) => {
                shared.health.contact();
                backoff.reset();
                shared.client.clock().observe(fetched.now);
                shared
                    .held
                    .add(fetched.deliveries.iter().map(|d| d.tag.clone()), asked);
                let mut reservations = reservations;
                // Slots the fetch did not fill are free for the next one at once.
                reservations.truncate(fetched.deliveries.len());
                let batch = Batch {
                    start_marked: startable.min(fetched.deliveries.len()),
                    deliveries: fetched.deliveries,
                    reservations,
                    now: fetched.now,
                };
                if batches.send(batch).await.is_err() {
                    tracing::error!(
                        "the consumer's decider stopped; messages stay in unacked for recovery"
                    );
                    return;
                }
            }
            Err(e) => pause_after_error(shared, &e, &mut backoff).await,
        }
    }
}

/// Waits a fetch's length while every queue is cancelled or paused, to look again. Not a
/// stall: like waiting for a slot, the worker has nothing it may fetch.
async fn wait_for_a_queue(shared: &Shared) {
    shared.health.waiting_for_slot(true);
    tokio::select! {
        () = tokio::time::sleep(FETCH_WAIT) => {}
        () = shared.stopping.cancelled() => {}
    }
    shared.health.waiting_for_slot(false);
}

/// How many messages fetched now would start at once: idle execution slots that no message
/// already here waits for (one fetched earlier, or finished and not yet acknowledged, which
/// errs on the side of too few). The fetch marks that many started itself, sparing their
/// starts a round trip (see `start_marks`).
fn startable_now(shared: &Shared) -> usize {
    let idle = shared.execution_slots.available_permits();
    let busy = shared.pool.size().saturating_sub(idle);
    let waiting = shared.held.len().saturating_sub(busy);
    idle.saturating_sub(waiting)
}

/// One fetch. The messages it refused are already dead-lettered; they are logged, and a
/// FAILURE is stored for each whose task id the fetch found, before the rest is handed on.
async fn fetch_reporting_refusals(
    shared: &Shared,
    queues: &[String],
    max: usize,
    max_bytes: usize,
    mark_started: usize,
) -> crate::Result<Fetched> {
    let mut fetched = shared
        .client
        .broker()
        .fetch_marking(queues, max, max_bytes, mark_started)
        .await?;
    if !fetched.refused.is_empty() {
        report_refused(shared, std::mem::take(&mut fetched.refused)).await;
    }
    Ok(fetched)
}

/// Logs messages the fetch refused and stores their callers' FAILURE. Not retried: the
/// message is safe in the dead-letter list with its reason whatever happens here.
async fn report_refused(shared: &Shared, refused: Vec<RefusedMessage>) {
    let mut records = Vec::new();
    for RefusedMessage { queue, refusal } in &refused {
        shared.metrics.dead_lettered("");
        shared.dead_letter_log.log(|| {
            tracing::error!(
                %queue, id = refusal.task_id().unwrap_or(UNREADABLE_ID), reason = %refusal,
                "message refused at fetch: dead-lettered"
            )
        });
        records.extend(failure_record(refusal));
    }
    if records.is_empty() {
        return;
    }
    if let Err(e) = shared.client.backend().store(&records).await {
        tracing::error!(error = %e, count = records.len(), "cannot store the FAILURE of refused messages; they are in the dead-letter list");
    }
}

/// The FAILURE record telling a refused message's caller why, when its task id is known.
fn failure_record(refusal: &DecodeError) -> Option<ResultMeta> {
    refusal
        .task_id()
        .map(|id| ResultMeta::failure(id, &refusal.failure()))
}

/// How logs show the task id of a refused message whose id cannot be read.
const UNREADABLE_ID: &str = "(unreadable)";

async fn pause_after_error(shared: &Shared, error: &crate::Error, backoff: &mut Backoff) {
    shared.metrics.broker_error();
    let wait = backoff.next_delay();
    tracing::error!(error = %error, "cannot fetch from the broker; retrying in {wait:?}");
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = shared.stopping.cancelled() => {}
    }
}

/// Waits for at least one free reservation slot and takes up to [`MAX_FETCH`]; `None` on
/// shutdown.
async fn reserve(shared: &Shared) -> Option<Vec<OwnedSemaphorePermit>> {
    // Checked first: a free slot must not keep a stopping consumer fetching (and, since its
    // wait returns at once when stopping, spinning on the broker).
    if shared.stopping.is_cancelled() {
        return None;
    }
    let first = match shared.reservation_slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            shared.health.waiting_for_slot(true);
            let permit = tokio::select! {
                permit = shared.reservation_slots.clone().acquire_owned() => permit.ok(),
                () = shared.stopping.cancelled() => None,
            };
            shared.health.waiting_for_slot(false);
            permit?
        }
    };
    let mut permits = vec![first];
    while permits.len() < MAX_FETCH {
        match shared.reservation_slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// Decides one fetched message's fate: run it (to the dispatcher, in order), park it until
/// its ETA, or settle it at once (refused, expired, poison, unknown task). A job of a
/// rate-limited task goes to `limited` instead, to be given its turn with the rest of its
/// batch.
async fn decide(
    shared: &Arc<Shared>,
    completions: &mpsc::UnboundedSender<Completion>,
    ready: &mpsc::UnboundedSender<executor::Job>,
    fetched: Arrival,
    limited: &mut Vec<executor::Job>,
) {
    let Arrival {
        delivery,
        reservation,
        now,
        start_marked,
    } = fetched;
    let settle_with = |delivery, record, action, reservation, follow_up, unique| {
        let _ = completions.send(Completion {
            delivery,
            record,
            action,
            reservation,
            follow_up,
            unique,
        });
    };
    let max_bytes = shared.client.config().max_message_size;
    let message = match TaskMessage::decode_limited(&delivery.raw, max_bytes) {
        Ok(message) => message,
        Err(refusal) => {
            shared.dead_letter_log.log(|| {
                tracing::error!(
                    queue = %delivery.queue, id = refusal.task_id().unwrap_or(UNREADABLE_ID),
                    reason = %refusal, "message refused: FAILURE stored if its id is known, dead-lettered"
                )
            });
            let record = failure_record(&refusal);
            let reason = format!("undecodable message: {refusal}");
            let dead = Action::DeadLetter(reason);
            return settle_with(delivery, record, dead, reservation, None, None);
        }
    };
    let unique = UniqueLock::of(&message);
    let settle = |delivery, record, action, reservation| {
        settle_with(delivery, record, action, reservation, None, unique.clone());
    };
    if message.expires.is_some_and(|t| timestamp(t) <= now) {
        tracing::info!(task = %message.task, id = %message.id, "task expired before it could run: revoked");
        shared.metrics.settled_unrun(&message.task, Ending::Revoked);
        let expired = TaskFailure::revoked("expired");
        let record = ResultMeta::failure(&message.id, &expired);
        // Its chord counts it as revoked, as Celery's does; its errbacks are not called.
        let follow_up = FollowUp::after(&message, Ended::Failed(expired));
        return settle_with(
            delivery,
            Some(record),
            Action::Ack,
            reservation,
            follow_up,
            unique,
        );
    }
    if message.crashes >= shared.config().max_recoveries {
        // It keeps killing (or freezing) the workers that run it: stop the crash loop.
        tracing::error!(task = %message.task, id = %message.id, crashes = message.crashes, "poison message: dead-lettered");
        let failure = TaskFailure::worker_lost(message.crashes);
        let reason = format!("{}: {}", failure.exc_type(), failure.message());
        let record = ResultMeta::failure(&message.id, &failure);
        let follow_up = FollowUp::after(&message, Ended::Failed(failure));
        return settle_with(
            delivery,
            Some(record),
            Action::DeadLetter(reason),
            reservation,
            follow_up,
            unique,
        );
    }
    if let Some(eta) = message.eta.map(timestamp).filter(|eta| *eta > now) {
        if park(shared, &delivery, eta).await {
            shared.requests.schedule(&message, eta);
        }
        return; // the reservation is released: the message waits in Redis, not here
    }
    let Some(entry) = registry::lookup(&message.task) else {
        return unknown_task(shared, delivery, reservation, &message, now, settle).await;
    };
    shared.metrics.received(entry.name);
    events::task(shared, "task-received", &message.id, || {
        events::received_fields(&message)
    });
    let job = executor::Job {
        shared: shared.clone(),
        entry,
        message,
        delivery,
        reservation,
        completions: completions.clone(),
        start_marked,
        turn: None,
        fetched: std::time::Instant::now(),
    };
    if shared.revoked.contains(&job.message.id) {
        // Revoked by remote control, e.g. while its ETA was pending.
        return job.discard_revoked();
    }
    shared.requests.reserve(&job.delivery.raw);
    if rate_limits::applies(shared, entry.name) {
        limited.push(job);
    } else {
        hand_over(ready, job);
    }
}

/// A task this worker does not know: another worker (Python, or a newer deploy) may. It is
/// put back with backoff a few times, then failed as `NotRegistered` and dead-lettered.
async fn unknown_task(
    shared: &Shared,
    delivery: Delivery,
    reservation: OwnedSemaphorePermit,
    message: &TaskMessage,
    now: f64,
    settle: impl FnOnce(Delivery, Option<ResultMeta>, Action, OwnedSemaphorePermit),
) {
    let attempt = message.unknown_attempts;
    if attempt < shared.config().unknown_task_retries {
        let marked = with_header(&delivery.raw, header::TASKQ_UNKNOWN_ATTEMPTS, attempt + 1);
        if let Ok(raw) = marked {
            let delay = f64::from(1u32 << attempt.min(10));
            tracing::warn!(
                task = %message.task, id = %message.id,
                "task not registered here; put back for another worker, retry {} of {} in {delay} s",
                attempt + 1, shared.config().unknown_task_retries
            );
            drop(reservation);
            let delivery = Delivery {
                raw: raw.into(),
                ..delivery
            };
            park(shared, &delivery, now + delay).await;
            return;
        }
    }
    tracing::error!(
        task = %message.task, id = %message.id,
        "received a task that is not registered: {}", TaskFailure::NOT_REGISTERED_HINT
    );
    let record = ResultMeta::failure(&message.id, &TaskFailure::not_registered(&message.task));
    let reason = format!("task not registered: {}", message.task);
    settle(
        delivery,
        Some(record),
        Action::DeadLetter(reason),
        reservation,
    );
}

/// Parks a message until its ETA; whether it did. If parking fails the message stays unacked
/// in Redis (it is never lost) and is logged.
async fn park(shared: &Shared, delivery: &Delivery, eta: f64) -> bool {
    match shared.client.broker().defer(delivery, eta).await {
        Ok(()) => {
            shared.held.remove([&delivery.tag]);
            shared.parked.notify_one();
            true
        }
        Err(e) => {
            tracing::error!(error = %e, tag = %delivery.tag, "cannot park an ETA message; it stays unacknowledged");
            false
        }
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}
