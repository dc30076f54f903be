//! The running task's own request, like Celery's `self.request`: its id, how many times it
//! was retried, how many times it was taken back from a worker that died, and its soft time
//! limit; and the task's own state reports, like Celery's `self.update_state`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::backend::ResultBackend;
use crate::protocol::RawJson;
use crate::state::{Progress, ResultMeta, TaskState};

tokio::task_local! {
    static CURRENT: Request;
    static RETRY: Cell<RetryAsk>;
    static SOFT_LIMIT: Option<SoftLimitWatch>;
    static REPORTER: Arc<StateReporter>;
}

/// What the running task said about retrying, read by the worker once it returns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) enum RetryAsk {
    /// Nothing: the task's `max_retries` and backoff decide.
    #[default]
    Unset,
    /// The task's `retry_if` judged its error: retry (with backoff) or not.
    Matched(bool),
    /// [`retry_in`] was called: retry after this countdown.
    In(Duration),
}

/// What a running task knows about its own call.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.idempotent_charge")]
/// async fn charge(order: u64) -> String {
///     // Outside a worker (e.g. `.call()` in a unit test) there is no request.
///     match taskq::request::current() {
///         Some(request) => format!("order {order}, attempt {}", request.retries + 1),
///         None => format!("order {order}, run inline"),
///     }
/// }
///
/// assert_eq!(charge.call(7).await, "order 7, run inline");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The task id (also a natural idempotency key: it is the same on every retry and
    /// redelivery).
    pub id: String,
    /// The registered task name.
    pub task: String,
    /// How many times this call was retried before this run.
    pub retries: u32,
    /// How many times this message was taken back from a worker that died or froze: a run
    /// with `recoveries > 0` may repeat work an earlier run started.
    pub recoveries: u32,
}

/// The request of the task running in this tokio task, if a worker is running one here.
pub fn current() -> Option<Request> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Asks the worker to retry this call `countdown` from now if the task then returns an error,
/// like Celery's `self.retry(countdown=...)`: for an error that says when to try again (a rate
/// limit, a `Retry-After`). The retry counts against the task's `max_retries` (Celery's
/// default of 3 when the task sets none), and takes the place of its backoff and `retry_if`.
/// A task that returns `Ok` afterwards is not retried. Outside a worker it does nothing.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(Debug, thiserror::Error)]
/// enum PushError {
///     #[error("rate limited for {0} s")]
///     RateLimited(u64),
/// }
///
/// #[taskq::task(name = "tasks.push", max_retries = 5)]
/// async fn push(token: String) -> Result<(), PushError> {
///     let wait = 30; // e.g. from the provider's Retry-After header
///     taskq::request::retry_in(Duration::from_secs(wait));
///     Err(PushError::RateLimited(wait))
/// }
/// ```
pub fn retry_in(countdown: Duration) {
    let _ = RETRY.try_with(|ask| ask.set(RetryAsk::In(countdown)));
}

/// Stores a state of the running task's own choosing with `meta` as its result, like Celery's
/// `self.update_state(state=..., meta=...)`: the record Celery writes (`SETEX
/// celery-task-meta-<id>` and a PUBLISH of `{"status": state, "result": meta, "traceback":
/// null, "children": [], "date_done": null, "task_id": id}`, with the parent, group and
/// `result_extended` fields the worker's own records of this run carry), so that taskq's
/// [`AsyncResult::state`](crate::AsyncResult::state) and
/// [`info`](crate::AsyncResult::info), and Python's `AsyncResult(id).state` and `.info`, read
/// it while the task runs. The next report, and the worker's SUCCESS or FAILURE once the task
/// returns, replace it; [`AsyncResult::get`](crate::AsyncResult::get) waits past it.
///
/// Outside a worker (a task run with `.call()`, say) there is nowhere to report to: it checks
/// the state and serializes `meta`, and stores nothing. Call it from the task's own future:
/// tasks it spawns run outside the worker's scope.
///
/// # Errors
///
/// * [`Error::ReservedState`](crate::Error::ReservedState) for SUCCESS, FAILURE, REVOKED and
///   RETRY, which the worker writes from the task's outcome (a stored SUCCESS is never
///   overwritten, so one reported early would hide the task's result);
/// * [`Error::Serialize`](crate::Error::Serialize) when `meta` does not serialize;
/// * [`Error::Redis`](crate::Error::Redis) when the result store cannot be reached. The task
///   may go on: the report is only information.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.import_rows")]
/// async fn import_rows(file: String) -> Result<u64, taskq::Error> {
///     taskq::request::update_state("PARSING", serde_json::json!({"file": file})).await?;
///     let rows = 1200; // parse the file
///     taskq::request::update_state("IMPORTING", serde_json::json!({"rows": rows})).await?;
///     Ok(rows)
/// }
///
/// assert_eq!(import_rows.call("rows.csv".into()).await?, 1200); // inline: nothing is stored
/// assert!(taskq::request::update_state("SUCCESS", ()).await.is_err());
/// # Ok(()) }
/// ```
pub async fn update_state(state: impl Into<TaskState>, meta: impl Serialize) -> crate::Result<()> {
    let state = state.into();
    if state.is_ready() || state.is_exception() {
        return Err(crate::Error::ReservedState(state));
    }
    let meta = RawJson::from_serialize(&meta)?;
    match REPORTER.try_with(Arc::clone) {
        Ok(reporter) => reporter.report(state, meta).await,
        Err(_) => Ok(()),
    }
}

