//! Task messages in Celery's protocol version 2, inside kombu's Redis envelope.
//!
//! ```text
//! list "celery" ──LPUSH──► {"body": base64(JSON [args, kwargs, embed]),
//!                           "content-encoding": "utf-8", "content-type": "application/json",
//!                           "headers": {"lang", "task", "id", "eta", "expires", ...},
//!                           "properties": {"correlation_id", "delivery_info", "delivery_tag", ...}}
//! ```
//!
//! [`NewMessage`] builds the exact envelope a Python producer writes; [`TaskMessage::decode`]
//! reads what Python or Rust producers write (protocol 2, and protocol 1 bodies), with a
//! precise reason when it cannot.

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::DEFAULT_MAX_MESSAGE_SIZE;
use crate::pyjson;

mod compression;
mod refusal;
mod typed;

pub use refusal::{Refusal, RefusalKind};

/// Names of the protocol 2 headers taskq reads or validates.
pub(crate) mod header {
    /// The task id.
    pub(crate) const ID: &str = "id";
    /// The task name; its presence marks a protocol 2 message.
    pub(crate) const TASK: &str = "task";
    /// Not before this time (ISO 8601).
    pub(crate) const ETA: &str = "eta";
    /// Discard if not started by this time (ISO 8601).
    pub(crate) const EXPIRES: &str = "expires";
    /// `[hard, soft]` time limits in seconds.
    pub(crate) const TIMELIMIT: &str = "timelimit";
    /// How many times the task was retried.
    pub(crate) const RETRIES: &str = "retries";
    /// kombu's compression of the body, by content type (see `compression.rs`).
    pub(crate) const COMPRESSION: &str = "compression";
}

/// Header counting how many workers put a message back because they did not know its task.
/// Python Celery ignores headers it does not know.
pub const UNKNOWN_ATTEMPTS_HEADER: &str = "taskq_unknown_attempts";

/// Returns `raw` with header `name` set to `value`, everything else unchanged in meaning.
///
/// # Errors
///
/// When `raw` is not a JSON object with a `headers` object.
pub(crate) fn with_header(raw: &str, name: &str, value: Value) -> Result<String, String> {
    let mut envelope: Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let headers = envelope
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .ok_or("envelope has no headers object")?;
    headers.insert(name.to_owned(), value);
    pyjson::to_string(&envelope).map_err(|e| e.to_string())
}

/// The envelope of a failed task's next attempt, as Celery's `Task.retry` builds it: the same
/// id, arguments and options, `retries` + 1, the new `eta`, the task itself as `parent_id`,
/// and a fresh delivery tag.
///
/// # Errors
///
/// When `raw` is not an envelope with headers and properties.
pub(crate) fn retry_envelope(
    raw: &str,
    retries: u32,
    eta: f64,
    task_id: &str,
) -> Result<String, String> {
    let mut envelope = parse_envelope(raw).map_err(|r| r.to_string())?;
    let eta = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(eta.max(0.0));
    let headers = envelope
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .ok_or("envelope has no headers object")?;
    headers.insert("retries".to_owned(), retries.into());
    headers.insert("eta".to_owned(), format_time(eta).into());
    headers.insert("parent_id".to_owned(), task_id.into());
    let properties = envelope
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or("envelope has no properties object")?;
    properties.insert(
        "delivery_tag".to_owned(),
        uuid::Uuid::new_v4().to_string().into(),
    );
    pyjson::to_string(&envelope).map_err(|e| e.to_string())
}

/// Content type of JSON-serialized messages and results.
///
/// ```
/// assert_eq!(taskq::message::CONTENT_TYPE_JSON, "application/json");
/// ```
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// A task call about to be published.
///
/// ```
/// use taskq::message::NewMessage;
///
/// let msg = NewMessage::new("tasks.add", "2f5d1c2e-0000-4000-8000-000000000000")
///     .args(vec![2.into(), 3.into()]);
/// let envelope = msg.encode("celery").unwrap();
/// assert!(envelope.starts_with(r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwg"#));
/// ```
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Registered task name.
    pub task: String,
    /// Task id (the result key suffix).
    pub id: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Not before this time.
    pub eta: Option<SystemTime>,
    /// Discard if not started by this time.
    pub expires: Option<SystemTime>,
    /// `[hard, soft]` time limits in seconds.
    pub time_limit: (Option<f64>, Option<f64>),
    /// 0 (first) to 9 (last) on Redis.
    pub priority: u8,
    /// Store no result.
    pub ignore_result: bool,
    /// How many times this task has been retried.
    pub retries: u32,
    /// Id of the task that sent this one.
    pub parent_id: Option<String>,
    /// Id of the first task of the workflow (defaults to `id`).
    pub root_id: Option<String>,
}

