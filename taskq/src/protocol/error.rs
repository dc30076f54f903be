//! Why a received message cannot run (a decode error), and what its caller is told.
//!
//! A refused message goes to the dead-letter list with the [reason](DecodeError::reason); when its
//! task id can be read, the worker also stores a FAILURE under that id, so that whoever waits
//! on the result (taskq's `AsyncResult::get`, Python's `AsyncResult.get()`) learns at once why,
//! instead of waiting for a timeout. The exception each kind stores is one a Python user knows.

use std::fmt;

use crate::failure::TaskFailure;

/// What is wrong with a refused message; each kind stores its own exception.
///
/// ```
/// use taskq::protocol::{DecodeErrorKind, TaskMessage};
///
/// let pickled = r#"{"body": "gAJ9", "content-type": "application/x-python-serialize", "headers": {"task": "t", "id": "i"}, "properties": {}}"#;
/// let refusal = TaskMessage::decode(pickled).unwrap_err();
/// assert_eq!(refusal.kind(), DecodeErrorKind::ContentDisallowed);
/// assert_eq!(refusal.task_id(), Some("i"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Serialized with something other than JSON (pickle, yaml, msgpack, …) or with no
    /// content type. Stored as kombu's `ContentDisallowed`, what a Python worker with Celery's
    /// default `accept_content` raises for the same message.
    ContentDisallowed,
    /// The body cannot be decoded: not base64, not UTF-8, not JSON, compressed with a method
    /// taskq does not support or corrupt, or holding a `NaN`. Stored as kombu's `DecodeError`.
    Undecodable,
    /// Decoded, but not a valid task message: a body that is not `[args, kwargs, embed]`, no
    /// task name, an `eta` that is not a time, a bad `timelimit` or `retries`. Stored as
    /// Celery's `InvalidTaskError`, which Celery raises for the same headers.
    Invalid,
    /// Larger than `TASKQ_MAX_MESSAGE_SIZE`, as stored or once decompressed. Stored as
    /// `MessageTooLarge` (module `taskq.exceptions`; Python builds the class on the fly).
    TooLarge,
    /// Asks for something taskq workers do not run: a workflow continuation of a kind they do
    /// not know (a signature class registered by a Python application). Running the task and
    /// dropping the continuation would leave the workflow PENDING forever with nothing said,
    /// so the message is refused instead: stored as Python's `NotImplementedError`, and kept
    /// in the dead-letter list, from where it can be requeued once a worker runs it.
    Unsupported,
}

/// A message taskq refuses to run: the reason, and the task id when it can be read.
///
/// ```
/// let refusal = taskq::protocol::TaskMessage::decode("not json").unwrap_err();
/// assert!(refusal.reason().starts_with("envelope is not JSON"));
/// assert_eq!(refusal.task_id(), None); // nobody to tell
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    reason: String,
    task_id: Option<String>,
}

impl DecodeError {
    /// A refusal of `kind` for `reason`, its task id not known yet.
    pub(crate) fn new(kind: DecodeErrorKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            task_id: None,
        }
    }

    /// Shorthand for a [`DecodeErrorKind::Invalid`] refusal.
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::Invalid, reason)
    }

    /// Shorthand for a [`DecodeErrorKind::Undecodable`] refusal.
    pub(crate) fn undecodable(reason: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::Undecodable, reason)
    }

    /// The same refusal, with `id` as its task id unless it has one already.
    pub(crate) fn or_task_id(mut self, id: Option<&str>) -> Self {
        if self.task_id.is_none() {
            self.task_id = id.map(str::to_owned);
        }
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// Why the message is refused, for logs and the dead-letter list.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The message's task id, when it could be read: the FAILURE is stored under it.
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// The failure stored for the task, in the exception its [kind](DecodeErrorKind) names.
    ///
    /// ```
    /// let refusal = taskq::protocol::TaskMessage::decode(
    ///     r#"{"body": "[[], {}, null]", "content-type": "application/json", "headers": {"task": "t", "id": "i", "eta": "soon"}, "properties": {}}"#,
    /// ).unwrap_err();
    /// let failure = refusal.failure();
    /// assert_eq!((failure.exc_type(), failure.exc_module()), ("InvalidTaskError", "celery.exceptions"));
    /// assert!(failure.message().contains("\"soon\""));
    /// ```
    pub fn failure(&self) -> TaskFailure {
        let reason = self.reason.as_str();
        match self.kind {
            DecodeErrorKind::ContentDisallowed => TaskFailure::content_disallowed(reason),
            DecodeErrorKind::Undecodable => TaskFailure::decode_error(reason),
            DecodeErrorKind::Invalid => TaskFailure::invalid_task(reason),
            DecodeErrorKind::TooLarge => TaskFailure::message_too_large(reason),
            DecodeErrorKind::Unsupported => TaskFailure::not_implemented(reason),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DecodeError {}