/// Reports how far the running task has got: [`update_state`] with Celery's conventional
/// state `PROGRESS` and meta `{"current": current, "total": total}` (a [`Progress`]), as
/// Celery's docs and tools such as `celery-progress` use them. Outside a worker it does
/// nothing.
///
/// # Errors
///
/// [`Error::Redis`](crate::Error::Redis) when the result store cannot be reached.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.resize_all")]
/// async fn resize_all(images: Vec<String>) -> Result<usize, taskq::Error> {
///     let total = images.len() as u64;
///     for (done, _image) in images.iter().enumerate() {
///         taskq::request::progress(done as u64, total).await?;
///         // resize the image
///     }
///     Ok(images.len())
/// }
///
/// assert_eq!(resize_all.call(vec!["a.png".into(), "b.png".into()]).await?, 2);
/// # Ok(()) }
/// ```
pub async fn progress(current: u64, total: u64) -> crate::Result<()> {
    update_state(Progress::STATE, Progress { current, total }).await
}

/// Where a running task's own state reports go: the worker's result store, under the task's
/// id, with the fields the worker's records of this run carry.
#[derive(Debug)]
pub(crate) struct StateReporter {
    backend: Arc<dyn ResultBackend>,
    /// A record of this run (task id, parent, group, `result_extended` fields) whose status
    /// and result each report replaces.
    template: ResultMeta,
}

impl StateReporter {
    pub(crate) fn new(backend: Arc<dyn ResultBackend>, template: ResultMeta) -> Self {
        Self { backend, template }
    }

    async fn report(&self, state: TaskState, meta: RawJson) -> crate::Result<()> {
        let mut record = self.template.clone();
        record.status = state;
        record.result = meta;
        self.backend.store(&[record]).await
    }
}

/// Records the verdict of a task's `retry_if` on its error. An explicit [`retry_in`] is kept.
pub(crate) fn note_retry_verdict(retry: bool) {
    let _ = RETRY.try_with(|ask| {
        if !matches!(ask.get(), RetryAsk::In(_)) {
            ask.set(RetryAsk::Matched(retry));
        }
    });
}

/// The soft time limit of the running task, if it has one: Celery's `soft_time_limit`, in
/// Rust terms. Where Celery raises `SoftTimeLimitExceeded` inside the task, taskq tells the
/// task through this handle, and the task decides how to wind down.
///
/// Asking for the handle is the task's promise to watch it: the worker then lets the run go
/// on past the soft limit (up to the hard limit, if any), so that it can clean up and return
/// its own result. A task that never asks is stopped at the soft limit and stored as FAILURE
/// `SoftTimeLimitExceeded`, as an uncaught exception is in Celery.
///
/// `None` when the task has no soft limit (neither its message nor its `#[task]` sets one, or
/// the soft limit is not below the hard one), or outside a worker (e.g. in `.call()`).
///
/// ```
/// use std::time::Duration;
///
/// #[taskq::task(name = "tasks.crawl", soft_time_limit = 50, time_limit = 60)]
/// async fn crawl(urls: Vec<String>) -> usize {
///     let limit = taskq::request::soft_time_limit();
///     let mut done = 0;
///     for _url in &urls {
///         if limit.as_ref().is_some_and(|l| l.is_exceeded()) {
///             break; // out of time: report what was done
///         }
///         tokio::time::sleep(Duration::from_millis(1)).await; // fetch the page
///         done += 1;
///     }
///     done
/// }
/// # #[tokio::main] async fn main() {
/// // Outside a worker there is no limit, so every page is fetched.
/// assert_eq!(crawl.call(vec!["a".into(), "b".into()]).await, 2);
/// # }
/// ```
pub fn soft_time_limit() -> Option<SoftTimeLimit> {
    SOFT_LIMIT
        .try_with(|watch| watch.as_ref().map(SoftLimitWatch::handle))
        .ok()
        .flatten()
}