impl NewMessage {
    /// A call of `task` with id `id`, no arguments and default options.
    pub fn new(task: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            id: id.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            eta: None,
            expires: None,
            time_limit: (None, None),
            priority: 0,
            ignore_result: false,
            retries: 0,
            parent_id: None,
            root_id: None,
        }
    }

    /// Sets the positional arguments.
    pub fn args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }

    /// Encodes the envelope for `queue`, exactly as Celery 5 writes it (key order, separators,
    /// base64 body, a fresh `delivery_tag`).
    ///
    /// # Errors
    ///
    /// Fails only if an argument cannot be serialized.
    pub fn encode(&self, queue: &str) -> serde_json::Result<String> {
        self.encode_with_tag(queue, &uuid::Uuid::new_v4().to_string())
    }

    pub(crate) fn encode_with_tag(
        &self,
        queue: &str,
        delivery_tag: &str,
    ) -> serde_json::Result<String> {
        let embed = json!({"callbacks": null, "errbacks": null, "chain": null, "chord": null});
        let body = pyjson::to_string(&(&self.args, &self.kwargs, embed))?;
        let envelope = Envelope {
            body: base64::engine::general_purpose::STANDARD.encode(body),
            content_encoding: "utf-8",
            content_type: CONTENT_TYPE_JSON,
            headers: Headers {
                lang: "py",
                task: &self.task,
                id: &self.id,
                shadow: None,
                eta: self.eta.map(format_time),
                expires: self.expires.map(format_time),
                group: None,
                group_index: None,
                retries: self.retries,
                timelimit: [self.time_limit.0, self.time_limit.1],
                root_id: self.root_id.as_deref().unwrap_or(&self.id),
                parent_id: self.parent_id.as_deref(),
                argsrepr: truncate_repr(args_repr(&self.args)),
                kwargsrepr: truncate_repr(py_repr(&Value::Object(self.kwargs.clone()))),
                origin: origin(),
                ignore_result: self.ignore_result,
                replaced_task_nesting: 0,
                stamped_headers: None,
                stamps: Map::new(),
            },
            properties: Properties {
                correlation_id: &self.id,
                reply_to: process_oid(),
                delivery_mode: 2,
                delivery_info: DeliveryInfo {
                    exchange: "",
                    routing_key: queue,
                },
                priority: self.priority,
                body_encoding: "base64",
                delivery_tag,
            },
        };
        pyjson::to_string(&envelope)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    body: String,
    #[serde(rename = "content-encoding")]
    content_encoding: &'a str,
    #[serde(rename = "content-type")]
    content_type: &'a str,
    headers: Headers<'a>,
    properties: Properties<'a>,
}

#[derive(Serialize)]
struct Headers<'a> {
    lang: &'a str,
    task: &'a str,
    id: &'a str,
    shadow: Option<&'a str>,
    eta: Option<String>,
    expires: Option<String>,
    group: Option<&'a str>,
    group_index: Option<u32>,
    retries: u32,
    timelimit: [Option<f64>; 2],
    root_id: &'a str,
    parent_id: Option<&'a str>,
    argsrepr: String,
    kwargsrepr: String,
    origin: &'a str,
    ignore_result: bool,
    replaced_task_nesting: u32,
    stamped_headers: Option<Vec<String>>,
    stamps: Map<String, Value>,
}

#[derive(Serialize)]
struct Properties<'a> {
    correlation_id: &'a str,
    reply_to: &'a str,
    delivery_mode: u8,
    delivery_info: DeliveryInfo<'a>,
    priority: u8,
    body_encoding: &'a str,
    delivery_tag: &'a str,
}

#[derive(Serialize)]
struct DeliveryInfo<'a> {
    exchange: &'a str,
    routing_key: &'a str,
}

/// A received task message, decoded.
///
/// ```
/// use taskq::message::{NewMessage, TaskMessage};
///
/// let raw = NewMessage::new("tasks.add", "id-1").args(vec![1.into(), 2.into()]).encode("celery").unwrap();
/// let msg = TaskMessage::decode(&raw).unwrap();
/// assert_eq!((msg.task.as_str(), msg.id.as_str()), ("tasks.add", "id-1"));
/// assert_eq!(msg.args, vec![serde_json::json!(1), serde_json::json!(2)]);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskMessage {
    /// Registered task name.
    pub task: String,
    /// Task id.
    pub id: String,
    /// Positional arguments (kombu tags removed).
    pub args: Vec<Value>,
    /// Keyword arguments (kombu tags removed).
    pub kwargs: Map<String, Value>,
    /// Not before this time.
    pub eta: Option<DateTime<Utc>>,
    /// Discard if not started by this time.
    pub expires: Option<DateTime<Utc>>,
    /// Retry count.
    pub retries: u32,
    /// Hard time limit in seconds.
    pub hard_time_limit: Option<f64>,
    /// Soft time limit in seconds (see [`crate::request::soft_time_limit`]).
    pub soft_time_limit: Option<f64>,
    /// `Some(true)` when the producer asked for no result; `None` when it did not say.
    pub ignore_result: Option<bool>,
    /// Parent task id.
    pub parent_id: Option<String>,
    /// Id of the first task of the workflow.
    pub root_id: Option<String>,
    /// Group id, when the task belongs to a group.
    pub group: Option<String>,
    /// The kombu delivery tag.
    pub delivery_tag: String,
    /// Queue it was routed to (`delivery_info.routing_key`).
    pub routing_key: String,
    /// Priority 0–9.
    pub priority: u8,
    /// How many workers have put this message back because they did not know its task.
    pub unknown_attempts: u32,
    /// How many times recovery took this message back from a worker that died or froze.
    pub recoveries: u32,
    /// How many of those recoveries happened while its task was running (it may be what
    /// kills its workers).
    pub crashes: u32,
}

