//! Per-call options for [`apply_async`](crate::Client::send): Celery's `apply_async` keywords.

use std::time::{Duration, SystemTime};

/// Options for one call of a task, overriding the task's declared defaults.
///
/// ```
/// use std::time::Duration;
/// use taskq::Options;
///
/// let options = Options::new()
///     .countdown(Duration::from_secs(10))
///     .queue("reports")
///     .priority(3)
///     .expires(Duration::from_secs(600))
///     .task_id("9b1c7a0e-0000-4000-8000-000000000001");
/// assert_eq!(options.get_queue(), Some("reports"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub(crate) task_id: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<u8>,
    pub(crate) eta: Option<SystemTime>,
    pub(crate) countdown: Option<Duration>,
    pub(crate) expires: Option<Expiry>,
    pub(crate) time_limit_secs: Option<f64>,
    pub(crate) soft_time_limit_secs: Option<f64>,
    pub(crate) ignore_result: Option<bool>,
    /// How long the call stays unique, at most.
    pub(crate) unique_for: Option<Duration>,
    /// The unique call's key, when not the default (task name and arguments).
    pub(crate) unique_key: Option<String>,
    /// Where the call sits in a workflow; set by [`crate::canvas`], not by users.
    pub(crate) placement: Placement,
}

/// A call's place in a workflow: its group, the task that sent it, and what follows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placement {
    pub(crate) group: Option<String>,
    pub(crate) group_index: Option<u32>,
    pub(crate) parent_id: Option<String>,
    pub(crate) root_id: Option<String>,
    pub(crate) workflow: crate::protocol::Workflow,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Expiry {
    After(Duration),
    At(SystemTime),
}

impl Options {
    /// No options: the task's defaults apply.
    ///
    /// ```
    /// let options = taskq::Options::new();
    /// assert_eq!(options.get_queue(), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this task id instead of a fresh UUID (the result is stored under it).
    ///
    /// It is also the idempotency key of a send. A send that fails with a timeout may still
    /// have been queued: the command can reach Redis and run there while its reply is lost.
    /// Sending again with the same id is safe when the task treats the id as its key: the
    /// result of either run is stored under the one id, and the task can look the id up
    /// (`taskq::request::current()`'s `id`) to skip work it already did. A send that fails with a
    /// dropped connection needs none of this: the client re-sends it itself, and only once
    /// it knows the message is not in Redis.
    ///
    /// ```
    /// let options = taskq::Options::new().task_id("report-42");
    /// ```
    pub fn task_id(mut self, id: impl Into<String>) -> Self {
        self.task_id = Some(id.into());
        self
    }

