//! Changes to a stored envelope, each one rule: set a header, build a retry, take a message
//! back from a lost worker, give a copy its own delivery tag. The broker's Lua scripts make
//! the same changes inside Redis (`scripts.rs`); each names the function here it mirrors, and
//! the memory broker calls these functions, so that both brokers change envelopes alike.

use super::names::{field, header, property};
use super::{format_time, pyjson, DecodeError, RawJson, RawObject};

/// A stored envelope opened for editing: its fields, and those of the sections it edits, stay
/// in the order and with the values written (a header's big integer stays exact); it is
/// written back in Python's JSON dialect.
struct Envelope(RawObject);

impl Envelope {
    /// The envelope in `raw`, or why it is not a JSON object.
    fn open(raw: &str) -> Result<Self, DecodeError> {
        super::decode::parse_envelope(raw).map(Self)
    }

    /// The `headers` (or `properties`) object.
    fn section(&self, name: &str) -> Result<RawObject, DecodeError> {
        self.0
            .get(name)
            .and_then(RawJson::to_object)
            .ok_or_else(|| DecodeError::invalid(format!("envelope has no `{name}` object")))
    }

    /// Changes the `headers` (or `properties`) object with `edit`, in place.
    fn edit<T>(
        &mut self,
        name: &str,
        edit: impl FnOnce(&mut RawObject) -> T,
    ) -> Result<T, DecodeError> {
        let mut section = self.section(name)?;
        let out = edit(&mut section);
        self.0.insert(name, section.to_raw());
        Ok(out)
    }

    fn headers<T>(&mut self, edit: impl FnOnce(&mut RawObject) -> T) -> Result<T, DecodeError> {
        self.edit(field::HEADERS, edit)
    }

    fn set_delivery_tag(&mut self, tag: &str) -> Result<(), DecodeError> {
        self.edit(field::PROPERTIES, |properties| {
            properties.set(property::DELIVERY_TAG, tag);
        })
    }

    fn close(&self) -> String {
        pyjson::to_string(&self.0).expect("a JSON object serializes")
    }
}

/// Returns `raw` with header `name` set to `value`, everything else unchanged.
///
/// # Errors
///
/// When `raw` is not a JSON object with a `headers` object.
pub(crate) fn with_header(
    raw: &str,
    name: &str,
    value: impl Into<RawJson>,
) -> Result<String, DecodeError> {
    let mut envelope = Envelope::open(raw)?;
    let value = value.into();
    envelope.headers(|headers| headers.insert(name, value))?;
    Ok(envelope.close())
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
) -> Result<String, DecodeError> {
    let mut envelope = Envelope::open(raw)?;
    let eta = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(eta.max(0.0));
    envelope.headers(|headers| {
        headers.set(header::RETRIES, &retries);
        headers.set(header::ETA, &format_time(eta));
        headers.set(header::PARENT_ID, task_id);
    })?;
    envelope.set_delivery_tag(&uuid::Uuid::new_v4().to_string())?;
    Ok(envelope.close())
}

/// A message recovery took back from a worker that died or froze: its new delivery tag and
/// envelope. Mirrored by `scripts::RECOVER`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recovered {
    /// `<tag>.<n>` for the n-th recovery: a fresh tag fences the worker that lost the
    /// message, whose late ack of the old tag must not remove the new holder's entry.
    pub(crate) tag: String,
    /// The envelope, marked redelivered, with `taskq_recoveries` counted up, and
    /// `taskq_crashes` too when its task had started (it may be what kills its workers).
    pub(crate) raw: String,
}

/// The envelope of a message held under `tag` that recovery returns to its queue; `started`
/// when its task had started running. An envelope without properties keeps no tag (the
/// worker that takes it refuses it as invalid); its headers are still counted.
///
/// # Errors
///
/// When `raw` is not a JSON object.
pub(crate) fn recovered(raw: &str, tag: &str, started: bool) -> Result<Recovered, DecodeError> {
    let mut envelope = Envelope::open(raw)?;
    if envelope.section(field::HEADERS).is_err() {
        envelope.0.insert(field::HEADERS, RawObject::new().to_raw());
    }
    let recoveries = envelope.headers(|headers| {
        let recoveries = count_up(headers, header::TASKQ_RECOVERIES);
        if started {
            count_up(headers, header::TASKQ_CRASHES);
        }
        recoveries
    })?;
    let tag = format!("{tag}.{recoveries}");
    // An envelope without properties keeps no tag.
    let _ = envelope.edit(field::PROPERTIES, |properties| {
        if let Some(mut info) = properties
            .get(property::DELIVERY_INFO)
            .and_then(RawJson::to_object)
        {
            info.set(property::REDELIVERED, &true);
            properties.insert(property::DELIVERY_INFO, info.to_raw());
        }
        properties.set(property::DELIVERY_TAG, &tag);
    });
    Ok(Recovered {
        tag,
        raw: envelope.close(),
    })
}

/// Adds one to the count in header `name` (absent or not a number: 0) and returns it.
fn count_up(headers: &mut RawObject, name: &str) -> u64 {
    let count = headers
        .get(name)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    headers.set(name, &count);
    count
}

/// The tag of the `n`-th copy (from 1) of an envelope held under `tag`: `<tag>+<n>`. Two
/// copies of one envelope (pushed twice, restored twice) would otherwise share one entry in
/// `unacked`, and a crash would lose all copies but one. Mirrored by `scripts::FETCH`
/// (`unused_tag`).
pub(crate) fn copy_tag(tag: &str, n: usize) -> String {
    format!("{tag}+{n}")
}

