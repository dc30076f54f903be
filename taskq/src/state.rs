//! Task states and the result record stored under `celery-task-meta-<id>`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::protocol::{ExtendedFields, ResultMeta};

/// The state of a task, as Celery names it. Unknown names are kept as [`TaskState::Custom`].
///
/// ```
/// use taskq::TaskState;
///
/// assert_eq!("SUCCESS".parse::<TaskState>().unwrap(), TaskState::Success);
/// assert_eq!(TaskState::from("PROGRESS"), TaskState::Custom("PROGRESS".into()));
/// assert!(TaskState::Failure.is_ready());
/// assert!(!TaskState::Retry.is_ready());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Unknown to the result store: not run yet, or its result expired or was forgotten.
    Pending,
    /// Received by a worker (event-only state in Celery).
    Received,
    /// Running.
    Started,
    /// Finished with a result.
    Success,
    /// Finished with an error.
    Failure,
    /// Revoked or expired before it ran.
    Revoked,
    /// Rejected by a worker.
    Rejected,
    /// Failed and waiting to be retried.
    Retry,
    /// Its result is ignored.
    Ignored,
    /// A state named by the task itself, e.g. `PROGRESS`.
    Custom(String),
}

impl TaskState {
    /// The name stored in Redis.
    ///
    /// ```
    /// assert_eq!(taskq::TaskState::Revoked.as_str(), "REVOKED");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Revoked => "REVOKED",
            TaskState::Rejected => "REJECTED",
            TaskState::Retry => "RETRY",
            TaskState::Ignored => "IGNORED",
            TaskState::Custom(name) => name,
        }
    }

    /// Whether the task is finished: SUCCESS, FAILURE or REVOKED (Celery's `READY_STATES`).
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }

    /// Whether the stored `result` is an exception (FAILURE, RETRY, REVOKED).
    ///
    /// ```
    /// assert!(taskq::TaskState::Retry.is_exception());
    /// assert!(!taskq::TaskState::Success.is_exception());
    /// ```
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            TaskState::Failure | TaskState::Retry | TaskState::Revoked
        )
    }
}

impl From<&str> for TaskState {
    fn from(name: &str) -> Self {
        match name {
            "PENDING" => TaskState::Pending,
            "RECEIVED" => TaskState::Received,
            "STARTED" => TaskState::Started,
            "SUCCESS" => TaskState::Success,
            "FAILURE" => TaskState::Failure,
            "REVOKED" => TaskState::Revoked,
            "REJECTED" => TaskState::Rejected,
            "RETRY" => TaskState::Retry,
            "IGNORED" => TaskState::Ignored,
            other => TaskState::Custom(other.to_owned()),
        }
    }
}

impl From<String> for TaskState {
    fn from(name: String) -> Self {
        TaskState::from(name.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(TaskState::from(s))
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a task has got: the meta of Celery's conventional `PROGRESS` state,
/// `{"current": n, "total": m}`, which a task reports with
/// [`request::progress`](crate::request::progress) (or Python's
/// `self.update_state(state="PROGRESS", meta={"current": n, "total": m})`) and a caller reads
/// with [`AsyncResult::info`](crate::AsyncResult::info). Other keys in the meta are ignored.
///
/// ```
/// use taskq::state::Progress;
///
/// let progress: Progress = serde_json::from_str(r#"{"current": 3, "total": 10, "eta": 5}"#)?;
/// assert_eq!(progress, Progress { current: 3, total: 10 });
/// assert_eq!(Progress::STATE, "PROGRESS");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps done.
    pub current: u64,
    /// Steps in all.
    pub total: u64,
}

impl Progress {
    /// The state name Celery's convention uses for it.
    pub const STATE: &'static str = "PROGRESS";
}