/// A running task's soft time limit, from [`soft_time_limit`]. Cheap to clone, and `Send`, so
/// it can be moved into tasks the task spawns.
///
/// Wait for it beside the work with `tokio::select!`:
///
/// ```
/// use std::time::Duration;
///
/// #[taskq::task(name = "tasks.export", soft_time_limit = 5, time_limit = 10)]
/// async fn export(rows: u64) -> Result<u64, String> {
///     let Some(limit) = taskq::request::soft_time_limit() else {
///         return Ok(write_rows(rows).await); // no limit (or run inline)
///     };
///     tokio::select! {
///         written = write_rows(rows) => Ok(written),
///         () = limit.exceeded() => {
///             // Clean up (remove the partial file, release a lock), then report.
///             Err(format!("export stopped after {:?}", limit.limit()))
///         }
///     }
/// }
///
/// async fn write_rows(rows: u64) -> u64 {
///     tokio::time::sleep(Duration::from_millis(rows)).await;
///     rows
/// }
/// # #[tokio::main] async fn main() {
/// # assert_eq!(export.call(3).await, Ok(3));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SoftTimeLimit {
    exceeded: CancellationToken,
    limit: Duration,
}

impl SoftTimeLimit {
    /// The soft limit, counted from when the run started.
    ///
    /// ```
    /// # async fn demo() {
    /// if let Some(limit) = taskq::request::soft_time_limit() {
    ///     println!("must wind down after {:?}", limit.limit());
    /// }
    /// # }
    /// ```
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Whether the soft limit has passed.
    ///
    /// ```
    /// # async fn demo() {
    /// # let batches = vec![1, 2, 3];
    /// let limit = taskq::request::soft_time_limit();
    /// for batch in batches {
    ///     if limit.as_ref().is_some_and(|l| l.is_exceeded()) {
    ///         break;
    ///     }
    ///     # let _ = batch;
    /// }
    /// # }
    /// ```
    pub fn is_exceeded(&self) -> bool {
        self.exceeded.is_cancelled()
    }

    /// Completes when the soft limit passes (at once if it has).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it (e.g. when another `select!` branch wins) loses nothing, and it
    /// can be awaited again.
    ///
    /// ```
    /// # async fn demo(limit: taskq::request::SoftTimeLimit) {
    /// tokio::select! {
    ///     () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
    ///     () = limit.exceeded() => println!("out of time, cleaning up"),
    /// }
    /// # }
    /// ```
    pub async fn exceeded(&self) {
        self.exceeded.cancelled().await;
    }
}

/// The worker's side of a run's soft time limit: fires the handle's token when the limit
/// passes, and knows whether the task asked for the handle.
#[derive(Debug, Clone)]
pub(crate) struct SoftLimitWatch {
    exceeded: CancellationToken,
    limit: Duration,
    asked: Arc<AtomicBool>,
}

impl SoftLimitWatch {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            exceeded: CancellationToken::new(),
            limit,
            asked: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// Tells the task that its soft limit has passed.
    pub(crate) fn fire(&self) {
        self.exceeded.cancel();
    }

    /// Whether the task asked for its handle, i.e. promised to wind down by itself.
    pub(crate) fn watched(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    fn handle(&self) -> SoftTimeLimit {
        self.asked.store(true, Ordering::SeqCst);
        SoftTimeLimit {
            exceeded: self.exceeded.clone(),
            limit: self.limit,
        }
    }
}

/// Runs `fut` with `request` as the current request (`soft_limit` as its soft time limit,
/// `reporter` taking its state reports); returns its output and what it asked about retrying.
pub(crate) async fn scope<F: std::future::Future>(
    request: Request,
    soft_limit: Option<SoftLimitWatch>,
    reporter: StateReporter,
    fut: F,
) -> (F::Output, RetryAsk) {
    let run = async {
        let output = fut.await;
        (output, RETRY.with(Cell::get))
    };
    let run = REPORTER.scope(Arc::new(reporter), SOFT_LIMIT.scope(soft_limit, run));
    CURRENT
        .scope(request, RETRY.scope(Cell::new(RetryAsk::Unset), run))
        .await
}
