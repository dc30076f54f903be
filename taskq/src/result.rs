//! [`AsyncResult`]: a handle to a sent task's state and result.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::backend::ResultBackend;
use crate::failure::TaskFailure;
use crate::state::{Progress, ResultMeta, TaskState};
use crate::{Client, Error, Result};

/// The result of a task, by id: its state now, or its value once it is ready.
///
/// `T` is the task's success type; `AsyncResult<serde_json::Value>` (the default) reads any
/// task, including Python ones. The value is read from the stored text, so a `u128` or
/// `i128` result (a Python big integer) is exact; in a `Value` it is exact only when the
/// application enables serde_json's `arbitrary_precision`.
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// use std::time::Duration;
/// use taskq::{AsyncResult, TaskState};
///
/// let result: AsyncResult<u64> = AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
/// match result.state().await? {
///     TaskState::Success => println!("done: {}", result.get(Duration::ZERO).await?),
///     TaskState::Failure => println!("failed: {:?}", result.failure().await?),
///     other => println!("still {other}"),
/// }
/// # Ok(()) }
/// ```
pub struct AsyncResult<T = Value> {
    id: String,
    /// The client it was sent through: its result store, and its broker for revokes.
    client: Client,
    ignored: bool,
    /// The send this handle came from queued nothing: a unique call held its key.
    deduplicated: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            client: self.client.clone(),
            ignored: self.ignored,
            deduplicated: self.deduplicated,
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("id", &self.id)
            .field("backend", &self.backend().describe())
            .finish()
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(id: String, client: Client, ignored: bool) -> Self {
        Self {
            id,
            client,
            ignored,
            deduplicated: false,
            _type: PhantomData,
        }
    }

    /// The handle of the unique call that holds the key a send asked for: that send queued
    /// nothing.
    pub(crate) fn deduplicated_into(id: String, client: Client, ignored: bool) -> Self {
        Self {
            deduplicated: true,
            ..Self::new(id, client, ignored)
        }
    }

    /// Whether the send that gave this handle queued nothing, because a call with the same
    /// unique key was queued or running (see [`Options::unique_for`](crate::Options::unique_for)):
    /// the handle then follows that call.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default()).unwrap();
    /// assert!(!client.result::<u64>("d3c0c7a8-0000-4000-8000-000000000000").deduplicated());
    /// ```
    pub fn deduplicated(&self) -> bool {
        self.deduplicated
    }

    fn backend(&self) -> &Arc<dyn ResultBackend> {
        self.client.backend()
    }

    /// A handle to task `id` on the current client's result store (see [`Client::current`]).
    ///
    /// # Errors
    ///
    /// When no client is configured and the environment's configuration is invalid.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// println!("{}", result.state().await?);
    /// # Ok(()) }
    /// ```
    pub fn from_id(id: impl Into<String>) -> Result<Self> {
        Ok(Client::current()?.result(id))
    }

    /// The task id.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// assert_eq!(result.id(), "9b1c7a0e-0000-4000-8000-000000000001");
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The same handle, reading the result as `U`.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// let untyped: taskq::AsyncResult<serde_json::Value> = result.typed();
    /// # Ok(()) }
    /// ```
    pub fn typed<U>(self) -> AsyncResult<U> {
        AsyncResult {
            id: self.id,
            client: self.client,
            ignored: self.ignored,
            deduplicated: self.deduplicated,
            _type: PhantomData,
        }
    }

    /// The whole stored record; a task with none reads as PENDING.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the store cannot be read, [`Error::Malformed`] for a record that
    /// is not Celery's shape.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// let meta = result.meta().await?;
    /// println!("{} at {:?}", meta.status, meta.date_done);
    /// # Ok(()) }
    /// ```
    pub async fn meta(&self) -> Result<ResultMeta> {
        Ok(self
            .backend()
            .get(&self.id)
            .await?
            .unwrap_or_else(|| ResultMeta::pending(&self.id)))
    }

