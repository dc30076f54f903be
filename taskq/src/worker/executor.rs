//! Runs one task in its execution slot: the body runs in its own tokio task (so a panic is
//! caught and a time limit can cancel it), and the outcome goes to the completer.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinError;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::completer::{Action, Completion, UniqueLock};
use super::metrics::Ending;
use super::start_marks::PendingMark;
use super::time_limit::{self, Outcome, TimeLimits};
use super::workflow::{Ended, FollowUp};
use super::{events, lease, Shared};
use crate::broker::Delivery;
use crate::failure::TaskFailure;
use crate::protocol::edit::retry_envelope;
use crate::protocol::{raw_object, str_repr, RawJson, TaskMessage};
use crate::registry::TaskEntry;
use crate::request::{RetryAsk, StateReporter};
use crate::state::{ExtendedFields, ResultMeta, TaskState};
use crate::task::RETRY_BACKOFF_MAX_SECS;

pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) entry: &'static TaskEntry,
    pub(super) message: TaskMessage,
    pub(super) delivery: Delivery,
    pub(super) reservation: OwnedSemaphorePermit,
    pub(super) completions: mpsc::UnboundedSender<Completion>,
    /// Whether the fetch marked it started already (it came for an idle slot).
    pub(super) start_marked: bool,
    /// The rate-limit turn it waits for, if its task has a limit and the turn is not now.
    pub(super) turn: Option<tokio::time::Instant>,
    /// When it was fetched, for the time it waits to start.
    pub(super) fetched: Instant,
}

impl Job {
    /// Runs the task in the execution slot the dispatcher gave it, once its start mark
    /// (asked for while it waited for the slot) is in Redis, inside the run's [`span`].
    ///
    /// [`span`]: Self::span
    pub(super) async fn run(self, slot: OwnedSemaphorePermit, mark: PendingMark) {
        let span = self.span();
        // A disabled span (no subscriber wants it) would only cost an enter and an exit on
        // every poll: the run goes without it then.
        if span.is_disabled() {
            self.run_in_span(slot, mark).await;
        } else {
            self.run_in_span(slot, mark).instrument(span).await;
        }
    }

    /// The `task` span of this run: the worker's log lines about it and the task's own
    /// events fall inside it, so a subscriber can tie them to the call (and a tracer
    /// export the run). At INFO, the level of the worker's own lines about a run; with no
    /// subscriber interested it is a disabled span, which costs a callsite check.
    fn span(&self) -> tracing::Span {
        let message = &self.message;
        let span = tracing::info_span!(
            "task",
            name = self.entry.name,
            id = %message.id,
            retries = message.retries,
            queue = %message.routing_key,
        );
        #[cfg(feature = "opentelemetry")]
        if let Some(headers) = &message.trace_context {
            crate::otel::set_parent(&span, headers);
        }
        span
    }

