//! Reading a task message. The fast path (`fast.rs`) deserializes the common shape straight
//! into typed fields; anything else takes the general path here, which accepts what Celery
//! accepts (protocol 1 bodies, compression, odd but valid types) and explains what it
//! refuses. Both give the same message.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::compression;
use super::names::{field, header, property};
use super::{
    parse_time, pyjson, DecodeError, DecodeErrorKind, RawJson, RawObject, Workflow,
    CONTENT_TYPE_JSON,
};
use crate::config::DEFAULT_MAX_MESSAGE_SIZE;

mod fast;

/// A received task message, decoded.
///
/// ```
/// use taskq::protocol::{NewMessage, TaskMessage};
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
    /// Positional arguments (kombu tags removed), each as the exact text sent.
    pub args: Vec<RawJson>,
    /// Keyword arguments (kombu tags removed), in the order sent.
    pub kwargs: RawObject,
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
    /// Position in its group (the order of a chord's results).
    pub group_index: Option<u32>,
    /// What continues the workflow after this task: callbacks, errbacks, the rest of its
    /// chain, the chord it is a part of (protocol 2's embed).
    pub workflow: Workflow,
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
    /// A unique call's key (taskq's `taskq_unique` header), whose lock is released when the
    /// task is done.
    pub unique: Option<String>,
    /// The producer's W3C trace context: the `traceparent` header and its `tracestate`.
    pub trace_context: Option<(String, Option<String>)>,
}

impl TaskMessage {
    /// Decodes a kombu envelope, decompressing a compressed body to at most
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] bytes (see [`decode_limited`](Self::decode_limited)).
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the text is not a task message taskq can run: not JSON, missing
    /// headers or properties, a content type other than JSON, an unsupported compression, a
    /// body that is not `[args, kwargs, embed]`, an `eta`, `expires`, `timelimit` or `retries`
    /// header Celery would not accept either. It carries the task id when it could be read.
    ///
    /// ```
    /// let err = taskq::protocol::TaskMessage::decode("not json").unwrap_err();
    /// assert!(err.reason().starts_with("envelope is not JSON"));
    /// ```
    pub fn decode(raw: &str) -> Result<Self, DecodeError> {
        Self::decode_limited(raw, DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Decodes a kombu envelope; a compressed body may decompress to at most `max_bytes`.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode); a body that decompresses to more than `max_bytes` is a
    /// [`DecodeErrorKind::TooLarge`] refusal.
    ///
    /// ```
    /// use taskq::protocol::{NewMessage, TaskMessage};
    ///
    /// let raw = NewMessage::new("tasks.add", "id-1").encode("celery").unwrap();
    /// assert_eq!(TaskMessage::decode_limited(&raw, 4096).unwrap().id, "id-1");
    /// ```
    pub fn decode_limited(raw: &str, max_bytes: usize) -> Result<Self, DecodeError> {
        match fast::decode(raw) {
            Some(message) => Ok(message),
            None => Self::decode_general(raw, max_bytes),
        }
    }

    /// Reads any message taskq accepts, protocol 1 or 2, through `Value` maps (the arguments
    /// stay text); slower than the typed path, which covers the common shape. A refusal
    /// carries the `id` header when there is one, whatever else is wrong.
    fn decode_general(raw: &str, max_bytes: usize) -> Result<Self, DecodeError> {
        let envelope = parse_envelope(raw)?.to_map();
        let headers = envelope
            .get(field::HEADERS)
            .and_then(Value::as_object)
            .ok_or_else(|| DecodeError::invalid("envelope has no `headers` object"))?;
        let id = headers.get(header::ID).and_then(Value::as_str);
        Self::decode_parts(&envelope, headers, max_bytes).map_err(|r| r.or_task_id(id))
    }

    fn decode_parts(
        envelope: &Map<String, Value>,
        headers: &Map<String, Value>,
        max_bytes: usize,
    ) -> Result<Self, DecodeError> {
        let properties = object_field(envelope, field::PROPERTIES).map_err(DecodeError::invalid)?;
        check_content_type(envelope)?;
        let body = decode_body(envelope, headers, properties, max_bytes)?;
        let (task, id, args, kwargs, workflow, meta) = if headers.contains_key(header::TASK) {
            split_v2(headers, body)?
        } else {
            split_v1(body).map_err(DecodeError::invalid)?
        };
        let checked = CheckedMeta::read(&meta)
            .map_err(|reason| DecodeError::invalid(reason).or_task_id(Some(&id)))?;
        let mut message = Self::from_parts(task, id, args, kwargs, checked, &meta, properties);
        message.workflow = workflow;
        Ok(message)
    }

    fn from_parts(
        task: String,
        id: String,
        args: Vec<RawJson>,
        kwargs: RawObject,
        checked: CheckedMeta,
        meta: &Map<String, Value>,
        properties: &Map<String, Value>,
    ) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let info = properties.get(property::DELIVERY_INFO);
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
            ignore_result: meta.get(header::IGNORE_RESULT).and_then(Value::as_bool),
            parent_id: text(meta.get(header::PARENT_ID)),
            root_id: text(meta.get(header::ROOT_ID)),
            group: text(meta.get(header::GROUP)).or_else(|| text(meta.get(header::TASKSET))),
            group_index: meta
                .get(header::GROUP_INDEX)
                .and_then(Value::as_u64)
                .map(|i| i as u32),
            workflow: Workflow::default(),
            delivery_tag: text(properties.get(property::DELIVERY_TAG)).unwrap_or_default(),
            routing_key: text(info.and_then(|i| i.get(property::ROUTING_KEY))).unwrap_or_default(),
            priority: properties
                .get(property::PRIORITY)
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(9) as u8,
            unknown_attempts: meta
                .get(header::TASKQ_UNKNOWN_ATTEMPTS)
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            recoveries: meta
                .get(header::TASKQ_RECOVERIES)
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            crashes: meta
                .get(header::TASKQ_CRASHES)
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            unique: text(meta.get(header::TASKQ_UNIQUE)),
            trace_context: text(meta.get(header::TRACEPARENT))
                .map(|parent| (parent, text(meta.get(header::TRACESTATE)))),
        }
    }

    /// The hard time limit, when positive. The soft one ([`soft_time_limit`](Self::soft_time_limit))
    /// is enforced beside it.
    ///
    /// ```
    /// use taskq::protocol::{NewMessage, TaskMessage};
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
    Vec<RawJson>,
    RawObject,
    Workflow,
    Map<String, Value>,
);