impl TaskMessage {
    /// Decodes a kombu envelope, decompressing a compressed body to at most
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] bytes (see [`decode_limited`](Self::decode_limited)).
    ///
    /// # Errors
    ///
    /// A [`Refusal`] when the text is not a task message taskq can run: not JSON, missing
    /// headers or properties, a content type other than JSON, an unsupported compression, a
    /// body that is not `[args, kwargs, embed]`, an `eta`, `expires`, `timelimit` or `retries`
    /// header Celery would not accept either. It carries the task id when it could be read.
    ///
    /// ```
    /// let err = taskq::message::TaskMessage::decode("not json").unwrap_err();
    /// assert!(err.reason().starts_with("envelope is not JSON"));
    /// ```
    pub fn decode(raw: &str) -> Result<Self, Refusal> {
        Self::decode_limited(raw, DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Decodes a kombu envelope; a compressed body may decompress to at most `max_bytes`.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode); a body that decompresses to more than `max_bytes` is a
    /// [`RefusalKind::TooLarge`] refusal.
    ///
    /// ```
    /// use taskq::message::{NewMessage, TaskMessage};
    ///
    /// let raw = NewMessage::new("tasks.add", "id-1").encode("celery").unwrap();
    /// assert_eq!(TaskMessage::decode_limited(&raw, 4096).unwrap().id, "id-1");
    /// ```
    pub fn decode_limited(raw: &str, max_bytes: usize) -> Result<Self, Refusal> {
        match typed::decode(raw) {
            Some(message) => Ok(message),
            None => Self::decode_general(raw, max_bytes),
        }
    }

    /// Reads any message taskq accepts, protocol 1 or 2, through `Value` maps; slower than
    /// the typed path, which covers the common shape. A refusal carries the `id` header when
    /// there is one, whatever else is wrong.
    fn decode_general(raw: &str, max_bytes: usize) -> Result<Self, Refusal> {
        let envelope = parse_envelope(raw)?;
        let headers = envelope
            .get("headers")
            .and_then(Value::as_object)
            .ok_or_else(|| Refusal::invalid("envelope has no `headers` object"))?;
        let id = headers.get(header::ID).and_then(Value::as_str);
        Self::decode_parts(&envelope, headers, max_bytes).map_err(|r| r.or_task_id(id))
    }

    fn decode_parts(
        envelope: &Map<String, Value>,
        headers: &Map<String, Value>,
        max_bytes: usize,
    ) -> Result<Self, Refusal> {
        let properties = object_field(envelope, "properties").map_err(Refusal::invalid)?;
        check_content_type(envelope)?;
        let body = decode_body(envelope, headers, properties, max_bytes)?;
        let (task, id, args, kwargs, meta) = if headers.contains_key(header::TASK) {
            split_v2(headers, body)
        } else {
            split_v1(body)
        }
        .map_err(Refusal::invalid)?;
        let checked = CheckedMeta::read(&meta)
            .map_err(|reason| Refusal::invalid(reason).or_task_id(Some(&id)))?;
        Ok(Self::from_parts(
            task, id, args, kwargs, checked, &meta, properties,
        ))
    }

    fn from_parts(
        task: String,
        id: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        checked: CheckedMeta,
        meta: &Map<String, Value>,
        properties: &Map<String, Value>,
    ) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let info = properties.get("delivery_info");
        Self {
            task,
            id,
            args,
            kwargs,
            eta: checked.eta,
            expires: checked.expires,
            retries: checked.retries,
            hard_time_limit: checked.time_limits.0,
            soft_time_limit: checked.time_limits.1,
            ignore_result: meta.get("ignore_result").and_then(Value::as_bool),
            parent_id: text(meta.get("parent_id")),
            root_id: text(meta.get("root_id")),
            group: text(meta.get("group")).or_else(|| text(meta.get("taskset"))),
            delivery_tag: text(properties.get("delivery_tag")).unwrap_or_default(),
            routing_key: text(info.and_then(|i| i.get("routing_key"))).unwrap_or_default(),
            priority: properties
                .get("priority")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(9) as u8,
            unknown_attempts: meta
                .get(UNKNOWN_ATTEMPTS_HEADER)
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            recoveries: meta
                .get("taskq_recoveries")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            crashes: meta
                .get("taskq_crashes")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
        }
    }

    /// The hard time limit, when positive. The soft one ([`soft_time_limit`](Self::soft_time_limit))
    /// is enforced beside it.
    ///
    /// ```
    /// use taskq::message::{NewMessage, TaskMessage};
    ///
    /// let mut msg = NewMessage::new("tasks.slow", "id-2");
    /// msg.time_limit = (Some(30.0), None);
    /// let decoded = TaskMessage::decode(&msg.encode("celery").unwrap()).unwrap();
    /// assert_eq!(decoded.time_limit(), Some(30.0));
    /// ```
    pub fn time_limit(&self) -> Option<f64> {
        self.hard_time_limit.filter(|s| *s > 0.0)
    }
}

/// The headers whose values Celery checks (or would trip over) before it runs a task, checked
/// the same way: a message with a wrong one is refused, never run with the value ignored.
struct CheckedMeta {
    eta: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    retries: u32,
    time_limits: (Option<f64>, Option<f64>),
}

impl CheckedMeta {
    fn read(meta: &Map<String, Value>) -> Result<Self, String> {
        Ok(Self {
            eta: optional_time(meta, header::ETA)?,
            expires: optional_time(meta, header::EXPIRES)?,
            retries: retry_count(meta)?,
            time_limits: time_limits(meta)?,
        })
    }
}

/// A time header: absent or `null`, or an ISO 8601 time. Celery's `Request` raises
/// `InvalidTaskError` for an `eta` or `expires` that `maybe_iso8601` cannot parse.
fn optional_time(meta: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match meta.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_time(text)
            .map(Some)
            .ok_or_else(|| format!("{name} {text:?} is not an ISO 8601 time")),
        Some(other) => Err(format!("{name} {other} is not an ISO 8601 time string")),
    }
}