    /// The task's state now.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if result.state().await? == taskq::TaskState::Started {
    ///     println!("running");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn state(&self) -> Result<TaskState> {
        Ok(self.meta().await?.status)
    }

    /// The stored result as it is now, read as `M`, like Python's `AsyncResult.info`: while the
    /// task runs, the meta of the state it reported itself (a [`Progress`] for `PROGRESS`,
    /// see [`request::update_state`](crate::request::update_state)) or STARTED's `{"pid",
    /// "hostname"}`; once it is ready, its value, or the exception object of a failure.
    /// `None` when nothing is stored (PENDING) or the result is `null`.
    ///
    /// For the state and its meta from one read, use [`meta`](Self::meta).
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta); [`Error::ResultType`] when the result does not decode as
    /// `M`.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// use taskq::state::Progress;
    ///
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if result.state().await?.as_str() == Progress::STATE {
    ///     if let Some(Progress { current, total }) = result.info().await? {
    ///         println!("{current} of {total}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn info<M: DeserializeOwned>(&self) -> Result<Option<M>> {
        let meta = self.meta().await?;
        if meta.result.is_null() {
            return Ok(None);
        }
        meta.result
            .parse()
            .map(Some)
            .map_err(|e| Error::ResultType(crate::protocol::without_position(e)))
    }

    /// How far the task has got, while its state is `PROGRESS` (reported with
    /// [`request::progress`](crate::request::progress) or Python's `update_state`); `None` in
    /// any other state, e.g. before the first report or once the task is finished.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta); [`Error::ResultType`] when a `PROGRESS` meta lacks
    /// `current` or `total`.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if let Some(progress) = result.progress().await? {
    ///     println!("{} of {}", progress.current, progress.total);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn progress(&self) -> Result<Option<Progress>> {
        let meta = self.meta().await?;
        if meta.status.as_str() != Progress::STATE {
            return Ok(None);
        }
        meta.result
            .parse()
            .map(Some)
            .map_err(|e| Error::ResultType(crate::protocol::without_position(e)))
    }

    /// The task's name, when its record carries Celery's `result_extended` fields (written by
    /// a worker with [`Config::result_extended`](crate::Config::result_extended) or Python's
    /// `result_extended=True`); Python's `AsyncResult.name`. See [`ResultMeta::extended`] for
    /// all of them from one read.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// println!("{:?}", result.name().await?);
    /// # Ok(()) }
    /// ```
    pub async fn name(&self) -> Result<Option<String>> {
        Ok(self.meta().await?.extended.and_then(|e| e.name))
    }

    /// The task's positional arguments, from Celery's `result_extended` fields (see
    /// [`name`](Self::name)); Python's `AsyncResult.args`.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta); [`Error::Malformed`] when they are not a JSON array.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if let Some(args) = result.args().await? {
    ///     println!("called with {} arguments", args.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn args(&self) -> Result<Option<Vec<Value>>> {
        let extended = self.meta().await?.extended;
        extended
            .filter(|e| !e.args.is_null())
            .map(|e| e.args.parse())
            .transpose()
            .map_err(|e| Error::malformed("result", format!("`args` is not a list: {e}")))
    }

    /// The task's keyword arguments, from Celery's `result_extended` fields (see
    /// [`name`](Self::name)); Python's `AsyncResult.kwargs`.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta); [`Error::Malformed`] when they are not a JSON object.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if let Some(kwargs) = result.kwargs().await? {
    ///     println!("user: {:?}", kwargs.get("user_id"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn kwargs(&self) -> Result<Option<Map<String, Value>>> {
        let extended = self.meta().await?.extended;
        extended
            .filter(|e| !e.kwargs.is_null())
            .map(|e| e.kwargs.parse())
            .transpose()
            .map_err(|e| Error::malformed("result", format!("`kwargs` is not an object: {e}")))
    }

    /// Whether the task has finished (SUCCESS, FAILURE or REVOKED).
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if result.ready().await? {
    ///     println!("finished");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<bool> {
        Ok(self.state().await?.is_ready())
    }

    /// Whether the task finished with SUCCESS.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// assert!(result.successful().await? || !result.ready().await?);
    /// # Ok(()) }
    /// ```
    pub async fn successful(&self) -> Result<bool> {
        Ok(self.state().await? == TaskState::Success)
    }

    /// Whether the task finished with FAILURE (or was revoked).
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if result.failed().await? {
    ///     eprintln!("{:?}", result.failure().await?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn failed(&self) -> Result<bool> {
        Ok(matches!(
            self.state().await?,
            TaskState::Failure | TaskState::Revoked
        ))
    }

    /// The failure (type, message, traceback) if the task failed, was revoked or is
    /// waiting to retry.
    ///
    /// # Errors
    ///
    /// As for [`meta`](Self::meta).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// if let Some(failure) = result.failure().await? {
    ///     eprintln!("{}: {}\n{}", failure.exc_type(), failure.message(), failure.traceback().unwrap_or(""));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn failure(&self) -> Result<Option<TaskFailure>> {
        Ok(self.meta().await?.failure_info())
    }

    /// Deletes the stored result; the task reads as PENDING afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the store cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// result.forget().await?;
    /// assert_eq!(result.state().await?, taskq::TaskState::Pending);
    /// # Ok(()) }
    /// ```
    pub async fn forget(&self) -> Result<()> {
        self.backend().forget(&self.id).await
    }

    /// Revokes the task, like Celery's `AsyncResult.revoke()`: no worker will start it, also
    /// one started later (see [`Client::revoke`]). A run already going is left to finish; see
    /// [`terminate`](Self::terminate).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the broker cannot be reached: then the revoke may not hold.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// result.revoke().await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self) -> Result<()> {
        self.client.revoke(&self.id).await
    }

    /// Revokes the task and stops it if it is running, like Celery's
    /// `AsyncResult.revoke(terminate=True)` (see [`Client::terminate`]).
    ///
    /// # Errors
    ///
    /// As for [`revoke`](Self::revoke).
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// result.terminate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate(&self) -> Result<()> {
        self.client.terminate(&self.id).await
    }
}

