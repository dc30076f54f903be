//! The tasks running right now (for `inspect active` and `revoke --terminate`) and the count
//! of finished tasks per name (for `inspect stats`). One mutex insert when a task starts and
//! one remove when it ends: cheap enough for the hot path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::requests::TaskInfo;
use crate::protocol::{RawJson, RawObject, TaskMessage};

/// A running task, as `inspect active` shows it.
#[derive(Debug)]
struct RunningTask {
    name: &'static str,
    info: TaskInfo,
    time_start: f64,
    /// Cancelled by `revoke(terminate=True)`.
    abort: CancellationToken,
}

#[derive(Debug, Default)]
pub(super) struct Running {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<String, RunningTask>,
    totals: BTreeMap<&'static str, u64>,
    processed: u64,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("running tasks lock")
    }

    /// Records that `message` started as task `name`; the token aborts it.
    pub(super) fn start(&self, name: &'static str, message: &TaskMessage) -> CancellationToken {
        let abort = CancellationToken::new();
        let task = RunningTask {
            name,
            info: TaskInfo::of(message),
            time_start: crate::unix_now(),
            abort: abort.clone(),
        };
        self.lock().tasks.insert(message.id.clone(), task);
        abort
    }

    /// Records that task `id` ended (whatever the outcome).
    pub(super) fn finish(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(task) = inner.tasks.remove(id) {
            *inner.totals.entry(task.name).or_default() += 1;
            inner.processed += 1;
        }
    }

    /// Aborts task `id` if it runs here; whether it did.
    pub(super) fn terminate(&self, id: &str) -> bool {
        match self.lock().tasks.get(id) {
            Some(task) => {
                task.abort.cancel();
                true
            }
            None => false,
        }
    }

    /// How many tasks run now.
    pub(super) fn active_count(&self) -> usize {
        self.lock().tasks.len()
    }

    /// How many tasks finished since the worker started.
    pub(super) fn processed(&self) -> u64 {
        self.lock().processed
    }

    /// Finished tasks per name, as `inspect stats` shows them in `total`.
    pub(super) fn totals(&self) -> RawObject {
        let inner = self.lock();
        inner
            .totals
            .iter()
            .map(|(name, n)| (*name, RawJson::from(*n)))
            .collect()
    }

    /// Celery's `Request.info()` of every running task, for `inspect active`: the arguments
    /// exactly as sent, keyword arguments in their order.
    pub(super) fn active(&self, hostname: &str) -> Vec<RawObject> {
        let inner = self.lock();
        inner
            .tasks
            .values()
            .map(|t| t.info.info(hostname, Some(t.time_start)))
            .collect()
    }

    /// `query_task`'s request info of task `id` if it runs here.
    pub(super) fn find(&self, id: &str, hostname: &str) -> Option<RawObject> {
        let inner = self.lock();
        let task = inner.tasks.get(id)?;
        Some(task.info.info(hostname, Some(task.time_start)))
    }
}
