//! The [`Task`] trait that `#[task]` implements, and the per-task options it carries.

use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::failure::TaskFailure;
use crate::rate_limit::RateLimit;

/// A boxed, sendable future, as returned by [`Task::run`].
///
/// ```
/// let fut: taskq::task::BoxFuture<u8> = Box::pin(async { 1 });
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A task: a named async function whose calls can be sent to workers.
///
/// You do not implement this trait by hand: `#[taskq::task]` implements it for the value it
/// generates next to your function. It is public so that generic code can take any task.
///
/// ```
/// use taskq::Task;
///
/// #[taskq::task(name = "tasks.add")]
/// async fn add(x: i64, y: i64) -> i64 {
///     x + y
/// }
///
/// fn describe<T: Task>(_task: &T) -> String {
///     format!("{} takes {:?}", T::NAME, T::ARG_NAMES)
/// }
/// assert_eq!(describe(&add), r#"tasks.add takes ["x", "y"]"#);
/// ```
pub trait Task: Send + Sync + 'static {
    /// The arguments as a tuple, in declaration order: `(u64,)` for `fn f(user_id: u64)`.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What a successful run returns: `T` for `-> Result<T, E>` or for a plain `-> T`.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The registered name producers and workers agree on, e.g. `"tasks.add"`.
    const NAME: &'static str;
    /// The argument names, so that keyword arguments sent by Python map onto positions.
    const ARG_NAMES: &'static [&'static str];
    /// The options given in the attribute.
    const OPTIONS: TaskOptions;

    /// Runs the task body with already-decoded arguments.
    fn run(args: Self::Args) -> BoxFuture<Result<Self::Output, TaskFailure>>;
}

/// Options fixed where the task is declared: `#[task(queue = "...", time_limit = 30, ...)]`.
///
/// Per-call options ([`crate::Options`]) override them.
///
/// ```
/// use taskq::TaskOptions;
///
/// const OPTS: TaskOptions = TaskOptions::new().queue("reports").time_limit_secs(30.0);
/// assert_eq!(OPTS.queue, Some("reports"));
/// assert_eq!(OPTS.time_limit_secs, Some(30.0));
/// assert!(!OPTS.ignore_result);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TaskOptions {
    /// Queue the task is sent to when the call names none (default: the client's default queue).
    pub queue: Option<&'static str>,
    /// Store no result for this task.
    pub ignore_result: bool,
    /// Hard time limit in seconds: a run still going after it is cancelled and stored as
    /// FAILURE (`TimeLimitExceeded`).
    pub time_limit_secs: Option<f64>,
    /// Soft time limit in seconds (Celery's `soft_time_limit`): a run that never asked for
    /// [`soft_time_limit`](crate::request::soft_time_limit) is stopped then and stored as
    /// FAILURE (`SoftTimeLimitExceeded`); one that asked is told and may wind down until the
    /// hard limit.
    pub soft_time_limit_secs: Option<f64>,
    /// How many times a run that returned `Err` or panicked is retried (default 0: never).
    pub max_retries: u32,
    /// The first retry's delay in seconds; each next retry doubles it, up to
    /// [`RETRY_BACKOFF_MAX_SECS`], and a random jitter picks a delay between half and all of
    /// that, so that retries of many tasks spread out but none comes back at once.
    pub retry_backoff_secs: f64,
    /// Whether the task judges its errors with `retry_if`: only errors it matches are then
    /// retried, and failures it cannot judge (panics) are not.
    pub retry_if: bool,
    /// The fleet-wide rate limit (Celery's `rate_limit`, but global: see
    /// [`crate::rate_limit`]); `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// How long, in seconds, a call stays unique: while a call with the same task name and
    /// arguments is queued or running, up to this long, another is not queued (see
    /// [`Options::unique_for`](crate::Options::unique_for)). `None`: calls are not unique.
    pub unique_for_secs: Option<f64>,
}

/// The longest delay between two retries, in seconds (Celery's `retry_backoff_max`).
pub const RETRY_BACKOFF_MAX_SECS: f64 = 600.0;

/// How many retries a task that sets no `max_retries` may ask for with
/// [`retry_in`](crate::request::retry_in): Celery's `Task.max_retries` default.
pub const CELERY_DEFAULT_MAX_RETRIES: u32 = 3;

impl TaskOptions {
    /// Options with every field at its default.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new(), taskq::TaskOptions::default());
    /// ```
    pub const fn new() -> Self {
        Self {
            queue: None,
            ignore_result: false,
            time_limit_secs: None,
            soft_time_limit_secs: None,
            max_retries: 0,
            retry_backoff_secs: 1.0,
            retry_if: false,
            rate_limit: None,
            unique_for_secs: None,
        }
    }

    /// Sets the default queue.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new().queue("q").queue, Some("q"));
    /// ```
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Sets whether results are stored.
    ///
    /// ```
    /// assert!(taskq::TaskOptions::new().ignore_result(true).ignore_result);
    /// ```
    pub const fn ignore_result(mut self, ignore: bool) -> Self {
        self.ignore_result = ignore;
        self
    }

    /// Sets how many times a failed run is retried.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new().max_retries(3).max_retries, 3);
    /// ```
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Only errors the task's `retry_if` matches are retried.
    ///
    /// ```
    /// assert!(taskq::TaskOptions::new().max_retries(3).retry_if(true).retry_if);
    /// ```
    pub const fn retry_if(mut self, judged: bool) -> Self {
        self.retry_if = judged;
        self
    }

    /// How many retries a call may have: `max_retries`, or Celery's default of 3 for retries
    /// the task asks for with [`retry_in`](crate::request::retry_in) when it sets none.
    pub(crate) fn retry_limit(&self, ask: crate::request::RetryAsk) -> u32 {
        match ask {
            crate::request::RetryAsk::In(_) if self.max_retries == 0 => CELERY_DEFAULT_MAX_RETRIES,
            _ => self.max_retries,
        }
    }

    /// Sets the first retry's delay in seconds.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new().retry_backoff_secs(0.5).retry_backoff_secs, 0.5);
    /// ```
    pub const fn retry_backoff_secs(mut self, secs: f64) -> Self {
        self.retry_backoff_secs = secs;
        self
    }

    /// Sets the hard time limit in seconds.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new().time_limit_secs(2.0).time_limit_secs, Some(2.0));
    /// ```
    pub const fn time_limit_secs(mut self, secs: f64) -> Self {
        self.time_limit_secs = Some(secs);
        self
    }

    /// Sets the fleet-wide rate limit.
    ///
    /// ```
    /// use taskq::rate_limit::RateLimit;
    ///
    /// let options = taskq::TaskOptions::new().rate_limit(RateLimit::per_second(10.0));
    /// assert_eq!(options.rate_limit, Some(RateLimit::per_second(10.0)));
    /// ```
    pub const fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Makes calls unique for up to `secs` seconds.
    ///
    /// ```
    /// assert_eq!(taskq::TaskOptions::new().unique_for_secs(60.0).unique_for_secs, Some(60.0));
    /// ```
    pub const fn unique_for_secs(mut self, secs: f64) -> Self {
        self.unique_for_secs = Some(secs);
        self
    }

    /// Sets the soft time limit in seconds.
    ///
    /// ```
    /// let options = taskq::TaskOptions::new().time_limit_secs(10.0).soft_time_limit_secs(5.0);
    /// assert_eq!(options.soft_time_limit_secs, Some(5.0));
    /// ```
    pub const fn soft_time_limit_secs(mut self, secs: f64) -> Self {
        self.soft_time_limit_secs = Some(secs);
        self
    }
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self::new()
    }
}
