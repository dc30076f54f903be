//! A run's time limits, as Celery has them: the `timelimit` header `[hard, soft]`, each
//! falling back to the task's own (`#[task(time_limit, soft_time_limit)]`).
//!
//! At the soft limit the task is told (its [`SoftTimeLimit`](crate::request::SoftTimeLimit)
//! handle fires). A task that asked for the handle runs on to wind down, until the hard limit;
//! one that never asked is stopped at once and fails `SoftTimeLimitExceeded`, as an uncaught
//! exception does in Celery. At the hard limit the run is cancelled: `TimeLimitExceeded`.
//!
//! Celery's `time_limit` remote-control command replaces a task's own limits for the runs
//! that start afterwards ([`Overrides`]); a `timelimit` header still wins over them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::failure::TaskFailure;
use crate::protocol::TaskMessage;
use crate::request::{RetryAsk, SoftLimitWatch};
use crate::task::TaskOptions;

/// What a run of a task body yields: its result and what it asked about retrying.
pub(super) type Outcome = (Result<crate::protocol::RawJson, TaskFailure>, RetryAsk);

/// The limits of one run, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TimeLimits {
    pub(super) hard: Option<f64>,
    pub(super) soft: Option<f64>,
}

impl TimeLimits {
    /// The message's limits, else the task's. A soft limit at or past the hard one could never
    /// fire first, so it is dropped (Celery's hard limit wins the same way).
    pub(super) fn of(message: &TaskMessage, options: &TaskOptions) -> Self {
        let positive = |secs: Option<f64>| secs.filter(|s| *s > 0.0 && s.is_finite());
        let hard = positive(message.time_limit()).or(positive(options.time_limit_secs));
        let soft = positive(message.soft_time_limit).or(positive(options.soft_time_limit_secs));
        let soft = soft.filter(|soft| hard.is_none_or(|hard| *soft < hard));
        Self { hard, soft }
    }

    /// The watch to hand the task, when it has a soft limit.
    pub(super) fn soft_watch(&self) -> Option<SoftLimitWatch> {
        self.soft
            .map(|secs| SoftLimitWatch::new(Duration::from_secs_f64(secs)))
    }
}

/// A task's limits as set by the `time_limit` command, by task name: `(hard, soft)`, either
/// `None` to run without that limit, as Celery sets `Task.time_limit` and
/// `Task.soft_time_limit` to what the command carries.
#[derive(Debug, Default)]
pub(super) struct Overrides(Mutex<HashMap<String, HardSoft>>);

/// A hard and a soft limit in seconds, either `None` for none.
type HardSoft = (Option<f64>, Option<f64>);

impl Overrides {
    /// Task `name` runs with these limits from now on.
    pub(super) fn set(&self, name: &str, hard: Option<f64>, soft: Option<f64>) {
        let mut overrides = self.0.lock().expect("time limits lock");
        overrides.insert(name.to_owned(), (hard, soft));
    }

    /// Task `name`'s options, with the limits the command set in place of its own.
    pub(super) fn options(&self, name: &str, options: TaskOptions) -> TaskOptions {
        let overrides = self.0.lock().expect("time limits lock");
        let Some(&(hard, soft)) = overrides.get(name) else {
            return options;
        };
        TaskOptions {
            time_limit_secs: hard,
            soft_time_limit_secs: soft,
            ..options
        }
    }
}

/// Waits for the run in `handle` under `limits`; `soft` is the watch the task was given.
/// The run is aborted when a limit stops it.
pub(super) async fn enforce(
    handle: &mut JoinHandle<Outcome>,
    limits: TimeLimits,
    soft: Option<&SoftLimitWatch>,
) -> Result<Outcome, tokio::task::JoinError> {
    let started = Instant::now();
    if let Some(watch) = soft {
        tokio::select! {
            joined = &mut *handle => return joined,
            () = tokio::time::sleep_until(started + watch.limit()) => {}
        }
        watch.fire();
        if !watch.watched() {
            handle.abort();
            let secs = watch.limit().as_secs_f64();
            return Ok((
                Err(TaskFailure::soft_time_limit_exceeded(secs)),
                RetryAsk::Unset,
            ));
        }
        tracing::warn!(
            "soft time limit ({:?}) exceeded; the task watches it and winds down",
            watch.limit()
        );
    }
    let Some(secs) = limits.hard else {
        return handle.await;
    };
    match tokio::time::timeout_at(started + Duration::from_secs_f64(secs), &mut *handle).await {
        Ok(joined) => joined,
        Err(_) => {
            handle.abort();
            Ok((Err(TaskFailure::time_limit_exceeded(secs)), RetryAsk::Unset))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewMessage;

    fn limits(header: (Option<f64>, Option<f64>), task: TaskOptions) -> TimeLimits {
        let mut message = NewMessage::new("t", "id");
        message.time_limit = header;
        let decoded = TaskMessage::decode(&message.encode("celery").unwrap()).unwrap();
        TimeLimits::of(&decoded, &task)
    }

    #[test]
    fn the_header_wins_and_each_limit_falls_back_to_the_task() {
        let task = TaskOptions::new()
            .time_limit_secs(30.0)
            .soft_time_limit_secs(20.0);
        let both = limits((Some(10.0), Some(1.0)), task);
        assert_eq!((both.hard, both.soft), (Some(10.0), Some(1.0)));
        let soft_only = limits((None, Some(5.0)), task);
        assert_eq!((soft_only.hard, soft_only.soft), (Some(30.0), Some(5.0)));
        let none = limits((None, None), TaskOptions::new());
        assert_eq!((none.hard, none.soft), (None, None));
    }

    #[test]
    fn a_changed_limit_replaces_the_tasks_own_and_the_header_still_wins() {
        let overrides = Overrides::default();
        let task = TaskOptions::new().time_limit_secs(30.0);
        overrides.set("t", Some(2.0), None);
        let changed = limits((None, None), overrides.options("t", task));
        assert_eq!((changed.hard, changed.soft), (Some(2.0), None));
        let header = limits((Some(9.0), None), overrides.options("t", task));
        assert_eq!(header.hard, Some(9.0));
        let other = overrides.options("other", task);
        assert_eq!(other.time_limit_secs, Some(30.0));
    }

    #[test]
    fn a_soft_limit_not_below_the_hard_one_is_dropped() {
        let late = limits((Some(5.0), Some(5.0)), TaskOptions::new());
        assert_eq!((late.hard, late.soft), (Some(5.0), None));
        let alone = limits((None, Some(2.0)), TaskOptions::new());
        assert_eq!((alone.hard, alone.soft), (None, Some(2.0)));
    }
}
