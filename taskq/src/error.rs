//! The error type of taskq's own operations (sending, fetching, waiting), as opposed to a
//! task's failure ([`TaskFailure`]).

use std::time::Duration;

use crate::failure::TaskFailure;

/// Everything that can go wrong in a taskq call.
///
/// ```
/// use std::time::Duration;
///
/// let err = taskq::Error::Timeout(Duration::from_secs(3));
/// assert_eq!(err.to_string(), "timed out after 3s waiting for the task result");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker or result store could not be reached or answered with an error.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),

    /// A configuration value (URL, number, queue list) is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Arguments or a result could not be converted to or from JSON.
    #[error("serialization error: {0}")]
    Serialize(#[from] serde_json::Error),

    /// A message or stored result is not in the expected wire format.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded ("message", "result").
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// [`AsyncResult::get`](crate::AsyncResult::get) gave up before the task finished.
    #[error("timed out after {0:?} waiting for the task result")]
    Timeout(Duration),

    /// The task finished without success; the failure says why.
    #[error("task failed: {0}")]
    TaskFailed(TaskFailure),

    /// The task ran but its result does not decode as the requested type.
    #[error("task result does not decode as the requested type: {0}")]
    ResultType(serde_json::Error),

    /// The task was sent with `ignore_result`, so there is no result to wait for.
    #[error("the task ignores its result; there is nothing to wait for")]
    ResultIgnored,

    /// A message is longer than the configured limit
    /// ([`Config::max_message_size`](crate::Config::max_message_size)); nothing was sent.
    #[error("the {task} message is {size} bytes, over the limit of {limit} (TASKQ_MAX_MESSAGE_SIZE); pass large data by reference (a key, a URL), not as an argument")]
    MessageTooLarge {
        /// The task the message calls.
        task: String,
        /// The encoded message's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// A running task tried to report a state that only the worker writes, from the task's
    /// outcome: SUCCESS, FAILURE, REVOKED or RETRY (see
    /// [`request::update_state`](crate::request::update_state)).
    #[error("a task cannot report state {0} itself: the worker stores it from the task's outcome; report progress with a state of its own, such as PROGRESS")]
    ReservedState(crate::TaskState),

    /// A background part of taskq stopped (for example the in-memory broker was dropped).
    #[error("taskq is shut down: {0}")]
    Closed(&'static str),
}

impl Error {
    /// The task's failure, when this error is [`Error::TaskFailed`].
    ///
    /// ```
    /// let err = taskq::Error::TaskFailed(taskq::TaskFailure::panic("boom"));
    /// assert!(err.task_failure().unwrap().is_panic());
    /// ```
    pub fn task_failure(&self) -> Option<&TaskFailure> {
        match self {
            Error::TaskFailed(failure) => Some(failure),
            _ => None,
        }
    }

    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

/// `Result` with taskq's [`Error`] as the default error type.
///
/// ```
/// fn parse_queue(name: &str) -> taskq::Result<String> {
///     Ok(name.to_owned())
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