    async fn run_in_span(self, _slot: OwnedSemaphorePermit, mark: PendingMark) {
        // It has its slot: no longer reserved, whether it starts or not.
        self.shared.requests.unreserve(&self.delivery.raw);
        let (name, id) = (self.entry.name, self.message.id.clone());
        // Awaited first, so that no settling of the message can overtake its mark. And before
        // the lease is checked: a lease this worker still holds afterwards proves the mark
        // landed while the message was its own, not on a recovered one.
        if let Err(e) = mark.landed().await {
            tracing::warn!(error = %e, "cannot mark a task as started; a crash now is not counted against it");
        }
        if self.shared.revoked.contains(&id) {
            // Revoked while it waited for a slot.
            return self.discard_revoked();
        }
        if !lease::still_ours(&self.shared, &self.delivery.tag).await {
            tracing::warn!(
                "Task {name}[{id}] not started: its lease lapsed while this worker was frozen or \
                 cut off from Redis, so the message is another worker's to run"
            );
            return self.finish(None, Action::Relinquish);
        }
        tracing::info!("Task {name}[{id}] received");
        let abort = self.shared.running_tasks.start(name, &self.message);
        self.shared.metrics.started(name, self.fetched.elapsed());
        events::task(&self.shared, "task-started", &id, || raw_object! {});
        if self.shared.config().track_started {
            self.store_started().await;
        }
        let started = Instant::now();
        let outcome = self.execute(&abort).await;
        self.shared.running_tasks.finish(&id);
        let ran = started.elapsed();
        let Some((outcome, retry_ask)) = outcome else {
            self.shared.metrics.finished(name, ran, None);
            tracing::warn!("Task {name}[{id}] cancelled by shutdown; put back in its queue");
            return self.finish(None, Action::Requeue);
        };
        let secs = ran.as_secs_f64();
        if let Err(failure) = &outcome {
            if let Some((envelope, eta)) = self.retry_plan(failure, retry_ask) {
                self.shared.metrics.finished(name, ran, None);
                self.shared.metrics.retried(name);
                return self.schedule_retry(failure, retry_ask, envelope, eta);
            }
        }
        let ended = match &outcome {
            Ok(_) => Ending::Succeeded,
            Err(failure) if failure.is_revoked() => Ending::Revoked,
            Err(_) => Ending::Failed,
        };
        self.shared.metrics.finished(name, ran, Some(ended));
        let follow_up = self.follow_up(&outcome);
        let record = self.with_call_ids(self.record(outcome, secs));
        let keep = !(self.message.ignore_result == Some(true) || self.entry.options.ignore_result);
        self.finish_continuing(keep.then_some(record), Action::Ack, follow_up);
    }

    /// What follows the run in its workflow; `None` (and no copy of the result) for a plain
    /// call.
    fn follow_up(&self, outcome: &Result<RawJson, TaskFailure>) -> Option<Box<FollowUp>> {
        if self.message.workflow.is_empty() {
            return None;
        }
        let ended = match outcome {
            Ok(value) => Ended::Succeeded(value.clone()),
            Err(failure) => Ended::Failed(failure.clone()),
        };
        FollowUp::after(&self.message, ended)
    }

    /// The result record of a finished run, logged and announced as an event.
    fn record(&self, outcome: Result<RawJson, TaskFailure>, secs: f64) -> ResultMeta {
        let (name, id) = (self.entry.name, self.message.id.as_str());
        match outcome {
            Ok(value) => {
                tracing::info!(
                    "Task {name}[{id}] succeeded in {secs:.6}s: {}",
                    value.compact()
                );
                events::task(
                    &self.shared,
                    "task-succeeded",
                    id,
                    || raw_object! {"result" => events::result_repr(&value), "runtime" => secs},
                );
                ResultMeta::success(id, value)
            }
            Err(failure) if failure.is_revoked() => {
                tracing::warn!("Task {name}[{id}] terminated (revoked) after {secs:.6}s");
                events::task(
                    &self.shared,
                    "task-revoked",
                    id,
                    || raw_object! {"terminated" => true, "signum" => 15, "expired" => false},
                );
                ResultMeta::failure(id, &failure)
            }
            Err(failure) => {
                tracing::error!("Task {name}[{id}] failed in {secs:.6}s: {failure}");
                events::task(
                    &self.shared,
                    "task-failed",
                    id,
                    || raw_object! {"exception" => exception_repr(&failure), "traceback" => failure.traceback()},
                );
                ResultMeta::failure(id, &failure)
            }
        }
    }

