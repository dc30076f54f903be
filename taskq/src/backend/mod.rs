//! The result store: where workers write each task's state and result, and where
//! [`AsyncResult`](crate::AsyncResult) reads them.
//!
//! [`redis::RedisBackend`] is Celery's Redis result backend (`celery-task-meta-<id>`, SETEX plus
//! PUBLISH); [`memory::MemoryBackend`] gives the same semantics inside one process.

mod chord;
pub mod memory;
pub mod redis;

pub use chord::{ChordPart, ChordResult, ChordVote};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::connection;
use crate::protocol::RawJson;
use crate::state::ResultMeta;
use crate::Result;

/// How long results are kept by default: one day, as in Celery.
///
/// ```
/// assert_eq!(taskq::backend::DEFAULT_RESULT_EXPIRES.as_secs(), 86_400);
/// ```
pub const DEFAULT_RESULT_EXPIRES: Duration = Duration::from_secs(86_400);

/// Opens the result store named by `url` (`redis://`, `rediss://`, `unix://`, `sentinel://`,
/// `redis+cluster://` or `memory://[name]`), keeping each result for `expires` (`None`: forever).
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
            "result backend URL scheme {other:?} is not supported (use redis://, rediss://, \
             sentinel://, redis+cluster:// or memory://)"
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

    /// Saves a group's result tuple (Celery's `GroupResult.save()`: `{"result": tuple}` under
    /// `celery-taskset-meta-<gid>`), for [`restore_group`](Self::restore_group).
    async fn save_group(&self, group_id: &str, tuple: &RawJson) -> Result<()>;

    /// The result tuple of a saved group, `None` when none was saved (or it expired).
    async fn restore_group(&self, group_id: &str) -> Result<Option<RawJson>>;

    /// Deletes a saved group.
    async fn forget_group(&self, group_id: &str) -> Result<()>;

    /// Sets the size of chord `group_id`'s header: a producer does so before it sends the
    /// last header part, so the count can complete only once every part was sent.
    async fn set_chord_size(&self, group_id: &str, size: usize) -> Result<()>;

    /// Counts one finished header part, and says whether the caller is to send the body.
    async fn chord_part_return(&self, part: &ChordPart) -> Result<ChordVote>;

    /// The finished parts of chord `group_id`, in header order.
    async fn chord_results(&self, group_id: &str) -> Result<Vec<ChordResult>>;

    /// Ends chord `group_id` once the body is sent (or failed) under `claim`, so a late
    /// duplicate part does not send it again.
    async fn finish_chord(&self, group_id: &str, claim: &str) -> Result<()>;

    /// The backend URL with any password masked.
    fn describe(&self) -> String;
}
