//! The result store: where workers write each task's state and result, and where
//! [`AsyncResult`](crate::AsyncResult) reads them.
//!
//! [`redis::RedisBackend`] is Celery's Redis result backend (`celery-task-meta-<id>`, SETEX plus
//! PUBLISH); [`memory::MemoryBackend`] gives the same semantics inside one process.

pub mod memory;
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::connection;
use crate::state::ResultMeta;
use crate::Result;

/// How long results are kept by default: one day, as in Celery.
///
/// ```
/// assert_eq!(taskq::backend::DEFAULT_RESULT_EXPIRES.as_secs(), 86_400);
/// ```
pub const DEFAULT_RESULT_EXPIRES: Duration = Duration::from_secs(86_400);

/// Opens the result store named by `url` (`redis://`, `rediss://`, `unix://` or
/// `memory://[name]`), keeping each result for `expires` (`None`: forever).
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) for an unknown scheme, [`Error::Redis`](crate::Error::Redis)
/// for a bad Redis URL.
///
/// ```
/// let backend = taskq::backend::open("memory://docs", None)?;
/// assert_eq!(backend.describe(), "memory://docs");
/// # Ok::<(), taskq::Error>(())
/// ```
pub fn open(url: &str, expires: Option<Duration>) -> Result<Arc<dyn ResultBackend>> {
    match connection::scheme(url) {
        "memory" => {
            let backend = memory::MemoryBackend::named(connection::memory_name(url));
            backend.set_expires(expires);
            Ok(backend)
        }
        scheme if connection::is_redis_scheme(scheme) => {
            Ok(Arc::new(redis::RedisBackend::open(url, expires)?))
        }
        other => Err(crate::Error::Config(format!(
            "result backend URL scheme {other:?} is not supported (use redis://, rediss:// or memory://)"
        ))),
    }
}

/// A result store implementation.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::backend::{memory::MemoryBackend, ResultBackend};
/// use taskq::state::ResultMeta;
///
/// let backend = MemoryBackend::named("trait-doc");
/// backend.store(&[ResultMeta::success("id-1", 7)]).await?;
/// let meta = backend.wait_ready("id-1", std::time::Duration::from_secs(1)).await?.unwrap();
/// assert_eq!(meta.result, 7);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ResultBackend: Send + Sync + fmt::Debug + 'static {
    /// Stores records and wakes their waiters. A stored SUCCESS is never overwritten.
    async fn store(&self, records: &[ResultMeta]) -> Result<()>;

    /// The current record of a task, `None` when there is none (PENDING).
    async fn get(&self, task_id: &str) -> Result<Option<ResultMeta>>;

    /// Waits until the task's record is in a ready state (SUCCESS, FAILURE, REVOKED) and
    /// returns it, or returns `None` after `timeout`. Woken by the store, not by polling.
    async fn wait_ready(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>>;

    /// Deletes a task's record.
    async fn forget(&self, task_id: &str) -> Result<()>;

    /// The backend URL with any password masked.
    fn describe(&self) -> String;
}
