//! A task's failure: what a worker stores as FAILURE/REVOKED/RETRY and what
//! [`AsyncResult`](crate::AsyncResult) hands back, in Celery's exception shape
//! (`exc_type`, `exc_message`, `exc_module`, plus a traceback text).

use std::fmt;

use serde::Serialize;

use crate::protocol::{RawJson, Tree};

/// Module written for failures that come from Rust code.
///
/// It must not be an importable Python module: Python's result reader then builds an exception
/// class of the stored name on the fly instead of refusing the result.
///
/// ```
/// let failure = taskq::TaskFailure::from_error(&std::fmt::Error);
/// assert_eq!(failure.exc_module(), taskq::RUST_EXC_MODULE);
/// ```
pub const RUST_EXC_MODULE: &str = "taskq.exceptions";

/// Why a task did not succeed.
///
/// Built by the worker from a returned `Err`, a panic, a time limit, a revoke or an unknown
/// name, and read back from the result store by [`AsyncResult`](crate::AsyncResult). Python
/// Celery reads the same record as an exception of type [`exc_type`](Self::exc_type).
///
/// ```
/// use taskq::TaskFailure;
///
/// let failure = TaskFailure::from_error(&std::io::Error::other("disk full"));
/// assert_eq!(failure.exc_type(), "Error");
/// assert_eq!(failure.message(), "disk full");
/// assert!(!failure.is_timeout());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure(Box<Inner>);

#[derive(Debug, Clone, PartialEq)]
struct Inner {
    exc_type: String,
    exc_module: String,
    /// The exception arguments, as stored (exact, whoever wrote them).
    exc_message: RawJson,
    traceback: Option<String>,
}