impl<T: DeserializeOwned> AsyncResult<T> {
    /// Waits up to `timeout` for the task to finish and returns its value.
    ///
    /// It subscribes to the task's channel and then reads the stored record, so it wakes the
    /// moment the worker publishes the result; it never polls. States stored while the task
    /// runs (STARTED, or one it reports itself such as `PROGRESS`) do not end the wait.
    ///
    /// # Errors
    ///
    /// * [`Error::TaskFailed`] when the task failed or was revoked (see
    ///   [`Error::task_failure`]);
    /// * [`Error::Timeout`] when it is not finished within `timeout`;
    /// * [`Error::ResultType`] when the value does not decode as `T`;
    /// * [`Error::ResultIgnored`] for a call sent with `ignore_result`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting and unsubscribes; the task is unaffected.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// let result: taskq::AsyncResult<u64> = taskq::AsyncResult::from_id("9b1c7a0e-0000-4000-8000-000000000001")?;
    /// match result.get(std::time::Duration::from_secs(30)).await {
    ///     Ok(value) => println!("{value}"),
    ///     Err(taskq::Error::TaskFailed(failure)) => eprintln!("failed: {failure}"),
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, timeout: Duration) -> Result<T> {
        if self.ignored {
            return Err(Error::ResultIgnored);
        }
        let meta = self
            .backend()
            .wait_ready(&self.id, timeout)
            .await?
            .ok_or(Error::Timeout(timeout))?;
        match meta.failure_info() {
            Some(failure) => Err(Error::TaskFailed(failure)),
            // Read from the stored text: a `u128` or `i128` result is exact.
            None => meta
                .result
                .parse()
                .map_err(|e| Error::ResultType(crate::protocol::without_position(e))),
        }
    }
}