    /// Sends to this queue.
    ///
    /// ```
    /// let options = taskq::Options::new().queue("reports");
    /// assert_eq!(options.get_queue(), Some("reports"));
    /// ```
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Message priority 0–9; on Redis, as in Celery, **0 is served first** and 9 last.
    /// Values above 9 are clamped to 9.
    ///
    /// ```
    /// // Served before the default priority 0? No: 0 is first on Redis; 9 is last.
    /// let background = taskq::Options::new().priority(9);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority.min(9));
        self
    }

    /// Runs no earlier than `delay` from now.
    ///
    /// ```
    /// let in_ten_seconds = taskq::Options::new().countdown(std::time::Duration::from_secs(10));
    /// ```
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.countdown = Some(delay);
        self
    }

    /// Runs no earlier than `when`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let at = taskq::Options::new().eta(SystemTime::now() + Duration::from_secs(3600));
    /// ```
    pub fn eta(mut self, when: SystemTime) -> Self {
        self.eta = Some(when);
        self
    }

    /// Discards the task (stored as REVOKED, reason `expired`) if it has not started within
    /// `after` from now.
    ///
    /// ```
    /// let fresh_only = taskq::Options::new().expires(std::time::Duration::from_secs(60));
    /// ```
    pub fn expires(mut self, after: Duration) -> Self {
        self.expires = Some(Expiry::After(after));
        self
    }

    /// Like [`expires`](Self::expires), at an absolute time.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let until = taskq::Options::new().expires_at(SystemTime::now() + Duration::from_secs(60));
    /// ```
    pub fn expires_at(mut self, when: SystemTime) -> Self {
        self.expires = Some(Expiry::At(when));
        self
    }

    /// Hard time limit in seconds for this call.
    ///
    /// ```
    /// let quick = taskq::Options::new().time_limit(std::time::Duration::from_secs(5));
    /// ```
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit_secs = Some(limit.as_secs_f64());
        self
    }

    /// Soft time limit for this call (Celery's `soft_time_limit`): the task is told when it
    /// passes (see [`request::soft_time_limit`](crate::request::soft_time_limit)) and, if it
    /// never asked to be told, stopped and stored as FAILURE (`SoftTimeLimitExceeded`). Sent
    /// in the `timelimit` header as `[hard, soft]`, which Python workers honour too.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = taskq::Options::new()
    ///     .soft_time_limit(Duration::from_secs(50))
    ///     .time_limit(Duration::from_secs(60));
    /// ```
    pub fn soft_time_limit(mut self, limit: Duration) -> Self {
        self.soft_time_limit_secs = Some(limit.as_secs_f64());
        self
    }

    /// Stores no result for this call.
    ///
    /// ```
    /// let fire_and_forget = taskq::Options::new().ignore_result(true);
    /// ```
    pub fn ignore_result(mut self, ignore: bool) -> Self {
        self.ignore_result = Some(ignore);
        self
    }

    /// Makes the call unique for up to `lock`: if a call with the same key (by default, the
    /// same task name and arguments; see [`unique_key`](Self::unique_key)) is queued or
    /// running, this one queues nothing and its handle follows that call
    /// ([`AsyncResult::deduplicated`](crate::AsyncResult::deduplicated) tells). The check and
    /// the enqueue are one step in Redis, so concurrent producers queue one message. The key
    /// is released when a taskq worker finishes the call (success, failure, revoke or dead
    /// letter; not between retries), or after `lock`, whichever comes first: a Python worker
    /// does not release it, so set `lock` to how long the call may take when one runs it.
    /// Calls sent with [`Client::send_many`](crate::Client::send_many) cannot be unique.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let once_a_minute = taskq::Options::new().unique_for(Duration::from_secs(60));
    /// ```
    pub fn unique_for(mut self, lock: Duration) -> Self {
        self.unique_for = Some(lock);
        self
    }

    /// The unique call's key, instead of the task name and arguments (e.g. `"report:42"` for
    /// every report of user 42, whatever the other arguments); needs
    /// [`unique_for`](Self::unique_for) (or the task's `unique_for`).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = taskq::Options::new()
    ///     .unique_for(Duration::from_secs(300))
    ///     .unique_key("report:42");
    /// ```
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// The queue set with [`queue`](Self::queue), if any.
    ///
    /// ```
    /// assert_eq!(taskq::Options::new().queue("q").get_queue(), Some("q"));
    /// ```
    pub fn get_queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// Whether a time in the message is relative to now (a countdown, or an expiry after a
    /// duration), so that the producer's clock matters.
    pub(crate) fn is_relative(&self) -> bool {
        (self.eta.is_none() && self.countdown.is_some())
            || matches!(self.expires, Some(Expiry::After(_)))
    }

    /// The absolute time before which the task must not start, if any.
    pub(crate) fn resolved_eta(&self, now: SystemTime) -> Option<SystemTime> {
        match (self.eta, self.countdown) {
            (Some(eta), _) => Some(eta),
            (None, Some(delay)) => Some(now + delay),
            (None, None) => None,
        }
    }

    /// The absolute expiry time, if any.
    pub(crate) fn resolved_expires(&self, now: SystemTime) -> Option<SystemTime> {
        self.expires.map(|e| match e {
            Expiry::After(after) => now + after,
            Expiry::At(at) => at,
        })
    }
}
