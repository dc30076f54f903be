//! The fast way to read a task message: the envelope's known fields deserialized straight
//! into borrowed, typed structs, skipping the rest, instead of building `Value` maps of
//! every header and property. Building those maps took about half of a worker's CPU in the
//! drain benchmark.
//!
//! It only handles the common shape: protocol 2, JSON, base64 or plain body, every field of
//! the type Celery writes. Anything else (protocol 1, a field of an odd type, compression,
//! another content type, a time that does not parse, a `NaN`) returns `None`, and
//! [`TaskMessage::decode`] takes its general path, which accepts what it can and explains what
//! it refuses. Both paths give the same message.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use chrono::{DateTime, Utc};

use super::{Continuations, TaskMessage};
use crate::protocol::pyjson::TYPE_TAG;
use crate::protocol::{parse_time, RawJson, RawObject, Workflow, CONTENT_TYPE_JSON};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(rename = "content-type", borrow)]
    content_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    headers: Headers<'a>,
    #[serde(borrow)]
    properties: Properties<'a>,
}

#[derive(Deserialize)]
struct Headers<'a> {
    #[serde(borrow)]
    task: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    eta: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    expires: Option<Cow<'a, str>>,
    #[serde(default)]
    retries: Option<u64>,
    #[serde(default)]
    timelimit: Option<(Option<f64>, Option<f64>)>,
    #[serde(default)]
    ignore_result: Option<bool>,
    #[serde(default, borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    root_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    taskset: Option<Cow<'a, str>>,
    #[serde(default)]
    group_index: Option<u64>,
    /// Present only to send compressed messages to the general path, which decompresses them.
    #[serde(default, borrow)]
    compression: Option<Cow<'a, str>>,
    #[serde(default)]
    taskq_unknown_attempts: Option<u64>,
    #[serde(default)]
    taskq_recoveries: Option<u64>,
    #[serde(default)]
    taskq_crashes: Option<u64>,
    #[serde(default, borrow)]
    taskq_unique: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tracestate: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow)]
    body_encoding: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delivery_tag: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delivery_info: Option<DeliveryInfo<'a>>,
    #[serde(default)]
    priority: Option<u64>,
}

#[derive(Deserialize)]
struct DeliveryInfo<'a> {
    #[serde(default, borrow)]
    routing_key: Option<Cow<'a, str>>,
}

/// The message in `raw`, or `None` when it is not in the common shape (see the module docs).
pub(super) fn decode(raw: &str) -> Option<TaskMessage> {
    let envelope: Envelope<'_> = serde_json::from_str(raw).ok()?;
    if envelope.content_type.as_deref() != Some(CONTENT_TYPE_JSON)
        || envelope.headers.compression.is_some()
    {
        return None;
    }
    let body = match envelope.properties.body_encoding.as_deref() {
        Some("base64") => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(envelope.body.as_bytes())
                .ok()?;
            String::from_utf8(bytes).ok()?
        }
        _ => envelope.body.into_owned(),
    };
    let (args, kwargs, workflow) = split_body(&body)?;
    let headers = envelope.headers;
    let properties = envelope.properties;
    let owned = |text: Option<Cow<'_, str>>| text.map(Cow::into_owned);
    let count = |n: Option<u64>| n.unwrap_or(0) as u32;
    let (hard_time_limit, soft_time_limit) = headers.timelimit.unwrap_or((None, None));
    Some(TaskMessage {
        task: headers.task.into_owned(),
        id: headers.id.into_owned(),
        args,
        kwargs,
        eta: time(headers.eta.as_deref())?,
        expires: time(headers.expires.as_deref())?,
        retries: count(headers.retries),
        hard_time_limit,
        soft_time_limit,
        ignore_result: headers.ignore_result,
        parent_id: owned(headers.parent_id),
        root_id: owned(headers.root_id),
        group: owned(headers.group).or_else(|| owned(headers.taskset)),
        group_index: headers.group_index.map(|i| i as u32),
        workflow,
        delivery_tag: owned(properties.delivery_tag).unwrap_or_default(),
        routing_key: properties
            .delivery_info
            .and_then(|info| owned(info.routing_key))
            .unwrap_or_default(),
        priority: properties.priority.unwrap_or(0).min(9) as u8,
        unknown_attempts: count(headers.taskq_unknown_attempts),
        recoveries: count(headers.taskq_recoveries),
        crashes: count(headers.taskq_crashes),
        unique: owned(headers.taskq_unique),
        trace_context: owned(headers.traceparent).map(|parent| (parent, owned(headers.tracestate))),
    })
}

/// The arguments of a protocol 2 body `[args, kwargs, embed]`, read in one pass; `None` for
/// anything the general path must look at: another shape, kombu's tagged values (which it
/// untags), Python's `NaN`/`Infinity` (which it refuses or reads), an embed whose workflow
/// does not read (which it refuses, saying why).
fn split_body(body: &str) -> Option<(Vec<RawJson>, RawObject, Workflow)> {
    if body.contains(TYPE_TAG) {
        return None;
    }
    let (args, kwargs, embed): (Vec<&RawValue>, Option<RawObject>, Option<Continuations<'_>>) =
        serde_json::from_str(body).ok()?;
    let workflow = match embed {
        Some(embed) if !embed.is_empty() => embed
            .workflow()
            .ok()
            .filter(|w| w.unsupported().is_none())?,
        _ => Workflow::default(),
    };
    let args = args.into_iter().map(RawJson::from_raw).collect();
    Some((args, kwargs.unwrap_or_default(), workflow))
}

/// A time header's value; `None` when it does not parse, so that the general path refuses it.
fn time(text: Option<&str>) -> Option<Option<DateTime<Utc>>> {
    match text {
        None => Some(None),
        Some(text) => parse_time(text).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::protocol::edit::with_header;
    use crate::protocol::names::header;
    use crate::protocol::NewMessage;

    /// The typed structs spell each name as a field identifier; this pins the headers taskq
    /// edits to [`names`](crate::protocol::names).
    #[test]
    fn the_fast_path_reads_the_headers_by_their_protocol_names() {
        let mut raw = NewMessage::new("tasks.add", "id-1")
            .encode("celery")
            .unwrap();
        for (name, value) in [
            (header::TASKQ_UNKNOWN_ATTEMPTS, 1),
            (header::TASKQ_RECOVERIES, 2),
            (header::TASKQ_CRASHES, 3),
        ] {
            raw = with_header(&raw, name, json!(value)).unwrap();
        }
        raw = with_header(&raw, header::PARENT_ID, json!("p")).unwrap();
        raw = with_header(&raw, header::GROUP, json!("g")).unwrap();
        raw = with_header(&raw, header::TRACEPARENT, json!("00-ab-cd-01")).unwrap();
        raw = with_header(&raw, header::TRACESTATE, json!("k=v")).unwrap();
        let msg = super::decode(&raw).expect("the common shape");
        let (parent, state) = msg.trace_context.expect("the trace context is read");
        assert_eq!(
            (parent.as_str(), state.as_deref()),
            ("00-ab-cd-01", Some("k=v"))
        );
        assert_eq!(
            (msg.unknown_attempts, msg.recoveries, msg.crashes),
            (1, 2, 3)
        );
        assert_eq!(
            (msg.parent_id.as_deref(), msg.group.as_deref()),
            (Some("p"), Some("g"))
        );
    }
}