fn split_v2(headers: &Map<String, Value>, body: RawJson) -> Result<Parts, DecodeError> {
    let task = string_field(headers, header::TASK, "headers").map_err(DecodeError::invalid)?;
    let id = string_field(headers, header::ID, "headers").map_err(DecodeError::invalid)?;
    let (args, kwargs, embed) = split_body_v2(body).map_err(DecodeError::invalid)?;
    // An embed that is not an object carries no continuation; Celery writes an object.
    let workflow = match serde_json::from_str::<Continuations<'_>>(embed.as_str()) {
        Ok(continuations) => continuations
            .workflow()
            .map_err(|reason| DecodeError::invalid(reason).or_task_id(Some(&id)))?,
        Err(_) => Workflow::default(),
    };
    if let Some(reason) = workflow.unsupported() {
        let refusal = DecodeError::new(DecodeErrorKind::Unsupported, reason);
        return Err(refusal.or_task_id(Some(&id)));
    }
    Ok((task, id, args, kwargs, workflow, headers.clone()))
}

/// The arguments of a protocol 2 body, `[args, kwargs, embed]`, and its embed.
fn split_body_v2(body: RawJson) -> Result<(Vec<RawJson>, RawObject, RawJson), String> {
    let Some(mut parts) = body.to_items() else {
        return Err("body is not a [args, kwargs, embed] array".to_owned());
    };
    if parts.len() != 3 {
        return Err(format!(
            "body has {} elements, expected [args, kwargs, embed]",
            parts.len()
        ));
    }
    let embed = parts.pop().unwrap_or_default();
    let kwargs = parts.pop().unwrap_or_default();
    let args = parts.pop().unwrap_or_default();
    let (args, kwargs) = args_and_kwargs(args, kwargs)?;
    Ok((args, kwargs, embed))
}

/// The fields of protocol 2's embed that continue a workflow after the task: `None` (JSON
/// `null`) when absent, as Celery writes them for a plain call. The field identifiers are the
/// names of [`embed`](super::names::embed).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Continuations<'a> {
    #[serde(default, borrow)]
    callbacks: Option<&'a RawValue>,
    #[serde(default, borrow)]
    errbacks: Option<&'a RawValue>,
    #[serde(default, borrow)]
    chain: Option<&'a RawValue>,
    #[serde(default, borrow)]
    chord: Option<&'a RawValue>,
}

impl Continuations<'_> {
    /// The signatures the fields hold.
    pub(super) fn workflow(&self) -> Result<Workflow, String> {
        let raw = |field: Option<&RawValue>| field.map(RawJson::from_raw);
        Workflow::read(
            raw(self.callbacks).as_ref(),
            raw(self.errbacks).as_ref(),
            raw(self.chain).as_ref(),
            raw(self.chord).as_ref(),
        )
    }

    /// Whether no field continues the workflow (each absent or `null`).
    pub(super) fn is_empty(&self) -> bool {
        self.callbacks.is_none()
            && self.errbacks.is_none()
            && self.chain.is_none()
            && self.chord.is_none()
    }
}

