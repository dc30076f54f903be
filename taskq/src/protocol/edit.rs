//! Changes to a stored envelope, each one rule: set a header, build a retry, take a message
//! back from a lost worker, give a copy its own delivery tag. The broker's Lua scripts make
//! the same changes inside Redis (`scripts.rs`); each names the function here it mirrors, and
//! the memory broker calls these functions, so that both brokers change envelopes alike.

use serde_json::{Map, Value};

use super::names::{field, header, property};
use super::{format_time, pyjson, DecodeError};

/// A stored envelope opened for editing, written back in Python's JSON dialect.
struct Envelope(Map<String, Value>);

impl Envelope {
    /// The envelope in `raw`, or why it is not a JSON object.
    fn open(raw: &str) -> Result<Self, DecodeError> {
        super::decode::parse_envelope(raw).map(Self)
    }

    /// The `headers` (or `properties`) object.
    fn section(&mut self, name: &str) -> Result<&mut Map<String, Value>, DecodeError> {
        self.0
            .get_mut(name)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| DecodeError::invalid(format!("envelope has no `{name}` object")))
    }

    fn headers(&mut self) -> Result<&mut Map<String, Value>, DecodeError> {
        self.section(field::HEADERS)
    }

    fn properties(&mut self) -> Result<&mut Map<String, Value>, DecodeError> {
        self.section(field::PROPERTIES)
    }

    fn set_delivery_tag(&mut self, tag: &str) -> Result<(), DecodeError> {
        self.properties()?
            .insert(property::DELIVERY_TAG.to_owned(), tag.into());
        Ok(())
    }

    fn close(&self) -> String {
        pyjson::to_string(&self.0).expect("a JSON object serializes")
    }
}

/// Returns `raw` with header `name` set to `value`, everything else unchanged in meaning.
///
/// # Errors
///
/// When `raw` is not a JSON object with a `headers` object.
pub(crate) fn with_header(raw: &str, name: &str, value: Value) -> Result<String, DecodeError> {
    let mut envelope = Envelope::open(raw)?;
    envelope.headers()?.insert(name.to_owned(), value);
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
    let headers = envelope.headers()?;
    headers.insert(header::RETRIES.to_owned(), retries.into());
    headers.insert(header::ETA.to_owned(), format_time(eta).into());
    headers.insert(header::PARENT_ID.to_owned(), task_id.into());
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
    if !envelope.0.get(field::HEADERS).is_some_and(Value::is_object) {
        envelope
            .0
            .insert(field::HEADERS.to_owned(), Map::new().into());
    }
    let headers = envelope.headers()?;
    let recoveries = count_up(headers, header::TASKQ_RECOVERIES);
    if started {
        count_up(headers, header::TASKQ_CRASHES);
    }
    let tag = format!("{tag}.{recoveries}");
    if let Ok(properties) = envelope.properties() {
        if let Some(info) = properties
            .get_mut(property::DELIVERY_INFO)
            .and_then(Value::as_object_mut)
        {
            info.insert(property::REDELIVERED.to_owned(), true.into());
        }
        properties.insert(property::DELIVERY_TAG.to_owned(), tag.clone().into());
    }
    Ok(Recovered {
        tag,
        raw: envelope.close(),
    })
}

/// Adds one to the count in header `name` (absent or not a number: 0) and returns it.
fn count_up(headers: &mut Map<String, Value>, name: &str) -> u64 {
    let count = headers.get(name).and_then(Value::as_u64).unwrap_or(0) + 1;
    headers.insert(name.to_owned(), count.into());
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
    let envelope: Value = serde_json::from_str(raw)?;
    Ok(envelope
        .get(field::PROPERTIES)
        .and_then(|p| p.get(property::DELIVERY_TAG))
        .and_then(Value::as_str)
        .map(str::to_owned))
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
        let envelope: Value = serde_json::from_str(&first.raw).unwrap();
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