impl TaskFailure {
    /// A failure with an explicit exception type, module and message.
    ///
    /// ```
    /// let f = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// assert_eq!(f.to_string(), "ValueError: bad input");
    /// ```
    pub fn new(exc_type: &str, exc_module: &str, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            exc_type: exc_type.to_owned(),
            exc_module: exc_module.to_owned(),
            exc_message: RawJson::from_serialize(&[message.into()]).expect("text serializes"),
            traceback: None,
        }))
    }

    /// The failure of a task that returned `Err(error)`: the type is the error's Rust type
    /// name, the message its `Display`, the traceback its `Debug` (which shows the cause chain
    /// for `anyhow::Error`).
    ///
    /// ```
    /// let f = taskq::TaskFailure::from_error(&"12x".parse::<u32>().unwrap_err());
    /// assert_eq!(f.exc_type(), "ParseIntError");
    /// assert_eq!(f.message(), "invalid digit found in string");
    /// ```
    pub fn from_error<E: fmt::Display + fmt::Debug + ?Sized>(error: &E) -> Self {
        let mut failure = Self::new(
            short_type_name(std::any::type_name::<E>()),
            RUST_EXC_MODULE,
            error.to_string(),
        );
        failure.0.traceback = Some(format!("{error:?}"));
        failure
    }

    /// The failure of a task that panicked.
    ///
    /// ```
    /// let f = taskq::TaskFailure::panic("index out of bounds");
    /// assert!(f.is_panic());
    /// ```
    pub fn panic(message: impl Into<String>) -> Self {
        let message = message.into();
        let mut failure = Self::new("TaskPanic", RUST_EXC_MODULE, message.clone());
        failure.0.traceback = Some(format!("task panicked: {message}"));
        failure
    }

    /// The failure of a task cancelled at its hard time limit (Celery's `TimeLimitExceeded`).
    ///
    /// ```
    /// let f = taskq::TaskFailure::time_limit_exceeded(2.5);
    /// assert!(f.is_timeout());
    /// assert_eq!(f.message(), "2.5");
    /// ```
    pub fn time_limit_exceeded(seconds: f64) -> Self {
        Self(Box::new(Inner {
            exc_type: "TimeLimitExceeded".to_owned(),
            exc_module: "billiard.exceptions".to_owned(),
            exc_message: RawJson::from_serialize(&[seconds]).expect("a number serializes"),
            traceback: Some(format!(
                "TimeLimitExceeded: task exceeded its time limit of {seconds} s"
            )),
        }))
    }

    /// The failure of a task stopped at its soft time limit because it did not watch it
    /// (Celery's `SoftTimeLimitExceeded`, raised inside a Python task and left uncaught).
    /// Stored as Celery's own workers store it: module `billiard.exceptions` (where Celery's
    /// `celery.exceptions.SoftTimeLimitExceeded` is defined) and no arguments, so Python's
    /// `AsyncResult.get()` raises that very class.
    ///
    /// ```
    /// let f = taskq::TaskFailure::soft_time_limit_exceeded(1.0);
    /// assert!(f.is_soft_timeout() && !f.is_timeout());
    /// assert_eq!((f.exc_type(), f.exc_module()), ("SoftTimeLimitExceeded", "billiard.exceptions"));
    /// ```
    pub fn soft_time_limit_exceeded(seconds: f64) -> Self {
        Self(Box::new(Inner {
            exc_type: "SoftTimeLimitExceeded".to_owned(),
            exc_module: "billiard.exceptions".to_owned(),
            exc_message: RawJson::from_serialize(&[(); 0]).expect("[] serializes"),
            traceback: Some(format!(
                "SoftTimeLimitExceeded: task exceeded its soft time limit of {seconds} s \
                 without watching it (taskq::request::soft_time_limit)"
            )),
        }))
    }

    /// The failure stored for a message naming a task no worker has registered.
    ///
    /// ```
    /// let failure = taskq::TaskFailure::not_registered("tasks.nope");
    /// assert!(failure.is_not_registered());
    /// assert!(failure.to_string().starts_with("NotRegistered: tasks.nope (no worker that took it"));
    /// ```
    ///
    /// The message is the task name, as Celery's `NotRegistered` has it; the traceback says
    /// how a taskq worker gets to know a task ([`NOT_REGISTERED_HINT`](Self::NOT_REGISTERED_HINT)).
    pub fn not_registered(name: &str) -> Self {
        Self::new("NotRegistered", "celery.exceptions", name).with_traceback(format!(
            "NotRegistered: no worker that took this message knows a task named {name:?}. {}",
            Self::NOT_REGISTERED_HINT
        ))
    }

    /// How a task gets into a taskq worker: what `NotRegistered` failures and the worker's
    /// log say.
    pub const NOT_REGISTERED_HINT: &'static str = "A taskq worker knows the #[taskq::task] \
        functions linked into its binary: make the worker binary depend on the crate that \
        defines the task and reference it from main (e.g. `let _ = &my_tasks::send_email;`), \
        check the name given in #[taskq::task(name = \"...\")] matches the one sent, and check \
        the worker's start-up banner lists it under [tasks].";

    /// The failure stored for a task whose worker kept dying while it held it (Celery's
    /// `WorkerLostError`).
    ///
    /// ```
    /// let f = taskq::TaskFailure::worker_lost(5);
    /// assert_eq!((f.exc_type(), f.exc_module()), ("WorkerLostError", "billiard.exceptions"));
    /// ```
    pub fn worker_lost(times: u32) -> Self {
        Self::new(
            "WorkerLostError",
            "billiard.exceptions",
            format!("the task's worker died or froze {times} times while running it"),
        )
    }

    /// The failure stored for a revoked or expired task (`reason` is `"revoked"` or `"expired"`).
    ///
    /// ```
    /// assert!(taskq::TaskFailure::revoked("expired").is_revoked());
    /// ```
    pub fn revoked(reason: &str) -> Self {
        Self::new("TaskRevokedError", "celery.exceptions", reason)
    }

    /// Arguments that do not fit the task's signature (Python's `TypeError`).
    ///
    /// ```
    /// assert_eq!(taskq::TaskFailure::bad_arguments("missing x").exc_type(), "TypeError");
    /// ```
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::new("TypeError", "builtins", message)
    }

    /// A return value that could not be serialized.
    ///
    /// ```
    /// let error = serde_json::from_str::<u8>("x").unwrap_err();
    /// assert_eq!(taskq::TaskFailure::result_not_serializable(&error).exc_type(), "EncodeError");
    /// ```
    pub fn result_not_serializable(error: &serde_json::Error) -> Self {
        Self::new(
            "EncodeError",
            "kombu.exceptions",
            format!("task result is not serializable: {error}"),
        )
    }

    /// A message serialized with something other than JSON (pickle, yaml, msgpack): kombu's
    /// `ContentDisallowed`, as a Python worker with Celery's default `accept_content` raises.
    ///
    /// ```
    /// let f = taskq::TaskFailure::content_disallowed("content type \"application/x-yaml\" is not supported");
    /// assert_eq!((f.exc_type(), f.exc_module()), ("ContentDisallowed", "kombu.exceptions"));
    /// ```
    pub fn content_disallowed(reason: impl Into<String>) -> Self {
        Self::new("ContentDisallowed", "kombu.exceptions", reason)
    }

    /// A message body that cannot be decoded (bad base64, not JSON, unsupported or corrupt
    /// compression, a `NaN` argument): kombu's `DecodeError`.
    ///
    /// ```
    /// assert_eq!(taskq::TaskFailure::decode_error("body is not JSON").exc_type(), "DecodeError");
    /// ```
    pub fn decode_error(reason: impl Into<String>) -> Self {
        Self::new("DecodeError", "kombu.exceptions", reason)
    }

    /// A message that is not a valid task (bad body shape, `eta`, `timelimit`, `retries`):
    /// Celery's `InvalidTaskError`, which Celery raises for the same headers.
    ///
    /// ```
    /// let f = taskq::TaskFailure::invalid_task("eta \"not-a-date\" is not an ISO 8601 time");
    /// assert_eq!((f.exc_type(), f.exc_module()), ("InvalidTaskError", "celery.exceptions"));
    /// ```
    pub fn invalid_task(reason: impl Into<String>) -> Self {
        Self::new("InvalidTaskError", "celery.exceptions", reason)
    }

    /// A message over the size limit (`TASKQ_MAX_MESSAGE_SIZE`), as stored or decompressed.
    /// Celery has no such exception; Python builds `MessageTooLarge` on the fly from the
    /// non-importable module [`RUST_EXC_MODULE`].
    ///
    /// ```
    /// let f = taskq::TaskFailure::message_too_large("message is 20000000 bytes, over the limit");
    /// assert_eq!((f.exc_type(), f.exc_module()), ("MessageTooLarge", taskq::RUST_EXC_MODULE));
    /// ```
    pub fn message_too_large(reason: impl Into<String>) -> Self {
        Self::new("MessageTooLarge", RUST_EXC_MODULE, reason)
    }

    /// A message asking for something taskq does not run yet (a canvas continuation): Python's
    /// `NotImplementedError`.
    ///
    /// ```
    /// let f = taskq::TaskFailure::not_implemented("chain is not run by taskq workers yet");
    /// assert_eq!((f.exc_type(), f.exc_module()), ("NotImplementedError", "builtins"));
    /// ```
    pub fn not_implemented(reason: impl Into<String>) -> Self {
        Self::new("NotImplementedError", "builtins", reason)
    }

    /// Replaces the traceback text.
    ///
    /// ```
    /// let failure = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// let failure = failure.with_traceback("at step 3");
    /// assert_eq!(failure.traceback(), Some("at step 3"));
    /// ```
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.0.traceback = Some(traceback.into());
        self
    }

    /// The exception type name, e.g. `"ValueError"`, `"TimeLimitExceeded"`, `"ReportError"`.
    ///
    /// ```
    /// let failure = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// assert_eq!(failure.exc_type(), "ValueError");
    /// ```
    pub fn exc_type(&self) -> &str {
        &self.0.exc_type
    }

    /// The exception's module, e.g. `"builtins"` or [`RUST_EXC_MODULE`].
    ///
    /// ```
    /// let failure = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// assert_eq!(failure.exc_module(), "builtins");
    /// ```
    pub fn exc_module(&self) -> &str {
        &self.0.exc_module
    }

    /// The message: the exception arguments joined as text.
    ///
    /// ```
    /// let failure = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// assert_eq!(failure.message(), "bad input");
    /// ```
    pub fn message(&self) -> String {
        match self.0.exc_message.tree() {
            Ok(Tree::Array(items)) => items.iter().map(text_of).collect::<Vec<_>>().join(", "),
            Ok(other) => text_of(&other),
            Err(_) => self.0.exc_message.to_string(),
        }
    }

    /// The exception's arguments as stored (`exc_message`).
    pub(crate) fn exc_message(&self) -> &RawJson {
        &self.0.exc_message
    }

    /// The traceback text, when the failure has one.
    ///
    /// ```
    /// let failure = taskq::TaskFailure::new("ValueError", "builtins", "bad input");
    /// assert_eq!(failure.traceback(), None);
    /// ```
    pub fn traceback(&self) -> Option<&str> {
        self.0.traceback.as_deref()
    }

    /// Whether the task was cancelled at its (hard) time limit. A task stopped at its soft
    /// limit is [`is_soft_timeout`](Self::is_soft_timeout) instead.
    ///
    /// ```
    /// assert!(taskq::TaskFailure::time_limit_exceeded(1.0).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.0.exc_type == "TimeLimitExceeded"
    }

    /// Whether the task was stopped at its soft time limit (`SoftTimeLimitExceeded`).
    ///
    /// ```
    /// assert!(taskq::TaskFailure::soft_time_limit_exceeded(2.0).is_soft_timeout());
    /// ```
    pub fn is_soft_timeout(&self) -> bool {
        self.0.exc_type == "SoftTimeLimitExceeded"
    }

    /// Whether the task was revoked or had expired.
    ///
    /// ```
    /// assert!(taskq::TaskFailure::revoked("revoked").is_revoked());
    /// ```
    pub fn is_revoked(&self) -> bool {
        self.0.exc_type == "TaskRevokedError"
    }

    /// Whether the task panicked.
    ///
    /// ```
    /// assert!(taskq::TaskFailure::panic("oops").is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.0.exc_type == "TaskPanic"
    }

    /// Whether no worker knew the task's name.
    ///
    /// ```
    /// assert!(taskq::TaskFailure::not_registered("x").is_not_registered());
    /// ```
    pub fn is_not_registered(&self) -> bool {
        self.0.exc_type == "NotRegistered"
    }

    /// Whether the task's own code failed (returned `Err` or panicked), as opposed to taskq
    /// stopping it (hard time limit, revoke, bad arguments, unknown name): only those are
    /// retried. The soft time limit counts as the task's own: Celery raises
    /// `SoftTimeLimitExceeded` inside the task, where `autoretry_for=(Exception,)` retries it.
    pub(crate) fn raised_by_task(&self) -> bool {
        (self.0.exc_module == RUST_EXC_MODULE && self.0.exc_type != "TaskCancelled")
            || self.is_soft_timeout()
    }

    /// The stored `result` object: `{"exc_type", "exc_message", "exc_module"}`.
    pub(crate) fn to_exception_json(&self) -> RawJson {
        #[derive(Serialize)]
        struct Exception<'a> {
            exc_type: &'a str,
            exc_message: &'a RawJson,
            exc_module: &'a str,
        }
        RawJson::from_serialize(&Exception {
            exc_type: &self.0.exc_type,
            exc_message: &self.0.exc_message,
            exc_module: &self.0.exc_module,
        })
        .expect("an exception object serializes")
    }

    /// Reads a stored exception object; tolerant of the shapes Python writes.
    pub(crate) fn from_exception_json(result: &RawJson, traceback: Option<String>) -> Self {
        let result = result.to_object().unwrap_or_default();
        let field = |name: &str| {
            result
                .get(name)
                .and_then(|v| v.parse::<String>().ok())
                .unwrap_or_default()
        };
        Self(Box::new(Inner {
            exc_type: match field("exc_type") {
                t if t.is_empty() => "Exception".to_owned(),
                t => t,
            },
            exc_module: field("exc_module"),
            exc_message: result
                .get("exc_message")
                .cloned()
                .unwrap_or_else(RawJson::null),
            traceback,
        }))
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Like Python's traceback line: an exception without arguments shows its name alone.
        match self.message() {
            message if message.is_empty() => f.write_str(&self.0.exc_type)?,
            message => write!(f, "{}: {message}", self.0.exc_type)?,
        }
        if self.is_not_registered() {
            f.write_str(
                " (no worker that took it has a task of that name; a taskq worker has the \
                 #[taskq::task]s its binary references: make it depend on the task's crate \
                 and name the task in main)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskFailure {}

/// An exception argument as text: a string as it is, anything else as compact JSON.
fn text_of(value: &Tree<'_>) -> String {
    match value {
        Tree::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// `"my_crate::errors::ReportError<u8>"` → `"ReportError"`.
fn short_type_name(full: &str) -> &str {
    let without_generics = full.split('<').next().unwrap_or(full);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

/// What a task function may return: `Result<T, E>` (any `E: Display + Debug`, `anyhow::Error`
/// included) or, through the macro, a plain `T`.
///
/// Not implemented by users; `#[task]` uses it to find the success type.
///
/// ```
/// use taskq::TaskReturn;
///
/// let ok: Result<u8, std::fmt::Error> = Ok(1);
/// assert_eq!(ok.into_outcome().unwrap(), 1);
/// let err: Result<u8, std::fmt::Error> = Err(std::fmt::Error);
/// assert_eq!(err.into_outcome().unwrap_err().exc_type(), "Error");
/// ```
pub trait TaskReturn: Send + 'static {
    /// The success value.
    type Ok;
    /// Splits the return value into success or failure.
    fn into_outcome(self) -> Result<Self::Ok, TaskFailure>;
}

impl<T: Send + 'static, E: fmt::Display + fmt::Debug + Send + 'static> TaskReturn for Result<T, E> {
    type Ok = T;
    fn into_outcome(self) -> Result<T, TaskFailure> {
        self.map_err(|e| TaskFailure::from_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn short_type_names_drop_paths_and_generics() {
        assert_eq!(short_type_name("a::b::ReportError"), "ReportError");
        assert_eq!(short_type_name("anyhow::Error"), "Error");
        assert_eq!(short_type_name("x::Wrapper<y::Z>"), "Wrapper");
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn exception_json_round_trips() {
        let f = TaskFailure::new("ValueError", "builtins", "bad");
        let back = TaskFailure::from_exception_json(&f.to_exception_json(), None);
        assert_eq!(back, f);
    }

    #[test]
    fn python_exception_shapes_read_back() {
        let list = json!({"exc_type": "ValueError", "exc_message": ["bad thing", 42], "exc_module": "builtins"});
        assert_eq!(
            TaskFailure::from_exception_json(&list.into(), None).message(),
            "bad thing, 42"
        );
        let scalar = json!({"exc_type": "TaskPanic", "exc_message": "boom as str"});
        assert_eq!(
            TaskFailure::from_exception_json(&scalar.into(), None).message(),
            "boom as str"
        );
        let untyped = json!({"whatever": 1});
        assert_eq!(
            TaskFailure::from_exception_json(&untyped.into(), None).exc_type(),
            "Exception"
        );
    }

    #[test]
    fn exceptions_are_written_in_celerys_order_with_arguments_exact() {
        let f = TaskFailure::new("ValueError", "builtins", "bad");
        assert_eq!(
            f.to_exception_json().as_str(),
            r#"{"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"}"#
        );
        let python = RawJson::from_text(
            r#"{"exc_type": "ValueError", "exc_message": [100000000000000000000000000001, {"b": 1, "a": 2}], "exc_module": "builtins"}"#,
        )
        .unwrap();
        let failure = TaskFailure::from_exception_json(&python, None);
        assert_eq!(
            failure.message(),
            r#"100000000000000000000000000001, {"b":1,"a":2}"#
        );
        assert_eq!(failure.to_exception_json(), python);
    }
}
