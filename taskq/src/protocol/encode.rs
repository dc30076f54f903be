//! The task envelope a Python producer writes, byte for byte: key order, separators, base64
//! body, `argsrepr`, `origin`, a fresh delivery tag.

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::repr::{args_repr, kwargs_repr, truncate_repr};
use super::signature::EmbedOut;
use super::{format_time, pyjson, RawJson, RawObject, Workflow, CONTENT_TYPE_JSON};

/// A task call about to be published.
///
/// ```
/// use taskq::protocol::NewMessage;
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
    /// Positional arguments, each as its JSON text.
    pub args: Vec<RawJson>,
    /// Keyword arguments, written in this order.
    pub kwargs: RawObject,
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
    /// The group (or chord) the call belongs to.
    pub group: Option<String>,
    /// Its position in the group.
    pub group_index: Option<u32>,
    /// What continues the workflow after the call (the body's embed).
    pub workflow: Workflow,
    /// The unique call's key, if the call is unique: the worker that finishes it releases
    /// the key's lock (see [`Options::unique_for`](crate::Options::unique_for)).
    pub unique: Option<String>,
    /// The producer's W3C trace context (`traceparent`, then `tracestate` if any), written
    /// among the headers as Python's OpenTelemetry instrumentation writes it.
    pub trace_context: Option<(String, Option<String>)>,
}

impl NewMessage {
    /// A call of `task` with id `id`, no arguments and default options.
    pub fn new(task: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            id: id.into(),
            args: Vec::new(),
            kwargs: RawObject::new(),
            eta: None,
            expires: None,
            time_limit: (None, None),
            priority: 0,
            ignore_result: false,
            retries: 0,
            parent_id: None,
            root_id: None,
            group: None,
            group_index: None,
            workflow: Workflow::default(),
            unique: None,
            trace_context: None,
        }
    }

    /// Sets the positional arguments from `Value`s. An integer beyond 64 bits in a `Value`
    /// needs serde_json's `arbitrary_precision` in the application; set
    /// [`args`](Self::args) to [`RawJson`] values for an exact path without it.
    pub fn args(mut self, args: Vec<Value>) -> Self {
        self.args = args.iter().map(RawJson::from).collect();
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
        let embed = EmbedOut::from(&self.workflow);
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
                group: self.group.as_deref(),
                group_index: self.group_index,
                retries: self.retries,
                timelimit: [self.time_limit.0, self.time_limit.1],
                root_id: self.root_id.as_deref().unwrap_or(&self.id),
                parent_id: self.parent_id.as_deref(),
                argsrepr: truncate_repr(args_repr(&self.args)),
                kwargsrepr: truncate_repr(kwargs_repr(&self.kwargs)),
                origin: origin(),
                ignore_result: self.ignore_result,
                replaced_task_nesting: 0,
                stamped_headers: None,
                stamps: RawObject::new(),
                traceparent: self
                    .trace_context
                    .as_ref()
                    .map(|(parent, _)| parent.as_str()),
                tracestate: self
                    .trace_context
                    .as_ref()
                    .and_then(|(_, state)| state.as_deref()),
                taskq_unique: self.unique.as_deref(),
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
    stamps: RawObject,
    /// After Celery's headers, where Python's instrumentation adds them to the dict, and only
    /// when there is a context to carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<&'a str>,
    /// taskq's own, after Celery's headers and only when set (Python peers ignore it).
    #[serde(skip_serializing_if = "Option::is_none")]
    taskq_unique: Option<&'a str>,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::decode::tests::celery_add_message;
    use crate::protocol::TaskMessage;

    #[test]
    fn arguments_are_written_exactly_and_keyword_arguments_in_order() {
        let mut msg = NewMessage::new("tasks.big", "id-big");
        msg.args = vec![
            RawJson::from(1_000_000_000_000_000_000_000_000_000_000u128),
            RawJson::from(-12_345_678_901_234_567_890i128),
        ];
        msg.kwargs = serde_json::from_str(
            r#"{"zeta": 340282366920938463463374607431768211455, "alpha": [1]}"#,
        )
        .unwrap();
        let raw = msg.encode("celery").unwrap();
        let envelope: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            envelope["headers"]["argsrepr"],
            "(1000000000000000000000000000000, -12345678901234567890)"
        );
        assert_eq!(
            envelope["headers"]["kwargsrepr"],
            "{'zeta': 340282366920938463463374607431768211455, 'alpha': [1]}"
        );
        let decoded = TaskMessage::decode(&raw).unwrap();
        assert_eq!((decoded.args, decoded.kwargs), (msg.args, msg.kwargs));
        let body = base64::engine::general_purpose::STANDARD
            .decode(envelope["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"[[1000000000000000000000000000000, -12345678901234567890], {"zeta": 340282366920938463463374607431768211455, "alpha": [1]}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#
        );
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

    /// The serializer spells each name as a field identifier; this pins them to [`names`](super::super::names).
    #[test]
    fn the_envelope_written_uses_the_protocol_names() {
        use crate::protocol::names::{field, header, property};
        let mut message = NewMessage::new("tasks.add", "id-1");
        message.trace_context = Some(("00-ab-cd-01".to_owned(), Some("k=v".to_owned())));
        let raw = message.encode("celery").unwrap();
        let envelope: Value = serde_json::from_str(&raw).unwrap();
        for name in [
            field::BODY,
            field::CONTENT_ENCODING,
            field::CONTENT_TYPE,
            field::HEADERS,
            field::PROPERTIES,
        ] {
            assert!(envelope.get(name).is_some(), "no envelope field {name}");
        }
        for name in [
            header::ID,
            header::TASK,
            header::ETA,
            header::EXPIRES,
            header::TIMELIMIT,
            header::RETRIES,
            header::IGNORE_RESULT,
            header::PARENT_ID,
            header::ROOT_ID,
            header::GROUP,
            header::TRACEPARENT,
            header::TRACESTATE,
        ] {
            assert!(
                envelope[field::HEADERS].get(name).is_some(),
                "no header {name}"
            );
        }
        for name in [
            property::DELIVERY_TAG,
            property::DELIVERY_INFO,
            property::PRIORITY,
            property::BODY_ENCODING,
            property::DELIVERY_MODE,
        ] {
            assert!(
                envelope[field::PROPERTIES].get(name).is_some(),
                "no property {name}"
            );
        }
        let info = &envelope[field::PROPERTIES][property::DELIVERY_INFO];
        assert!(
            info.get(property::EXCHANGE).is_some() && info.get(property::ROUTING_KEY).is_some()
        );
    }
}