/// The `retries` header: absent or `null` (0), or a whole number from 0. Celery adds 1 to it
/// on each retry and compares it with `max_retries`, so a negative count would buy a task
/// extra retries and a non-number would fail only at its first retry; taskq refuses both.
fn retry_count(meta: &Map<String, Value>) -> Result<u32, String> {
    match meta.get(header::RETRIES) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("retries {value} is not a count of retries (0 or more)")),
    }
}

/// The `timelimit` header: absent or `null`, or `[hard, soft]` with each a number of seconds
/// or `null`. Celery unpacks it as exactly two values and hands them to the pool as timeouts,
/// where anything else fails; taskq refuses the message instead of running it unlimited.
fn time_limits(meta: &Map<String, Value>) -> Result<(Option<f64>, Option<f64>), String> {
    let seconds = |v: &Value| match v {
        Value::Null => Some(None),
        other => other.as_f64().map(Some),
    };
    match meta.get(header::TIMELIMIT) {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Array(pair)) if pair.len() == 2 => {
            match (seconds(&pair[0]), seconds(&pair[1])) {
                (Some(hard), Some(soft)) => Ok((hard, soft)),
                _ => Err(format!(
                    "timelimit {} is not [hard, soft] in seconds or null",
                    Value::Array(pair.clone())
                )),
            }
        }
        Some(other) => Err(format!(
            "timelimit {other} is not [hard, soft] in seconds or null"
        )),
    }
}

type Parts = (
    String,
    String,
    Vec<Value>,
    Map<String, Value>,
    Map<String, Value>,
);

fn split_v2(headers: &Map<String, Value>, body: Value) -> Result<Parts, String> {
    let task = string_field(headers, header::TASK, "headers")?;
    let id = string_field(headers, header::ID, "headers")?;
    let (args, kwargs) = split_body_v2(body)?;
    Ok((task, id, args, kwargs, headers.clone()))
}

/// The arguments of a protocol 2 body, `[args, kwargs, embed]`.
fn split_body_v2(body: Value) -> Result<(Vec<Value>, Map<String, Value>), String> {
    let Value::Array(mut parts) = body else {
        return Err("body is not a [args, kwargs, embed] array".to_owned());
    };
    if parts.len() != 3 {
        return Err(format!(
            "body has {} elements, expected [args, kwargs, embed]",
            parts.len()
        ));
    }
    parts.truncate(2);
    let kwargs = parts.pop().unwrap_or_default();
    let args = parts.pop().unwrap_or_default();
    args_and_kwargs(args, kwargs)
}

fn split_v1(body: Value) -> Result<Parts, String> {
    let Value::Object(mut body) = body else {
        return Err(
            "message has no `task` header and its body is not a protocol 1 object".to_owned(),
        );
    };
    let task = string_field(&body, "task", "body")?;
    let id = string_field(&body, "id", "body")?;
    let args = body.remove("args").unwrap_or(Value::Array(Vec::new()));
    let kwargs = body.remove("kwargs").unwrap_or(Value::Object(Map::new()));
    let (args, kwargs) = args_and_kwargs(args, kwargs)?;
    Ok((task, id, args, kwargs, body))
}

fn args_and_kwargs(args: Value, kwargs: Value) -> Result<(Vec<Value>, Map<String, Value>), String> {
    let Value::Array(args) = pyjson::untag(args) else {
        return Err("args is not a list".to_owned());
    };
    let kwargs = match pyjson::untag(kwargs) {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err("kwargs is not a mapping".to_owned()),
    };
    Ok((args, kwargs))
}

/// The envelope as a JSON object, or why it is not one.
fn parse_envelope(raw: &str) -> Result<Map<String, Value>, Refusal> {
    let parsed = serde_json::from_str(raw)
        .map_err(|e| Refusal::undecodable(format!("envelope is not JSON: {e}")))?;
    match parsed {
        Value::Object(map) => Ok(map),
        _ => Err(Refusal::undecodable("envelope is not a JSON object")),
    }
}

fn object_field<'a>(
    map: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a Map<String, Value>, String> {
    map.get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("envelope has no `{name}` object"))
}

fn string_field(map: &Map<String, Value>, name: &str, place: &str) -> Result<String, String> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{place} have no string `{name}`"))
}

/// Only JSON is accepted, as by a Python worker with Celery's default `accept_content`:
/// pickle would run code chosen by whoever can write to the queue.
fn check_content_type(envelope: &Map<String, Value>) -> Result<(), Refusal> {
    let refuse = |reason: String| Err(Refusal::new(RefusalKind::ContentDisallowed, reason));
    match envelope.get("content-type").and_then(Value::as_str) {
        Some(CONTENT_TYPE_JSON) => Ok(()),
        Some(other) => refuse(format!(
            "content type {other:?}{} is not supported: taskq accepts {CONTENT_TYPE_JSON} only",
            serializer_name(other)
        )),
        None => refuse("envelope has no content-type".to_owned()),
    }
}

/// ` (pickle)` for kombu's content type of a known serializer, to make refusals plain.
fn serializer_name(content_type: &str) -> &'static str {
    match content_type {
        "application/x-python-serialize" => " (pickle)",
        "application/x-yaml" => " (yaml)",
        "application/x-msgpack" => " (msgpack)",
        _ => "",
    }
}

