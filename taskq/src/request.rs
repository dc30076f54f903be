//! The running task's own request, like Celery's `self.request`: its id, how many times it
//! was retried, and how many times it was taken back from a worker that died.

use std::cell::Cell;
use std::time::Duration;

tokio::task_local! {
    static CURRENT: Request;
    static RETRY: Cell<RetryAsk>;
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

/// Records the verdict of a task's `retry_if` on its error. An explicit [`retry_in`] is kept.
pub(crate) fn note_retry_verdict(retry: bool) {
    let _ = RETRY.try_with(|ask| {
        if !matches!(ask.get(), RetryAsk::In(_)) {
            ask.set(RetryAsk::Matched(retry));
        }
    });
}

/// Runs `fut` with `request` as the current request; returns its output and what it asked
/// about retrying.
pub(crate) async fn scope<F: std::future::Future>(
    request: Request,
    fut: F,
) -> (F::Output, RetryAsk) {
    let run = async {
        let output = fut.await;
        (output, RETRY.with(Cell::get))
    };
    CURRENT
        .scope(request, RETRY.scope(Cell::new(RetryAsk::Unset), run))
        .await
}
