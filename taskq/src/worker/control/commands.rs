//! The commands that change the worker (`celery control …`): time limits, its pool, the
//! queues it consumes, and stopping it. Replies and their texts are Celery 5.6's
//! (`celery/worker/control.py`); bad arguments get an `{"error": …}` naming what was wrong.

use serde_json::Value;

use super::super::Shared;
use crate::protocol::{raw_object, RawObject};
use crate::registry;

/// `{"ok": text}`.
fn ok(text: impl Into<String>) -> RawObject {
    raw_object! {"ok" => text.into()}
}

/// `{"error": text}`.
fn nok(text: impl Into<String>) -> RawObject {
    raw_object! {"error" => text.into()}
}

/// `time_limit`: task `task_name` runs under `hard` and `soft` (seconds; missing or null: no
/// such limit) from its next start on, as Celery sets them on the task.
pub(super) fn time_limit(shared: &Shared, arguments: &Value) -> RawObject {
    let name = arguments.get("task_name").and_then(Value::as_str);
    let Some(entry) = name.and_then(registry::lookup) else {
        tracing::error!(
            task = name.unwrap_or("?"),
            "Change time limit attempt for unknown task"
        );
        return nok("unknown task");
    };
    let limits = (seconds(arguments, "hard"), seconds(arguments, "soft"));
    let (Ok(hard), Ok(soft)) = limits else {
        return nok(format!(
            "time_limit: hard and soft must be numbers of seconds or null, got {arguments}"
        ));
    };
    shared.time_limits.set(entry.name, hard, soft);
    tracing::info!(
        "New time limits for tasks of type {}: soft={soft:?} hard={hard:?}",
        entry.name
    );
    ok("time limits set successfully")
}

/// A limit in seconds: a positive number, or missing / null for none.
fn seconds(arguments: &Value, key: &str) -> Result<Option<f64>, ()> {
    match arguments.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|secs| *secs >= 0.0 && secs.is_finite())
            .map(|secs| (secs > 0.0).then_some(secs))
            .ok_or(()),
    }
}

/// `shutdown`: stops the worker as SIGTERM does (no new tasks, the running ones get the
/// grace period). Celery's worker raises `WorkerShutdown` and sends no reply; neither does
/// this one (the caller's dispatch leaves it unanswered).
pub(super) fn shutdown(shared: &Shared) {
    tracing::warn!("Got shutdown from remote");
    shared.stopping.cancel();
}

/// `pool_grow` / `pool_shrink`: `n` slots more or fewer (default 1), the reservations
/// following. Shrinking lets the running tasks finish: slots go as they come free.
pub(super) fn resize_pool(shared: &Shared, arguments: &Value, grow: bool) -> RawObject {
    let command = if grow { "pool_grow" } else { "pool_shrink" };
    if shared.autoscaler.is_some() {
        return nok(format!(
            "{command} is not supported with autoscale. Adjust autoscale range instead."
        ));
    }
    let n = match count(arguments, "n") {
        Ok(n) => n.unwrap_or(1),
        Err(given) => return nok(format!("{command}: n must be a whole number, got {given}")),
    };
    if grow {
        shared.pool.grow(n);
        tracing::info!(slots = shared.pool.size(), "pool grown by {n}");
        return ok("pool will grow");
    }
    let size = shared.pool.size();
    if n >= size {
        return nok(format!(
            "pool_shrink: cannot shrink by {n}: the pool has {size} slots and keeps at least one"
        ));
    }
    shared.pool.shrink(n);
    tracing::info!(slots = size - n, "pool shrinks by {n} as running tasks end");
    ok("pool will shrink")
}

/// `autoscale`: a new range for an autoscaling worker; Celery's `ValueError` otherwise.
pub(super) fn autoscale(shared: &Shared, arguments: &Value) -> RawObject {
    let Some(autoscaler) = &shared.autoscaler else {
        return nok("ValueError('Autoscale not enabled')");
    };
    let (max, min) = match (count(arguments, "max"), count(arguments, "min")) {
        (Ok(max), Ok(min)) => (max, min),
        (Err(given), _) | (_, Err(given)) => {
            return nok(format!(
                "autoscale: max and min must be whole numbers, got {given}"
            ))
        }
    };
    if max == Some(0) {
        return nok("autoscale: max must be at least 1");
    }
    let (max, min) = autoscaler.update(&shared.pool, max, min);
    ok(format!("autoscale now max={max} min={min}"))
}

/// A count argument: a non-negative integer, or missing / null. The error is what was given.
fn count(arguments: &Value, key: &str) -> Result<Option<usize>, String> {
    match arguments.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| value.to_string()),
    }
}

/// `add_consumer`: consume `queue` too, from the next fetch on. Celery answers before it
/// acts, so also when the queue is consumed already; so does this.
pub(super) fn add_consumer(shared: &Shared, arguments: &Value) -> RawObject {
    let Some(queue) = queue(arguments) else {
        return nok("add_consumer needs a queue name");
    };
    if shared.queues.add(queue) {
        tracing::info!(%queue, "started consuming from a queue (remote control)");
    }
    ok(format!("add consumer {queue}"))
}

/// `cancel_consumer`: stop consuming `queue` from the next fetch on; what was fetched from
/// it already runs.
pub(super) fn cancel_consumer(shared: &Shared, arguments: &Value) -> RawObject {
    let Some(queue) = queue(arguments) else {
        return nok("cancel_consumer needs a queue name");
    };
    if shared.queues.cancel(queue) {
        tracing::info!(%queue, "stopped consuming from a queue (remote control)");
    }
    ok(format!("no longer consuming from {queue}"))
}

/// `pause_queue` / `resume_queue` (taskq's own): the caller recorded the change in the
/// broker's paused set already; this worker follows it at once.
pub(super) fn pause_queue(shared: &Shared, arguments: &Value, paused: bool) -> RawObject {
    let command = if paused {
        "pause_queue"
    } else {
        "resume_queue"
    };
    let Some(queue) = queue(arguments) else {
        return nok(format!("{command} needs a queue name"));
    };
    shared.queues.set_paused(queue, paused);
    let word = if paused { "paused" } else { "resumed" };
    tracing::info!(%queue, "queue {word} (remote control)");
    ok(format!("queue {queue} {word}"))
}

/// The non-empty `queue` argument.
fn queue(arguments: &Value) -> Option<&str> {
    arguments
        .get("queue")
        .and_then(Value::as_str)
        .filter(|q| !q.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn limits_are_seconds_or_none() {
        let args = json!({"hard": 2.5, "soft": null, "bad": "x", "neg": -1});
        assert_eq!(seconds(&args, "hard"), Ok(Some(2.5)));
        assert_eq!(seconds(&args, "soft"), Ok(None));
        assert_eq!(seconds(&args, "missing"), Ok(None));
        assert!(seconds(&args, "bad").is_err() && seconds(&args, "neg").is_err());
    }

    #[test]
    fn counts_are_whole_numbers() {
        let args = json!({"n": 3, "half": 1.5, "text": "2", "neg": -1});
        assert_eq!(count(&args, "n"), Ok(Some(3)));
        assert_eq!(count(&args, "none"), Ok(None));
        assert_eq!(count(&args, "half"), Err("1.5".to_owned()));
        assert!(count(&args, "text").is_err() && count(&args, "neg").is_err());
    }

    #[test]
    fn queue_names_must_be_given() {
        assert_eq!(queue(&json!({"queue": "q2"})), Some("q2"));
        assert_eq!(queue(&json!({"queue": ""})), None);
        assert_eq!(queue(&json!({})), None);
    }
}