/// `raw` with its delivery tag set to `tag`, or `None` when it is not an envelope with
/// properties (the worker dead-letters it then). Mirrored by `scripts::FETCH` (`with_tag`).
pub(crate) fn with_delivery_tag(raw: &str, tag: &str) -> Option<String> {
    let mut envelope = Envelope::open(raw).ok()?;
    envelope.set_delivery_tag(tag).ok()?;
    Some(envelope.close())
}

/// The delivery tag of an envelope, read the way a broker must before it can hold the
/// message: `Ok(None)` when the envelope has no string `properties.delivery_tag`.
///
/// # Errors
///
/// When `raw` is not JSON.
pub(crate) fn delivery_tag(raw: &str) -> Result<Option<String>, serde_json::Error> {
    let envelope = RawJson::from_text(raw)?;
    Ok(envelope
        .to_object()
        .and_then(|e| e.get(field::PROPERTIES).and_then(RawJson::to_object))
        .and_then(|p| p.get(property::DELIVERY_TAG).map(RawJson::parse::<String>))
        .and_then(Result::ok))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::{format_datetime, NewMessage, TaskMessage};

    fn celery_add_message() -> String {
        crate::protocol::decode::tests::celery_add_message()
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
    fn headers_can_be_set_on_a_stored_envelope() {
        let raw = NewMessage::new("tasks.add", "id-1")
            .encode("celery")
            .unwrap();
        let changed = with_header(&raw, header::TASKQ_UNKNOWN_ATTEMPTS, json!(2)).unwrap();
        let msg = TaskMessage::decode(&changed).unwrap();
        assert_eq!((msg.unknown_attempts, msg.id.as_str()), (2, "id-1"));
        assert_eq!(TaskMessage::decode(&raw).unwrap().unknown_attempts, 0);
    }

    #[test]
    fn edits_keep_the_fields_in_their_order_and_their_values_as_written() {
        let add = celery_add_message();
        let changed = with_header(&add, header::TASKQ_RECOVERIES, 3).unwrap();
        assert_eq!(
            changed,
            add.replace(
                r#""stamps": {}}"#,
                r#""stamps": {}, "taskq_recoveries": 3}"#
            )
        );
        let big = add.replace(
            r#""retries": 0"#,
            r#""retries": 0, "x-big": 100000000000000000000000000001"#,
        );
        let tagged = with_delivery_tag(&big, "new-tag").unwrap();
        assert_eq!(
            tagged,
            big.replace("823731d2-bddc-4011-955d-e725266caf6e", "new-tag")
        );
        let retried = retry_envelope(&big, 1, 1_800_000_000.0, "p").unwrap();
        let expected = big
            .replace(r#""retries": 0"#, r#""retries": 1"#)
            .replace(
                r#""eta": null"#,
                r#""eta": "2027-01-15T08:00:00.000000+00:00""#,
            )
            .replace(r#""parent_id": null"#, r#""parent_id": "p""#);
        let tag = |raw: &str| delivery_tag(raw).unwrap().unwrap();
        assert_eq!(
            retried.replace(&tag(&retried), "T"),
            expected.replace(&tag(&expected), "T")
        );
        let back = recovered(&big, "t", true).unwrap().raw;
        assert!(
            back.contains(r#""x-big": 100000000000000000000000000001"#),
            "{back}"
        );
        assert!(back.contains(
            r#""delivery_info": {"exchange": "", "routing_key": "celery", "redelivered": true}"#
        ));
        assert!(back.ends_with(r#""stamps": {}, "taskq_recoveries": 1, "taskq_crashes": 1}, "properties": {"correlation_id": "890ebb03-5a96-424e-a471-d215a7f7201c", "reply_to": "82826158-5f96-3278-b94e-818a922c954e", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery", "redelivered": true}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t.1"}}"#), "{back}");
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
    fn recovery_counts_up_fences_with_a_new_tag_and_marks_redelivered() {
        let raw = NewMessage::new("tasks.add", "id-1")
            .encode("celery")
            .unwrap();
        let first = recovered(&raw, "t", false).unwrap();
        assert_eq!(first.tag, "t.1");
        let msg = TaskMessage::decode(&first.raw).unwrap();
        assert_eq!((msg.recoveries, msg.crashes), (1, 0));
        assert_eq!(msg.delivery_tag, "t.1");
        let envelope: serde_json::Value = serde_json::from_str(&first.raw).unwrap();
        assert_eq!(envelope["properties"]["delivery_info"]["redelivered"], true);

        let second = recovered(&first.raw, &first.tag, true).unwrap();
        assert_eq!(second.tag, "t.1.2");
        let msg = TaskMessage::decode(&second.raw).unwrap();
        assert_eq!((msg.recoveries, msg.crashes), (2, 1));
    }

    #[test]
    fn copies_get_numbered_tags_in_their_envelopes() {
        let raw = NewMessage::new("tasks.add", "id-1")
            .encode("celery")
            .unwrap();
        let copy = with_delivery_tag(&raw, &copy_tag("t", 2)).unwrap();
        assert_eq!(delivery_tag(&copy).unwrap().as_deref(), Some("t+2"));
        assert_eq!(with_delivery_tag("[1]", "t"), None);
        assert_eq!(delivery_tag(r#"{"properties": {}}"#).unwrap(), None);
        assert!(delivery_tag("not json").is_err());
    }
}
