//! The running task's own request, like Celery's `self.request`: its id, how many times it
//! was retried, and how many times it was taken back from a worker that died.

tokio::task_local! {
    static CURRENT: Request;
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

/// Runs `fut` with `request` as the current request.
pub(crate) async fn scope<F: std::future::Future>(request: Request, fut: F) -> F::Output {
    CURRENT.scope(request, fut).await
}