/// The body's JSON: base64-decoded if so encoded, decompressed (to at most `max_bytes`) if
/// the `compression` header names a method, and parsed with Python's literals.
fn decode_body(
    envelope: &Map<String, Value>,
    headers: &Map<String, Value>,
    properties: &Map<String, Value>,
    max_bytes: usize,
) -> Result<Value, Refusal> {
    let body = envelope
        .get("body")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::invalid("envelope has no string `body`"))?;
    let mut bytes = match properties.get("body_encoding").and_then(Value::as_str) {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| Refusal::undecodable(format!("body is not valid base64: {e}")))?,
        _ => body.as_bytes().to_vec(),
    };
    match headers.get(header::COMPRESSION) {
        None | Some(Value::Null) => {}
        Some(Value::String(method)) => {
            bytes = compression::decompress(method, &bytes, max_bytes)?;
        }
        Some(other) => {
            return Err(Refusal::undecodable(format!(
                "compression header {other} is not a method name"
            )))
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| Refusal::undecodable("body is not UTF-8"))?;
    pyjson::from_str_refusing_nan(&text)
        .map_err(|e| Refusal::undecodable(format!("body is not JSON: {e}")))
}

/// Any kombu message with a JSON body: remote-control commands and replies (`celery.pidbox`,
/// `reply.celery.pidbox`) and events (`celeryev`), as they travel on Redis.
///
/// ```
/// use serde_json::json;
/// use taskq::message::KombuMessage;
///
/// let msg = KombuMessage::new("celeryev", "worker.heartbeat", json!({"type": "worker-heartbeat"}))
///     .header("hostname", json!("taskq@host"));
/// let raw = msg.encode().unwrap();
/// let back = KombuMessage::decode(&raw).unwrap();
/// assert_eq!(back.body["type"], "worker-heartbeat");
/// assert_eq!((back.exchange.as_str(), back.routing_key.as_str()), ("celeryev", "worker.heartbeat"));
/// assert_eq!(back.headers["hostname"], "taskq@host");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KombuMessage {
    /// The decoded JSON body.
    pub body: Value,
    /// Message headers (`ticket`, `clock`, `expires`, `hostname`, ...).
    pub headers: Map<String, Value>,
    /// `properties.delivery_info.exchange`.
    pub exchange: String,
    /// `properties.delivery_info.routing_key`.
    pub routing_key: String,
    /// 2 persistent, 1 transient (events, replies).
    pub delivery_mode: u8,
}

impl KombuMessage {
    /// A message for `exchange` with `routing_key`, no headers, transient delivery.
    ///
    /// ```
    /// let msg = taskq::message::KombuMessage::new("celeryev", "task.multi", serde_json::json!([]));
    /// assert_eq!(msg.delivery_mode, 1);
    /// ```
    pub fn new(exchange: &str, routing_key: &str, body: Value) -> Self {
        Self {
            body,
            headers: Map::new(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            delivery_mode: 1,
        }
    }

    /// Sets header `name`.
    ///
    /// ```
    /// let msg = taskq::message::KombuMessage::new("reply.celery.pidbox", "oid", serde_json::json!({}))
    ///     .header("ticket", "t-1".into());
    /// assert_eq!(msg.headers["ticket"], "t-1");
    /// ```
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.headers.insert(name.to_owned(), value);
        self
    }

    /// Encodes the envelope as kombu writes it: base64 JSON body, a fresh delivery tag.
    ///
    /// # Errors
    ///
    /// Fails only if the body cannot be serialized.
    ///
    /// ```
    /// let raw = taskq::message::KombuMessage::new("celery.pidbox", "", serde_json::json!({"method": "ping"}))
    ///     .encode()
    ///     .unwrap();
    /// assert!(raw.contains(r#""delivery_info": {"exchange": "celery.pidbox", "routing_key": ""}"#));
    /// ```
    pub fn encode(&self) -> serde_json::Result<String> {
        let body = pyjson::to_string(&self.body)?;
        let envelope = json!({
            "body": base64::engine::general_purpose::STANDARD.encode(body),
            "content-encoding": "utf-8",
            "content-type": CONTENT_TYPE_JSON,
            "headers": self.headers,
            "properties": {
                "delivery_mode": self.delivery_mode,
                "delivery_info": {"exchange": self.exchange, "routing_key": self.routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        });
        pyjson::to_string(&envelope)
    }

    /// Decodes an envelope with a JSON body.
    ///
    /// # Errors
    ///
    /// The reason, when the text is not such an envelope.
    ///
    /// ```
    /// assert!(taskq::message::KombuMessage::decode("{}").is_err());
    /// ```
    pub fn decode(raw: &str) -> Result<Self, String> {
        let envelope = parse_envelope(raw).map_err(|r| r.to_string())?;
        let envelope = &envelope;
        let headers = envelope
            .get("headers")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let properties = object_field(envelope, "properties")?;
        check_content_type(envelope).map_err(|r| r.to_string())?;
        let body = decode_body(envelope, &headers, properties, DEFAULT_MAX_MESSAGE_SIZE)
            .map_err(|r| r.to_string())?;
        let info = properties.get("delivery_info");
        let text = |name: &str| {
            info.and_then(|i| i.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            body,
            exchange: text("exchange"),
            routing_key: text("routing_key"),
            delivery_mode: properties
                .get("delivery_mode")
                .and_then(Value::as_u64)
                .unwrap_or(1) as u8,
            headers,
        })
    }
}

/// Formats a time as Celery does: `2026-11-21T04:48:05.294171+00:00`.
pub(crate) fn format_time(time: SystemTime) -> String {
    format_datetime(DateTime::<Utc>::from(time))
}

pub(crate) fn format_datetime(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses an ISO-8601 time as Python's `isoparse` would; a time without offset is UTC.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(text, f).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .map(|t| t.and_utc())
        })
}