fn split_v1(body: RawJson) -> Result<Parts, String> {
    let Some(mut body) = body.to_object() else {
        return Err(
            "message has no `task` header and its body is not a protocol 1 object".to_owned(),
        );
    };
    let args = body
        .remove("args")
        .unwrap_or_else(|| RawJson::from_serialize(&[(); 0]).expect("[] serializes"));
    let kwargs = body
        .remove("kwargs")
        .unwrap_or_else(|| RawObject::new().to_raw());
    let body = body.to_map();
    let task = string_field(&body, header::TASK, "body")?;
    let id = string_field(&body, header::ID, "body")?;
    let (args, kwargs) = args_and_kwargs(args, kwargs)?;
    Ok((task, id, args, kwargs, Workflow::default(), body))
}

fn args_and_kwargs(args: RawJson, kwargs: RawJson) -> Result<(Vec<RawJson>, RawObject), String> {
    let Some(args) = args.untagged().to_items() else {
        return Err("args is not a list".to_owned());
    };
    let kwargs = kwargs.untagged();
    let kwargs = match kwargs.to_object() {
        Some(object) => object,
        None if kwargs.is_null() => RawObject::new(),
        None => return Err("kwargs is not a mapping".to_owned()),
    };
    Ok((args, kwargs))
}

/// The envelope as a JSON object, its fields in order and as written, or why it is not one.
pub(super) fn parse_envelope(raw: &str) -> Result<RawObject, DecodeError> {
    let parsed = RawJson::from_text(raw)
        .map_err(|e| DecodeError::undecodable(format!("envelope is not JSON: {e}")))?;
    parsed
        .to_object()
        .ok_or_else(|| DecodeError::undecodable("envelope is not a JSON object"))
}

