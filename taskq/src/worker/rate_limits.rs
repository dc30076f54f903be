//! The rate limits this worker applies, by task name: each task's `rate_limit` option, changed
//! at run time by Celery's `rate_limit` remote-control command. The turns themselves are
//! taken from the broker, shared by every worker (see [`crate::rate_limit`]).

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::Value;
use tokio::time::Instant;

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

/// When a run of `task` may start: at once (`None`) for a task without a limit, else at the
/// turn taken for it. If the broker cannot give a turn, the run is not held back (and that
/// is logged): the limit is a promise to a third party, not worth a stuck worker.
pub(super) async fn turn(shared: &Shared, task: &str) -> Option<Instant> {
    let limit = shared.rate_limits.get(task)?;
    let asked = Instant::now();
    match shared
        .client
        .broker()
        .take_turn(task, limit.interval())
        .await
    {
        Ok(wait) if wait.is_zero() => None,
        Ok(wait) => Some(asked + wait),
        Err(e) => {
            tracing::warn!(error = %e, %task, "cannot take a rate-limit turn; the task runs without waiting");
            None
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
