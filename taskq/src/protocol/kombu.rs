//! kombu's messages other than tasks: remote-control commands and replies, and events. Same
//! envelope, any JSON body.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::decode::{check_content_type, decode_body, object_field, parse_envelope};
use super::names::{field, property};
use super::{pyjson, raw_object, DecodeError, RawJson, RawObject, CONTENT_TYPE_JSON};
use crate::config::DEFAULT_MAX_MESSAGE_SIZE;

/// Any kombu message with a JSON body: remote-control commands and replies (`celery.pidbox`,
/// `reply.celery.pidbox`) and events (`celeryev`), as they travel on Redis.
///
/// Body and headers are `serde_json` values: an object is written in its map's order and an
/// integer beyond 64 bits is exact only when the application enables serde_json's
/// `preserve_order` and `arbitrary_precision`. taskq's own events and replies are written
/// in Celery's order without them.
///
/// ```
/// use serde_json::json;
/// use taskq::protocol::KombuMessage;
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
    /// let msg = taskq::protocol::KombuMessage::new("celeryev", "task.multi", serde_json::json!([]));
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
    /// let msg = taskq::protocol::KombuMessage::new("reply.celery.pidbox", "oid", serde_json::json!({}))
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
    /// let raw = taskq::protocol::KombuMessage::new("celery.pidbox", "", serde_json::json!({"method": "ping"}))
    ///     .encode()
    ///     .unwrap();
    /// assert!(raw.contains(r#""delivery_info": {"exchange": "celery.pidbox", "routing_key": ""}"#));
    /// ```
    pub fn encode(&self) -> serde_json::Result<String> {
        let body = RawJson::from_serialize(&self.body)?;
        let headers = RawObject::from(self.headers.clone());
        Ok(encode_message(
            &self.exchange,
            &self.routing_key,
            &body,
            &headers,
            self.delivery_mode,
        ))
    }

    /// Decodes an envelope with a JSON body.
    ///
    /// # Errors
    ///
    /// The reason, when the text is not such an envelope.
    ///
    /// ```
    /// assert!(taskq::protocol::KombuMessage::decode("{}").is_err());
    /// ```
    pub fn decode(raw: &str) -> Result<Self, DecodeError> {
        let envelope = parse_envelope(raw)?.to_map();
        let envelope = &envelope;
        let headers = envelope
            .get(field::HEADERS)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let properties = object_field(envelope, field::PROPERTIES).map_err(DecodeError::invalid)?;
        check_content_type(envelope)?;
        let body = decode_body(envelope, &headers, properties, DEFAULT_MAX_MESSAGE_SIZE)?
            .to_value()
            .map_err(|e| DecodeError::undecodable(format!("body is not JSON: {e}")))?;
        let info = properties.get(property::DELIVERY_INFO);
        let text = |name: &str| {
            info.and_then(|i| i.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            body,
            exchange: text(property::EXCHANGE),
            routing_key: text(property::ROUTING_KEY),
            delivery_mode: properties
                .get(property::DELIVERY_MODE)
                .and_then(Value::as_u64)
                .unwrap_or(1) as u8,
            headers,
        })
    }

    /// The Celery events this message carries, as a message on the `celeryev` exchange does:
    /// its body is one event (a JSON object with a `type`), or a batch of them (a list, under
    /// routing key `task.multi`, as a worker sends its buffered task events). A body, or an
    /// item of a batch, that is not a JSON object is no event and is left out.
    ///
    /// ```
    /// use serde_json::json;
    /// use taskq::protocol::KombuMessage;
    ///
    /// let batch = json!([{"type": "task-received", "uuid": "id-1"}, {"type": "task-started", "uuid": "id-1"}]);
    /// let raw = KombuMessage::new("celeryev", "task.multi", batch).encode().unwrap();
    /// let events = KombuMessage::decode(&raw).unwrap().into_events();
    /// assert_eq!(events[1]["type"], "task-started");
    ///
    /// let one = KombuMessage::new("celeryev", "worker.heartbeat", json!({"type": "worker-heartbeat"}));
    /// assert_eq!(one.into_events(), [json!({"type": "worker-heartbeat"})]);
    /// ```
    pub fn into_events(self) -> Vec<Value> {
        match self.body {
            Value::Array(events) => events.into_iter().filter(Value::is_object).collect(),
            event @ Value::Object(_) => vec![event],
            _ => Vec::new(),
        }
    }
}

/// The envelope of a kombu message with `body` and `headers`, as kombu writes it: base64 JSON
/// body, a fresh delivery tag, every object in the order given.
pub(crate) fn encode_message(
    exchange: &str,
    routing_key: &str,
    body: &RawJson,
    headers: &RawObject,
    delivery_mode: u8,
) -> String {
    let body = pyjson::to_string(body).expect("JSON text serializes");
    let envelope = raw_object! {
        field::BODY => base64::engine::general_purpose::STANDARD.encode(body),
        field::CONTENT_ENCODING => "utf-8",
        field::CONTENT_TYPE => CONTENT_TYPE_JSON,
        field::HEADERS => headers,
        field::PROPERTIES => raw_object! {
            property::DELIVERY_MODE => delivery_mode,
            property::DELIVERY_INFO => raw_object! {
                property::EXCHANGE => exchange,
                property::ROUTING_KEY => routing_key,
            },
            property::PRIORITY => 0,
            property::BODY_ENCODING => "base64",
            property::DELIVERY_TAG => uuid::Uuid::new_v4().to_string(),
        },
    };
    pyjson::to_string(&envelope).expect("JSON text serializes")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_json_objects_are_events() {
        let events = |body: Value| KombuMessage::new("celeryev", "task.multi", body).into_events();
        assert_eq!(events(json!([{"type": "a"}, 1, {"type": "b"}])).len(), 2);
        assert!(events(json!("task-sent")).is_empty());
        assert!(events(Value::Null).is_empty());
    }

    #[test]
    fn envelopes_are_written_in_kombus_order() {
        let raw = encode_message(
            "celeryev",
            "task.multi",
            &RawJson::from_text(r#"[{"type": "task-sent", "n": 100000000000000000000000}]"#)
                .unwrap(),
            &raw_object! {"hostname" => "taskq@h"},
            1,
        );
        let tag = raw.rsplit_once(r#""delivery_tag": ""#).unwrap().1;
        assert_eq!(
            raw.replace(tag, "T\"}}"),
            r#"{"body": "W3sidHlwZSI6ICJ0YXNrLXNlbnQiLCAibiI6IDEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"hostname": "taskq@h"}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "T"}}"#
        );
    }
}
