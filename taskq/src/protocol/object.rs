//! A JSON object kept as it was written: its keys in their order, each value as its text. An
//! envelope edit goes through it, so that what the edit does not touch comes back byte for
//! byte, without asking serde_json for `preserve_order` (which every application linking
//! taskq would then get too, since Cargo unifies features).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use super::pyjson;

/// A JSON object: `(key, value text)` in the order written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Object(Vec<(String, Box<RawValue>)>);

impl Object {
    /// The object `text` holds.
    ///
    /// # Errors
    ///
    /// When `text` is not JSON, or not an object.
    pub(crate) fn parse(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The value text under `key`, the first when the key repeats.
    pub(crate) fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_ref())
    }

    /// The object under `key`; `None` when there is none, or the value is not an object.
    pub(crate) fn object(&self, key: &str) -> Option<Object> {
        self.get(key)
            .and_then(|value| Self::parse(value.get()).ok())
    }

    /// Sets `key` to `value` written in Python's JSON dialect: in place when the key is
    /// there, else last.
    pub(crate) fn set(&mut self, key: &str, value: &impl Serialize) -> serde_json::Result<()> {
        let text = RawValue::from_string(pyjson::to_string(value)?)?;
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = text,
            None => self.0.push((key.to_owned(), text)),
        }
        Ok(())
    }

    /// The object as text, in Python's JSON dialect; values as they were written.
    pub(crate) fn to_json(&self) -> String {
        pyjson::to_string(self).expect("an object of JSON texts serializes")
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;

        impl<'de> Visitor<'de> for InOrder {
            type Value = Object;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(Object(entries))
            }
        }

        deserializer.deserialize_map(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_values_their_text() {
        let text = r#"{"z": 1, "a": {"y": 1.50, "b": [1, 2]}, "m": "\u00e9"}"#;
        let mut object = Object::parse(text).unwrap();
        assert_eq!(object.to_json(), text);
        object.set("a", &true).unwrap();
        object.set("new", &"é").unwrap();
        assert_eq!(
            object.to_json(),
            r#"{"z": 1, "a": true, "m": "\u00e9", "new": "\u00e9"}"#
        );
        let nested = Object::parse(text).unwrap().object("a").unwrap();
        assert_eq!(nested.to_json(), r#"{"y": 1.50, "b": [1, 2]}"#);
        assert!(Object::parse(text).unwrap().object("z").is_none());
        assert!(Object::parse("[1]").is_err() && Object::parse("{").is_err());
    }

    #[test]
    fn numbers_beyond_64_bits_pass_through_unchanged() {
        let text = r#"{"big": 1000000000000000000000000000000, "n": -12345678901234567890123}"#;
        assert_eq!(Object::parse(text).unwrap().to_json(), text);
    }
}