pub(super) fn object_field<'a>(
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
pub(super) fn check_content_type(envelope: &Map<String, Value>) -> Result<(), DecodeError> {
    let refuse = |reason: String| Err(DecodeError::new(DecodeErrorKind::ContentDisallowed, reason));
    match envelope.get(field::CONTENT_TYPE).and_then(Value::as_str) {
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
pub(super) fn decode_body(
    envelope: &Map<String, Value>,
    headers: &Map<String, Value>,
    properties: &Map<String, Value>,
    max_bytes: usize,
) -> Result<RawJson, DecodeError> {
    let body = envelope
        .get(field::BODY)
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::invalid("envelope has no string `body`"))?;
    let mut bytes = match properties
        .get(property::BODY_ENCODING)
        .and_then(Value::as_str)
    {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| DecodeError::undecodable(format!("body is not valid base64: {e}")))?,
        _ => body.as_bytes().to_vec(),
    };
    match headers.get(header::COMPRESSION) {
        None | Some(Value::Null) => {}
        Some(Value::String(method)) => {
            bytes = compression::decompress(method, &bytes, max_bytes)?;
        }
        Some(other) => {
            return Err(DecodeError::undecodable(format!(
                "compression header {other} is not a method name"
            )))
        }
    }
    let text =
        String::from_utf8(bytes).map_err(|_| DecodeError::undecodable("body is not UTF-8"))?;
    pyjson::from_str_refusing_nan(&text)
        .map_err(|e| DecodeError::undecodable(format!("body is not JSON: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::SystemTime;

    use serde_json::json;

    use super::*;
    use crate::protocol::edit::with_header;
    use crate::protocol::NewMessage;

    pub(crate) fn celery_add_message() -> String {
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
        full.kwargs =
            serde_json::from_str(r#"{"flag": true, "big": 100000000000000000000000}"#).unwrap();
        full.eta = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000));
        full.expires = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_100));
        full.time_limit = (Some(30.0), Some(20.0));
        full.priority = 6;
        full.ignore_result = true;
        full.retries = 2;
        full.parent_id = Some("parent".to_owned());
        full.root_id = Some("root".to_owned());
        full.trace_context = Some((
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            Some("congo=t61rcWkgMzE".to_owned()),
        ));
        let full = full.encode("reports").unwrap();
        let recovered = with_header(&full, header::TASKQ_RECOVERIES, json!(3)).unwrap();
        // A plain body in another JSON spelling (compact, not ASCII), with `null` kwargs.
        let compact = r#"{"body": "[[1,\"\u00e9\",{\"z\":1,\"a\":[]}],null,{}]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {"delivery_tag": "d"}}"#;
        let samples = [
            compact.to_owned(),
            celery_add_message(),
            NewMessage::new("tasks.plain", "id-plain")
                .encode("celery")
                .unwrap(),
            full,
            recovered,
        ];
        for raw in &samples {
            let typed = fast::decode(raw).expect("the common shape takes the typed path");
            assert_eq!(
                Ok(typed),
                TaskMessage::decode_general(raw, DEFAULT_MAX_MESSAGE_SIZE),
                "{raw}"
            );
        }
        // Odd shapes go the general way, which reads what it can (kombu reads an invalid
        // priority as 0) and explains what it refuses.
        let odd_priority = celery_add_message().replace(r#""priority": 0"#, r#""priority": "3""#);
        assert!(fast::decode(&odd_priority).is_none());
        assert_eq!(TaskMessage::decode(&odd_priority).unwrap().priority, 0);
        let tagged = compact.replace(
            r#"{\"z\":1,\"a\":[]}"#,
            r#"{\"__type__\":\"decimal\",\"__value__\":\"1.5\"}"#,
        );
        assert!(fast::decode(&tagged).is_none());
        assert_eq!(TaskMessage::decode(&tagged).unwrap().args[2], json!("1.5"));
        let msgpack = celery_add_message().replace("application/json", "application/x-msgpack");
        assert!(fast::decode(&msgpack).is_none());
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
        assert_eq!(refusal.kind(), DecodeErrorKind::TooLarge);
        assert_eq!(
            refusal.task_id(),
            Some("890ebb03-5a96-424e-a471-d215a7f7201c")
        );
        let brotli = compressed_add_message("application/x-brotli", b"whatever");
        let refusal = TaskMessage::decode(&brotli).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::Undecodable);
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
            assert_eq!(refusal.kind(), DecodeErrorKind::Invalid, "{bad}");
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
        assert_eq!(refusal.kind(), DecodeErrorKind::Undecodable);
        assert!(refusal.reason().contains("NaN"), "{refusal}");
        assert_eq!(refusal.task_id(), Some("i"));
        let inf = raw.replace("NaN", "-Infinity");
        let args = TaskMessage::decode(&inf).unwrap().args;
        let value: f64 = args[1].parse().unwrap();
        assert_eq!(value, f64::NEG_INFINITY);
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
        assert_eq!(msg.args, vec![json!(1)]);
        assert_eq!(msg.kwargs["k"], json!(2));
    }
    #[test]
    fn workflow_continuations_are_read_on_both_paths() {
        let with_embed = |embed: &str| {
            let body = format!(r#"[[2, 2], {{}}, {embed}]"#);
            let body = serde_json::to_string(&body).unwrap();
            format!(
                r#"{{"body": {body}, "content-type": "application/json", "headers": {{"task": "tasks.add", "id": "c1", "group": "g", "group_index": 3}}, "properties": {{"delivery_tag": "d"}}}}"#
            )
        };
        let chain = with_embed(
            r#"{"callbacks": null, "errbacks": null, "chain": [{"task": "tasks.add", "args": [4]}], "chord": null}"#,
        );
        let fast = fast::decode(&chain).expect("the common shape");
        let general = TaskMessage::decode_general(&chain, 1 << 20).unwrap();
        assert_eq!(fast, general);
        assert_eq!(fast.workflow.chain[0].task, "tasks.add");
        assert_eq!(fast.workflow.chain[0].args, vec![json!(4)]);
        assert_eq!(fast.group_index, Some(3));

        let linked = with_embed(r#"{"callbacks": [{"task": "t"}], "errbacks": {"task": "e"}}"#);
        let linked = TaskMessage::decode(&linked).unwrap().workflow;
        assert_eq!((linked.callbacks.len(), linked.errbacks.len()), (1, 1));

        // A kind of signature taskq does not run is refused, not dropped.
        let unknown = with_embed(r#"{"chain": [{"task": "x", "subtask_type": "xmap2"}]}"#);
        assert!(fast::decode(&unknown).is_none());
        let refusal = TaskMessage::decode(&unknown).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::Unsupported);
        assert_eq!(refusal.failure().exc_type(), "NotImplementedError");

        // A continuation that is not a signature is refused, saying where.
        let bad = with_embed(r#"{"chain": [5]}"#);
        assert!(fast::decode(&bad).is_none());
        let refusal = TaskMessage::decode(&bad).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::Invalid);
        assert_eq!(refusal.task_id(), Some("c1"));
        assert!(refusal.reason().contains("embed `chain`"), "{refusal}");

        // Absent, null or empty continuations are a plain call, on the fast path.
        for plain in [
            r#"{"callbacks": null, "errbacks": null, "chain": null, "chord": null}"#,
            r#"{"chain": []}"#,
            "{}",
            "null",
        ] {
            let raw = with_embed(plain);
            let msg = fast::decode(&raw).expect(plain);
            assert!(msg.workflow.is_empty(), "{plain}");
            assert_eq!(TaskMessage::decode(&raw).unwrap().id, "c1", "{plain}");
        }
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
}