    /// The next attempt of a failed run and when it is due, if the task retries: its own code
    /// failed, it has retries left, and it asked for a retry ([`retry_in`]) or its
    /// `retry_if` (if any) matched the error. An asked-for retry waits its countdown; others
    /// wait a delay that doubles from `retry_backoff` up to [`RETRY_BACKOFF_MAX_SECS`], with
    /// jitter between half and all of it.
    ///
    /// [`retry_in`]: crate::request::retry_in
    fn retry_plan(&self, failure: &TaskFailure, ask: RetryAsk) -> Option<(String, f64)> {
        let done = self.message.retries;
        let options = &self.entry.options;
        if !failure.raised_by_task() || done >= options.retry_limit(ask) {
            return None;
        }
        let delay = match ask {
            RetryAsk::In(countdown) => countdown.as_secs_f64(),
            RetryAsk::Matched(false) => return None,
            RetryAsk::Unset if options.retry_if => return None,
            RetryAsk::Matched(true) | RetryAsk::Unset => {
                let ceiling = options.retry_backoff_secs * 2f64.powi(done.min(30) as i32);
                ceiling.min(RETRY_BACKOFF_MAX_SECS) * (0.5 + 0.5 * random_fraction())
            }
        };
        let eta = self.shared.broker_now() + delay;
        match retry_envelope(&self.delivery.raw, done + 1, eta, &self.message.id) {
            Ok(envelope) => Some((envelope, eta)),
            Err(reason) => {
                tracing::error!(id = %self.message.id, %reason, "cannot build the retry message");
                None
            }
        }
    }

    /// Stores RETRY and hands the next attempt to the completer.
    fn schedule_retry(self, failure: &TaskFailure, ask: RetryAsk, envelope: String, eta: f64) {
        let (name, id) = (self.entry.name, self.message.id.as_str());
        let attempt = self.message.retries + 1;
        let delay = (eta - self.shared.broker_now()).max(0.0);
        tracing::warn!(
            "Task {name}[{id}] retry {attempt} of {} in {delay:.3}s: {failure}",
            self.entry.options.retry_limit(ask)
        );
        events::task(
            &self.shared,
            "task-retried",
            id,
            || raw_object! {"exception" => exception_repr(failure), "traceback" => failure.traceback()},
        );
        let record = ResultMeta::retry(id, failure).with_parent(self.message.parent_id.clone());
        let keep = !(self.message.ignore_result == Some(true) || self.entry.options.ignore_result);
        self.finish(keep.then_some(record), Action::Retry { envelope, eta });
    }

    /// Settles a task revoked before it started: REVOKED "revoked", acknowledged.
    pub(super) fn discard_revoked(self) {
        let id = &self.message.id;
        tracing::info!("Discarding revoked task: {}[{id}]", self.entry.name);
        self.shared
            .metrics
            .settled_unrun(self.entry.name, Ending::Revoked);
        events::task(
            &self.shared,
            "task-revoked",
            id,
            || raw_object! {"terminated" => false, "signum" => (), "expired" => false},
        );
        let revoked = TaskFailure::revoked("revoked");
        let record = ResultMeta::failure(id, &revoked);
        let follow_up = FollowUp::after(&self.message, Ended::Failed(revoked));
        self.finish_continuing(Some(record), Action::Ack, follow_up);
    }

    /// Runs the body under its time limits; `None` if shutdown cancelled it, REVOKED
    /// "terminated" if `abort` fired.
    async fn execute(&self, abort: &CancellationToken) -> Option<Outcome> {
        let args = (self.message.args.clone(), self.message.kwargs.clone());
        let body = (self.entry.run)(args);
        let client = self.shared.client.clone();
        let request = crate::request::Request {
            id: self.message.id.clone(),
            task: self.message.task.clone(),
            retries: self.message.retries,
            recoveries: self.message.recoveries,
        };
        let options = self
            .shared
            .time_limits
            .options(self.entry.name, self.entry.options);
        let limits = TimeLimits::of(&self.message, &options);
        let soft = limits.soft_watch();
        let scoped = crate::request::scope(request, soft.clone(), self.state_reporter(), body);
        // The body is a tokio task of its own, which does not inherit the caller's span:
        // it is given the run's span (current here), so the task's own events are inside it.
        let body = async move { client.scope(scoped).await };
        let span = tracing::Span::current();
        let mut handle = if span.is_disabled() {
            tokio::spawn(body)
        } else {
            tokio::spawn(body.instrument(span))
        };
        let outcome = tokio::select! {
            joined = time_limit::enforce(&mut handle, limits, soft.as_ref()) => {
                Some(joined.unwrap_or_else(|e| (Err(join_failure(e)), RetryAsk::Unset)))
            }
            () = abort.cancelled() => Some((Err(TaskFailure::revoked("terminated")), RetryAsk::Unset)),
            () = self.shared.hard_stop.cancelled() => None,
        };
        handle.abort();
        outcome
    }