/// The task id of an envelope too large or too broken to decode, found as the broker's fetch
/// script finds it (`scripts::FETCH`, `first_string`): the first `"id": "..."` (else
/// `"id":"..."`) in the text, if that string holds no escape. In kombu's envelope the `body`
/// comes first but is a string (base64, or JSON whose quotes are all escaped, so no match
/// inside it), then `content-*`, then `headers`, where `id` is the third field: the first
/// match is the `id` header. `None` for protocol 1 messages, whose id is inside the body.
pub(crate) fn task_id_by_search(raw: &str) -> Option<&str> {
    const NEEDLES: [&str; 2] = ["\"id\": \"", "\"id\":\""];
    let (needle, at) = NEEDLES
        .iter()
        .find_map(|needle| raw.find(needle).map(|at| (needle, at)))?;
    let rest = &raw[at + needle.len()..];
    let value = &rest[..rest.find('"')?];
    (!value.is_empty() && !value.contains('\\')).then_some(value)
}

/// `gen<pid>@<hostname>`, as Python producers write in `origin`.
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| format!("gen{}@{}", std::process::id(), crate::hostname()))
}

/// One id per producing process, like the Python app's `thread_oid` in `reply_to`.
fn process_oid() -> &'static str {
    static OID: OnceLock<String> = OnceLock::new();
    OID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// The longest `argsrepr`/`kwargsrepr` header, in characters, as Celery's
/// `argsrepr_maxsize`/`kwargsrepr_maxsize`: the reprs are for logs and monitors, and a
/// large argument must not be carried twice.
const REPR_MAX_CHARS: usize = 1024;

/// `repr` cut to [`REPR_MAX_CHARS`] characters and marked with `...` when longer.
fn truncate_repr(mut repr: String) -> String {
    if let Some((cut, _)) = repr.char_indices().nth(REPR_MAX_CHARS) {
        repr.truncate(cut);
        repr.push_str("...");
    }
    repr
}

