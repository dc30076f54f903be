//! Runs one task in its execution slot: the body runs in its own tokio task (so a panic is
//! caught and a time limit can cancel it), and the outcome goes to the completer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinError;

use super::completer::{Action, Completion};
use super::Shared;
use crate::broker::Delivery;
use crate::failure::TaskFailure;
use crate::message::TaskMessage;
use crate::registry::TaskEntry;
use crate::state::ResultMeta;

pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) entry: &'static TaskEntry,
    pub(super) message: TaskMessage,
    pub(super) delivery: Delivery,
    pub(super) reservation: OwnedSemaphorePermit,
    pub(super) completions: mpsc::UnboundedSender<Completion>,
}

impl Job {
    /// Runs the task in the execution slot the dispatcher gave it.
    pub(super) async fn run(self, _slot: OwnedSemaphorePermit) {
        let (name, id) = (self.entry.name, self.message.id.clone());
        tracing::info!("Task {name}[{id}] received");
        if self.shared.settings.track_started {
            self.store_started().await;
        }
        let started = Instant::now();
        let Some(outcome) = self.execute().await else {
            tracing::warn!("Task {name}[{id}] cancelled by shutdown; put back in its queue");
            return self.finish(None, Action::Requeue);
        };
        let secs = started.elapsed().as_secs_f64();
        let record = match outcome {
            Ok(value) => {
                tracing::info!("Task {name}[{id}] succeeded in {secs:.6}s: {value}");
                ResultMeta::success(&id, value)
            }
            Err(failure) => {
                tracing::error!("Task {name}[{id}] failed in {secs:.6}s: {failure}");
                ResultMeta::failure(&id, &failure)
            }
        };
        let record = record
            .with_parent(self.message.parent_id.clone())
            .with_group(self.message.group.clone());
        let keep = !(self.message.ignore_result == Some(true) || self.entry.options.ignore_result);
        self.finish(keep.then_some(record), Action::Ack);
    }

    /// Runs the body under the time limit; `None` if shutdown cancelled it.
    async fn execute(&self) -> Option<Result<serde_json::Value, TaskFailure>> {
        let args = (self.message.args.clone(), self.message.kwargs.clone());
        let body = (self.entry.run)(args);
        let client = self.shared.client.clone();
        let mut handle = tokio::spawn(async move { client.scope(body).await });
        let limit = self
            .message
            .time_limit()
            .or(self.entry.options.time_limit_secs);
        let outcome = tokio::select! {
            joined = with_limit(&mut handle, limit) => Some(joined),
            () = self.shared.hard_stop.cancelled() => None,
        };
        handle.abort();
        outcome
    }

    async fn store_started(&self) {
        let record = ResultMeta::started(&self.message.id, &self.shared.settings.hostname);
        if let Err(e) = self.shared.client.backend().store(&[record]).await {
            tracing::warn!(error = %e, id = %self.message.id, "cannot store the STARTED state");
        }
    }

    /// Puts the message back unstarted (shutdown before it got a slot).
    pub(super) fn requeue(self) {
        self.finish(None, Action::Requeue);
    }

    fn finish(self, record: Option<ResultMeta>, action: Action) {
        let _ = self.completions.send(Completion {
            delivery: self.delivery,
            record,
            action,
            reservation: self.reservation,
        });
    }
}

async fn with_limit(
    handle: &mut tokio::task::JoinHandle<Result<serde_json::Value, TaskFailure>>,
    limit: Option<f64>,
) -> Result<serde_json::Value, TaskFailure> {
    let Some(secs) = limit else {
        return handle.await.unwrap_or_else(|e| Err(join_failure(e)));
    };
    match tokio::time::timeout(Duration::from_secs_f64(secs), &mut *handle).await {
        Ok(joined) => joined.unwrap_or_else(|e| Err(join_failure(e))),
        Err(_) => {
            handle.abort();
            Err(TaskFailure::time_limit_exceeded(secs))
        }
    }
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