    /// Where the task's own state reports go: this worker's result store, each report
    /// carrying what the final record will.
    fn state_reporter(&self) -> StateReporter {
        let template = ResultMeta::custom(&self.message.id, TaskState::Pending, RawJson::null());
        let template = self
            .with_call_ids(template)
            .with_extended(self.extended_fields());
        StateReporter::new(self.shared.client.backend().clone(), template)
    }

    /// `record` with the ids of the call it belongs to: its parent's and its group's.
    fn with_call_ids(&self, record: ResultMeta) -> ResultMeta {
        record
            .with_parent(self.message.parent_id.clone())
            .with_group(self.message.group.clone())
    }

    /// Celery's `result_extended` fields of this run, when the setting is on.
    fn extended_fields(&self) -> Option<ExtendedFields> {
        let message = &self.message;
        self.shared
            .config()
            .result_extended
            .then(|| ExtendedFields {
                name: Some(message.task.clone()),
                args: RawJson::from_serialize(&message.args).expect("JSON values serialize"),
                kwargs: message.kwargs.to_raw(),
                worker: Some(self.shared.settings.hostname.clone()),
                retries: Some(message.retries),
                // Python writes `None` for a message that came without a routing key.
                queue: Some(message.routing_key.clone()).filter(|key| !key.is_empty()),
            })
    }

    async fn store_started(&self) {
        let record = ResultMeta::started(&self.message.id, &self.shared.settings.hostname)
            .with_extended(self.extended_fields());
        if let Err(e) = self.shared.client.backend().store(&[record]).await {
            tracing::warn!(error = %e, id = %self.message.id, "cannot store the STARTED state");
        }
    }

    /// Puts the message back unstarted (shutdown before it got a slot).
    pub(super) fn requeue(self) {
        self.shared.requests.unreserve(&self.delivery.raw);
        self.finish(None, Action::Requeue);
    }

    /// Hands the message and its result record to the completer.
    fn finish(self, record: Option<ResultMeta>, action: Action) {
        self.finish_continuing(record, action, None);
    }

    /// Hands the message, its result record (with the `result_extended` fields, when on) and
    /// what follows the task in its workflow to the completer.
    fn finish_continuing(
        self,
        record: Option<ResultMeta>,
        action: Action,
        follow_up: Option<Box<FollowUp>>,
    ) {
        let record = record.map(|r| r.with_extended(self.extended_fields()));
        let _ = self.completions.send(Completion {
            unique: UniqueLock::of(&self.message),
            delivery: self.delivery,
            record,
            action,
            reservation: self.reservation,
            follow_up,
        });
    }
}

/// Python's `repr()` of the exception, as `task-failed` carries it: `ValueError('bad')`.
fn exception_repr(failure: &TaskFailure) -> String {
    let message = str_repr(&failure.message());
    format!("{}({message})", failure.exc_type())
}

fn join_failure(error: JoinError) -> TaskFailure {
    match error.try_into_panic() {
        Ok(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "task panicked with a non-text payload".to_owned());
            TaskFailure::panic(message)
        }
        Err(_) => TaskFailure::new(
            "TaskCancelled",
            crate::failure::RUST_EXC_MODULE,
            "the task was cancelled",
        ),
    }
}

/// A uniformly random number in [0, 1), for retry jitter.
fn random_fraction() -> f64 {
    let bits = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    );
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