/// Python's `repr()` of the argument tuple, for logs and monitors: `(2, 3)`, `('a',)`.
pub(crate) fn args_repr(args: &[Value]) -> String {
    let items: Vec<String> = args.iter().map(py_repr).collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

/// Python's `repr()` of a JSON value.
pub(crate) fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("'{}': {}", k, py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn celery_add_message() -> String {
        // The message Celery 5.6.2 writes for add.delay(2, 3), as recorded from MONITOR.
        r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "tasks.add", "id": "890ebb03-5a96-424e-a471-d215a7f7201c", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "890ebb03-5a96-424e-a471-d215a7f7201c", "parent_id": null, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen14698@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "890ebb03-5a96-424e-a471-d215a7f7201c", "reply_to": "82826158-5f96-3278-b94e-818a922c954e", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "823731d2-bddc-4011-955d-e725266caf6e"}}"#.to_owned()
    }

    #[test]
    fn the_typed_and_general_paths_read_the_same_message() {
        let mut full = NewMessage::new("tasks.full", "id-full").args(vec![
            json!(1),
            json!("two"),
            json!({"n": [1.5, null]}),
        ]);
        full.kwargs = json!({"flag": true, "big": 100000000000000000000000u128})
            .as_object()
            .unwrap()
            .clone();
        full.eta = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000));
        full.expires = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_100));
        full.time_limit = (Some(30.0), Some(20.0));
        full.priority = 6;
        full.ignore_result = true;
        full.retries = 2;
        full.parent_id = Some("parent".to_owned());
        full.root_id = Some("root".to_owned());
        let full = full.encode("reports").unwrap();
        let recovered = with_header(&full, "taskq_recoveries", json!(3)).unwrap();
        let samples = [
            celery_add_message(),
            NewMessage::new("tasks.plain", "id-plain")
                .encode("celery")
                .unwrap(),
            full,
            recovered,
        ];
        for raw in &samples {
            let typed = typed::decode(raw).expect("the common shape takes the typed path");
            assert_eq!(
                Ok(typed),
                TaskMessage::decode_general(raw, DEFAULT_MAX_MESSAGE_SIZE),
                "{raw}"
            );
        }
        // Odd shapes go the general way, which reads what it can (kombu reads an invalid
        // priority as 0) and explains what it refuses.
        let odd_priority = celery_add_message().replace(r#""priority": 0"#, r#""priority": "3""#);
        assert!(typed::decode(&odd_priority).is_none());
        assert_eq!(TaskMessage::decode(&odd_priority).unwrap().priority, 0);
        let msgpack = celery_add_message().replace("application/json", "application/x-msgpack");
        assert!(typed::decode(&msgpack).is_none());
        let refusal = TaskMessage::decode(&msgpack).unwrap_err();
        assert!(refusal.reason().contains("msgpack"), "{refusal}");
        assert_eq!(
            refusal.task_id(),
            Some("890ebb03-5a96-424e-a471-d215a7f7201c")
        );
    }

    /// The Celery message for add(2, 3) with its body compressed by kombu's `method`.
    fn compressed_add_message(method: &str, packed: &[u8]) -> String {
        let mut envelope: Value = serde_json::from_str(&celery_add_message()).unwrap();
        envelope["body"] = base64::engine::general_purpose::STANDARD
            .encode(packed)
            .into();
        envelope["headers"]["compression"] = method.into();
        pyjson::to_string(&envelope).unwrap()
    }

    #[test]
    fn compressed_bodies_decode_within_the_limit() {
        let body =
            br#"[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;
        let raw = compressed_add_message("application/x-gzip", &compression::zlib(body));
        let msg = TaskMessage::decode(&raw).unwrap();
        assert_eq!(msg.args, vec![json!(2), json!(3)]);
        let refusal = TaskMessage::decode_limited(&raw, body.len() - 1).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::TooLarge);
        assert_eq!(
            refusal.task_id(),
            Some("890ebb03-5a96-424e-a471-d215a7f7201c")
        );
        let brotli = compressed_add_message("application/x-brotli", b"whatever");
        let refusal = TaskMessage::decode(&brotli).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Undecodable);
        assert_eq!(refusal.failure().exc_type(), "DecodeError");
    }

    #[test]
    fn headers_celery_would_refuse_are_refused_with_the_id() {
        let add = celery_add_message();
        let cases = [
            (
                r#""eta": null"#,
                r#""eta": "not-a-date""#,
                "eta \"not-a-date\"",
            ),
            (r#""eta": null"#, r#""eta": 1700000000"#, "eta 1700000000"),
            (
                r#""expires": null"#,
                r#""expires": "soon""#,
                "expires \"soon\"",
            ),
            (
                r#""timelimit": [null, null]"#,
                r#""timelimit": ["abc", null]"#,
                r#"timelimit ["abc",null]"#,
            ),
            (
                r#""timelimit": [null, null]"#,
                r#""timelimit": [60]"#,
                "timelimit [60]",
            ),
            (r#""retries": 0"#, r#""retries": -1"#, "retries -1"),
            (r#""retries": 0"#, r#""retries": "0""#, r#"retries "0""#),
        ];
        for (good, bad, said) in cases {
            let raw = add.replace(good, bad);
            assert_ne!(raw, add);
            let refusal = TaskMessage::decode(&raw).unwrap_err();
            assert_eq!(refusal.kind(), RefusalKind::Invalid, "{bad}");
            assert!(refusal.reason().contains(said), "{bad}: {refusal}");
            assert_eq!(
                refusal.task_id(),
                Some("890ebb03-5a96-424e-a471-d215a7f7201c")
            );
            assert_eq!(refusal.failure().exc_type(), "InvalidTaskError");
        }
        // Numbers and null stay fine, as does a number of seconds with a fraction.
        let fine = add.replace(r#""timelimit": [null, null]"#, r#""timelimit": [1.5, 1]"#);
        assert_eq!(TaskMessage::decode(&fine).unwrap().time_limit(), Some(1.5));
    }

    #[test]
    fn nan_arguments_are_refused_not_turned_into_null() {
        let raw = r#"{"body": "[[1.5, NaN], {}, null]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {}}"#;
        let refusal = TaskMessage::decode(raw).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Undecodable);
        assert!(refusal.reason().contains("NaN"), "{refusal}");
        assert_eq!(refusal.task_id(), Some("i"));
        let inf = raw.replace("NaN", "-Infinity");
        let args = TaskMessage::decode(&inf).unwrap().args;
        let value: f64 = serde_json::from_value(args[1].clone()).unwrap();
        assert_eq!(value, f64::NEG_INFINITY);
    }

    #[test]
    fn the_task_id_is_found_by_search_like_the_fetch_script() {
        assert_eq!(
            task_id_by_search(&celery_add_message()),
            Some("890ebb03-5a96-424e-a471-d215a7f7201c")
        );
        let compact = r#"{"body":"e30=","headers":{"task":"t","id":"c-1"},"properties":{"correlation_id":"x"}}"#;
        assert_eq!(task_id_by_search(compact), Some("c-1"));
        // Quotes inside the body string are escaped, so a body never matches.
        let v1 = r#"{"body": "{\"task\": \"t\", \"id\": \"in-body\"}", "headers": {}}"#;
        assert_eq!(task_id_by_search(v1), None);
        assert_eq!(task_id_by_search(r#"{"id": "a\"b"}"#), None);
        assert_eq!(task_id_by_search("not json"), None);
    }

    #[test]
    fn long_reprs_are_cut_like_celerys_maxsize() {
        let msg = NewMessage::new("tasks.len", "id-1").args(vec!["é".repeat(5000).into()]);
        let encoded: Value = serde_json::from_str(&msg.encode("celery").unwrap()).unwrap();
        let argsrepr = encoded["headers"]["argsrepr"].as_str().unwrap();
        assert_eq!(argsrepr.chars().count(), REPR_MAX_CHARS + 3);
        assert!(argsrepr.starts_with("('éé") && argsrepr.ends_with("é..."));
        assert_eq!(truncate_repr("(2, 3)".to_owned()), "(2, 3)");
    }

    #[test]
    fn encodes_the_same_bytes_as_celery_apart_from_process_fields() {
        let msg = NewMessage::new("tasks.add", "890ebb03-5a96-424e-a471-d215a7f7201c")
            .args(vec![2.into(), 3.into()]);
        let ours = msg
            .encode_with_tag("celery", "823731d2-bddc-4011-955d-e725266caf6e")
            .unwrap();
        let normalize = |s: &str| {
            let mut v: Value = serde_json::from_str(s).unwrap();
            v["headers"]["origin"] = json!("ORIGIN");
            v["properties"]["reply_to"] = json!("OID");
            pyjson::to_string(&v).unwrap()
        };
        assert_eq!(normalize(&ours), normalize(&celery_add_message()));
        // Apart from those two fields the text is identical, byte for byte.
        let ours_text = ours
            .replace(origin(), "gen14698@vm")
            .replace(process_oid(), "82826158-5f96-3278-b94e-818a922c954e");
        assert_eq!(ours_text, celery_add_message());
    }

    #[test]
    fn decodes_a_celery_message() {
        let msg = TaskMessage::decode(&celery_add_message()).unwrap();
        assert_eq!(msg.task, "tasks.add");
        assert_eq!(msg.args, vec![json!(2), json!(3)]);
        assert_eq!(msg.delivery_tag, "823731d2-bddc-4011-955d-e725266caf6e");
        assert_eq!(msg.routing_key, "celery");
        assert_eq!(msg.time_limit(), None);
    }

    #[test]
    fn decodes_a_minimal_raw_json_body_and_v1_bodies() {
        let raw = r#"{"body": "[[3, 4], {}, null]", "content-type": "application/json", "headers": {"task": "t", "id": "i", "eta": "2020-01-01T00:00:00", "timelimit": [60, 50]}, "properties": {"delivery_tag": "d"}}"#;
        let msg = TaskMessage::decode(raw).unwrap();
        assert_eq!(msg.args, vec![json!(3), json!(4)]);
        assert_eq!(msg.eta.unwrap().to_rfc3339(), "2020-01-01T00:00:00+00:00");
        assert_eq!(msg.time_limit(), Some(60.0));

        let v1 = r#"{"body": "{\"task\": \"t\", \"id\": \"i\", \"args\": [1], \"kwargs\": {\"k\": 2}}", "content-type": "application/json", "headers": {}, "properties": {"delivery_tag": "d"}}"#;
        let msg = TaskMessage::decode(v1).unwrap();
        assert_eq!(
            (msg.args, msg.kwargs["k"].clone()),
            (vec![json!(1)], json!(2))
        );
    }

    #[test]
    fn integers_beyond_64_bits_survive_decoding_and_encoding() {
        let raw = r#"{"body": "[[1000000000000000000000000000000, -12345678901234567890123], {}, null]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"delivery_tag": "d"}}"#;
        let msg = TaskMessage::decode(raw).unwrap();
        assert_eq!(
            pyjson::to_string(&msg.args).unwrap(),
            "[1000000000000000000000000000000, -12345678901234567890123]"
        );
    }

    #[test]
    fn headers_can_be_set_on_a_stored_envelope() {
        let raw = NewMessage::new("tasks.add", "id-1")
            .encode("celery")
            .unwrap();
        let changed = with_header(&raw, UNKNOWN_ATTEMPTS_HEADER, json!(2)).unwrap();
        let msg = TaskMessage::decode(&changed).unwrap();
        assert_eq!((msg.unknown_attempts, msg.id.as_str()), (2, "id-1"));
        assert_eq!(TaskMessage::decode(&raw).unwrap().unknown_attempts, 0);
    }

    #[test]
    fn retry_envelopes_keep_the_call_and_count_the_retry() {
        let raw = NewMessage::new("tasks.add", "id-1")
            .args(vec![1.into()])
            .encode("celery")
            .unwrap();
        let retried = retry_envelope(&raw, 2, 1_800_000_000.5, "id-1").unwrap();
        let (before, after) = (
            TaskMessage::decode(&raw).unwrap(),
            TaskMessage::decode(&retried).unwrap(),
        );
        assert_eq!(
            (after.id.as_str(), after.args.clone(), after.retries),
            ("id-1", before.args, 2)
        );
        assert_eq!(after.parent_id.as_deref(), Some("id-1"));
        assert_eq!(
            format_datetime(after.eta.unwrap()),
            "2027-01-15T08:00:00.500000+00:00"
        );
        assert_ne!(after.delivery_tag, before.delivery_tag);
    }

    #[test]
    fn rejections_say_why() {
        let cases = [
            ("not json", "envelope is not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"headers": {}, "properties": {}}"#, "no content-type"),
            (
                r#"{"content-type": "application/x-msgpack", "headers": {}, "properties": {}}"#,
                "not supported",
            ),
            (
                r#"{"body": "e30=", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": "base64"}}"#,
                "not a [args, kwargs, embed]",
            ),
            (
                r#"{"body": "[[], {}]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {}}"#,
                "2 elements",
            ),
            (
                r#"{"body": "[[], [], null]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {}}"#,
                "kwargs is not a mapping",
            ),
            (
                r#"{"body": "!!", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": "base64"}}"#,
                "not valid base64",
            ),
        ];
        for (raw, expected) in cases {
            let err = TaskMessage::decode(raw).unwrap_err();
            assert!(err.reason().contains(expected), "{raw}: {err}");
        }
    }

    #[test]
    fn times_parse_like_isoparse() {
        for text in [
            "2026-11-21T04:48:05.294171+00:00",
            "2026-11-21T04:48:05.294171Z",
            "2026-11-21T04:48:05.294171",
            "2026-11-21T05:48:05.294171+01:00",
        ] {
            assert_eq!(
                format_datetime(parse_time(text).unwrap()),
                "2026-11-21T04:48:05.294171+00:00",
                "{text}"
            );
        }
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn reprs_look_like_python() {
        assert_eq!(args_repr(&[json!(42)]), "(42,)");
        assert_eq!(
            args_repr(&[json!("it's"), json!(null), json!(true)]),
            r#"('it\'s', None, True)"#
        );
        assert_eq!(py_repr(&json!({"a": [1]})), "{'a': [1]}");
        assert_eq!(args_repr(&[]), "()");
    }
}
