//! The rate limits this worker applies, by task name: each task's `rate_limit` option, changed
//! at run time by Celery's `rate_limit` remote-control command. The turns themselves are
//! taken from the broker, shared by every worker (see [`crate::rate_limit`]).

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::Value;
use tokio::time::Instant;

use super::executor::Job;
use super::Shared;
use crate::protocol::{raw_object, RawObject};
use crate::rate_limit::RateLimit;
use crate::registry;

/// Task name → its limit; tasks without one are absent.
#[derive(Debug)]
pub(super) struct RateLimits(RwLock<HashMap<String, RateLimit>>);

impl RateLimits {
    /// The limits the registered tasks declare.
    pub(super) fn declared() -> Self {
        let limits = registry::all()
            .iter()
            .filter_map(|entry| Some((entry.name.to_owned(), entry.options.rate_limit?)))
            .collect();
        Self(RwLock::new(limits))
    }

    /// The limit of `task`, if it has one.
    pub(super) fn get(&self, task: &str) -> Option<RateLimit> {
        let limits = self.0.read().unwrap_or_else(|e| e.into_inner());
        if limits.is_empty() {
            return None; // the usual case, on the hot path
        }
        limits.get(task).copied()
    }

    /// Sets (or, with `None`, lifts) the limit of `task`.
    fn set(&self, task: &str, limit: Option<RateLimit>) {
        let mut limits = self.0.write().unwrap_or_else(|e| e.into_inner());
        match limit {
            Some(limit) => limits.insert(task.to_owned(), limit),
            None => limits.remove(task),
        };
    }
}

/// Whether runs of `task` take turns.
pub(super) fn applies(shared: &Shared, task: &str) -> bool {
    shared.rate_limits.get(task).is_some()
}

/// Gives each job of a rate-limited task its turn, taking the turns of each task in one step
/// (in the jobs' order), and returns the jobs in the order given. A job whose turn is now gets
/// none. If the broker cannot give turns, the runs are not held back (and that is logged):
/// the limit is a promise to a third party, not worth a stuck worker. A job that waits for
/// its turn loses the start mark its fetch gave it (see [`take_back_early_marks`]).
pub(super) async fn give_turns(shared: &Shared, mut jobs: Vec<Job>) -> Vec<Job> {
    let mut tasks: Vec<&'static str> = jobs.iter().map(|job| job.entry.name).collect();
    tasks.dedup();
    tasks.sort_unstable();
    tasks.dedup();
    for task in tasks {
        let Some(limit) = shared.rate_limits.get(task) else {
            continue; // lifted since the job was decided
        };
        let mine: Vec<&mut Job> = jobs.iter_mut().filter(|j| j.entry.name == task).collect();
        let asked = Instant::now();
        let first = shared
            .client
            .broker()
            .take_turns(task, limit.interval(), mine.len() as u32)
            .await;
        let first = match first {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, %task, "cannot take rate-limit turns; the tasks run without waiting");
                continue;
            }
        };
        for (n, job) in mine.into_iter().enumerate() {
            let wait = first + limit.interval() * n as u32;
            job.turn = (!wait.is_zero()).then(|| asked + wait);
        }
    }
    take_back_early_marks(shared, &mut jobs).await;
    jobs
}

/// Takes back the start marks of jobs that wait for their turn. A fetch marks started the
/// messages that have an idle slot to start in (sparing each start a round trip), but a
/// rate-limited one may wait seconds: were its worker lost meanwhile, its recovery would
/// count a crash of a task that never ran (and enough of those dead-letter it). The
/// dispatcher marks it again when its turn comes. If the marks cannot be taken back, they
/// stay (logged): the worst is a crash counted too many.
async fn take_back_early_marks(shared: &Shared, jobs: &mut [Job]) {
    let waiting = |job: &Job| job.start_marked && job.turn.is_some();
    let tags: Vec<String> = jobs
        .iter()
        .filter(|job| waiting(job))
        .map(|job| job.delivery.tag.clone())
        .collect();
    if tags.is_empty() {
        return;
    }
    match shared.client.broker().unmark_started(&tags).await {
        Ok(()) => {
            for job in jobs.iter_mut().filter(|job| waiting(job)) {
                job.start_marked = false;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, count = tags.len(), "cannot take back the start marks of rate-limited tasks waiting for their turn")
        }
    }
}

/// Celery's `rate_limit` command: `{"task_name", "rate_limit"}`, the rate in Celery's syntax
/// (an empty or zero rate lifts the limit). Answers as Celery's worker does.
pub(super) fn command(shared: &Shared, arguments: &Value) -> RawObject {
    let task = arguments
        .get("task_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let limit = match arguments.get("rate_limit") {
        Some(Value::String(text)) => RateLimit::parse(text),
        Some(Value::Number(n)) => RateLimit::parse(&n.to_string()),
        None | Some(Value::Null) => Ok(None),
        Some(other) => RateLimit::parse(&other.to_string()),
    };
    let limit = match limit {
        Ok(limit) => limit,
        Err(e) => return raw_object! {"error" => format!("Invalid rate limit string: {e}")},
    };
    if registry::lookup(task).is_none() {
        tracing::error!(%task, "rate limit attempt for unknown task");
        return raw_object! {"error" => "unknown task"};
    }
    shared.rate_limits.set(task, limit);
    match limit {
        None => {
            tracing::info!(%task, "rate limits disabled for tasks of type {task}");
            raw_object! {"ok" => "rate limit disabled successfully"}
        }
        Some(limit) => {
            tracing::info!(%task, %limit, "new rate limit for tasks of type {task}: {limit} (fleet-wide)");
            raw_object! {"ok" => "new rate limit set successfully"}
        }
    }
}
