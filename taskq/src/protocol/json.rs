//! JSON kept as it was written: [`RawJson`] holds one value as text, [`RawObject`] the entries
//! of an object in their order. taskq passes arguments, keyword arguments and results through
//! these instead of `serde_json::Value`, whose numbers are `f64`/`u64`/`i64` and whose objects
//! are sorted unless the application turns on serde_json's `arbitrary_precision` and
//! `preserve_order` (which taskq must not force on every program that links it). So a Python
//! big integer (`10**30`) reaches a task's `u128` exactly, comes back exactly in a result, and
//! the keyword arguments Python sent keep their order in `kwargsrepr`, events and replies.
//!
//! The text is always in Python's dialect ([`pyjson`](super::pyjson)): `", "` and `": "`
//! separators, every non-ASCII character escaped; what arrives in another spelling is
//! rewritten into it, numbers and strings unchanged.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::pyjson;

/// One JSON value, as text in Python's JSON dialect: exact, whatever its numbers, and with its
/// objects' keys in the order they were written.
///
/// Read it typed with [`parse`](Self::parse) (a `u128` or `i128` reads exactly), or as a
/// `serde_json::Value` with [`to_value`](Self::to_value) (exact for big integers only when
/// the application enables serde_json's `arbitrary_precision`; key order only with its
/// `preserve_order`).
///
/// ```
/// use taskq::protocol::RawJson;
///
/// let big = RawJson::from_text("1000000000000000000000000000000")?;
/// assert_eq!(big.parse::<u128>()?, 1_000_000_000_000_000_000_000_000_000_000);
/// let text = RawJson::from_text(r#"{"z":1,"a":"é"}"#)?;
/// assert_eq!(text.as_str(), r#"{"z": 1, "a": "\u00e9"}"#);
/// assert_eq!(RawJson::from_serialize(&(1, "two"))?.as_str(), r#"[1, "two"]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// `null`.
    pub fn null() -> Self {
        Self::from_python_text("null".to_owned())
    }

    /// `value` serialized, as Python's `json.dumps` would write it.
    ///
    /// # Errors
    ///
    /// When `value` does not serialize (a map with non-string keys, a failing `Serialize`).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        pyjson::to_string(value).map(Self::from_python_text)
    }

    /// JSON text (any spelling: compact, indented, not ASCII), rewritten into Python's dialect.
    ///
    /// # Errors
    ///
    /// When `text` is not one JSON value.
    pub fn from_text(text: &str) -> serde_json::Result<Self> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Self::from_raw(raw))
    }

    /// A value read from a larger text, rewritten into Python's dialect when it is not.
    pub(crate) fn from_raw(raw: &RawValue) -> Self {
        match python_dialect(raw.get()) {
            Cow::Borrowed(_) => Self(raw.to_owned()),
            Cow::Owned(text) => Self::from_python_text(text),
        }
    }

    /// Text taskq wrote itself (Python's dialect, valid JSON).
    fn from_python_text(text: String) -> Self {
        Self(RawValue::from_string(text).expect("taskq writes valid JSON"))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.as_str() == "null"
    }

    /// Deserializes the value as `T`, straight from the text: integers of any size read
    /// exactly into `u128`/`i128` (or fail to fit), and an infinity Python wrote
    /// (`Infinity`, kept as `1e999`) reads as `f64::INFINITY`.
    ///
    /// # Errors
    ///
    /// When the value is not a `T`.
    ///
    /// ```
    /// let pair = taskq::protocol::RawJson::from_text("[-12345678901234567890, 1e999]")?;
    /// let (n, x): (i128, f64) = pair.parse()?;
    /// assert_eq!((n, x), (-12345678901234567890, f64::INFINITY));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        match serde_json::from_str(self.as_str()) {
            Ok(value) => Ok(value),
            Err(error) => self.parse_with_infinities(error),
        }
    }

    /// `parse` for a value serde_json refused with `error`: serde_json refuses numbers beyond
    /// f64, so only a value holding Python's infinities reads here.
    fn parse_with_infinities<T: DeserializeOwned>(
        &self,
        error: serde_json::Error,
    ) -> serde_json::Result<T> {
        match Tree::read(&self.0) {
            Ok(tree) if tree.has_infinity() => T::deserialize(&tree),
            _ => Err(error),
        }
    }

    /// Deserializes `items` as one array `[item, ...]`, as [`parse`](Self::parse) would; on
    /// the worker's hot path (a task's argument tuple), so the array is read straight from
    /// the joined text without first being checked as a value of its own.
    pub(crate) fn parse_array<T: DeserializeOwned>(items: &[RawJson]) -> serde_json::Result<T> {
        let length = items
            .iter()
            .map(|item| item.as_str().len() + 2)
            .sum::<usize>();
        let mut text = String::with_capacity(length + 2);
        text.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(item.as_str());
        }
        text.push(']');
        match serde_json::from_str(&text) {
            Ok(value) => Ok(value),
            Err(error) => Self::from_python_text(text).parse_with_infinities(error),
        }
    }

    /// The value as a `serde_json::Value`. Integers beyond 64 bits stay exact, and objects keep
    /// their order, only when the application enables serde_json's `arbitrary_precision` and
    /// `preserve_order`; otherwise they become `f64` and objects are sorted. An infinity
    /// becomes `null` then, as no plain `Value` can hold it.
    ///
    /// # Errors
    ///
    /// Never for a value taskq read or wrote; the `Result` is that of
    /// [`parse`](Self::parse).
    pub fn to_value(&self) -> serde_json::Result<Value> {
        self.parse()
    }

    /// The value with kombu's tagged values replaced by their plain form (see
    /// [`pyjson::untag`](super::pyjson::untag)); itself when it holds none.
    pub(crate) fn untagged(self) -> Self {
        if !self.as_str().contains(pyjson::TYPE_TAG) {
            return self;
        }
        match Tree::read(&self.0) {
            Ok(tree) => Self::from_serialize(&tree.untag()).unwrap_or(self),
            Err(_) => self,
        }
    }

    /// The value as compact JSON (`{"a":1}`), as logs show it; numbers as written.
    pub(crate) fn compact(&self) -> String {
        match self.tree() {
            Ok(tree) => serde_json::to_string(&tree).unwrap_or_else(|_| self.to_string()),
            Err(_) => self.to_string(),
        }
    }

    /// The tree of this value, for `repr` and the like.
    pub(crate) fn tree(&self) -> serde_json::Result<Tree<'_>> {
        Tree::read(&self.0)
    }

    /// The entries of this value when it is an object, in their order; `None` otherwise.
    ///
    /// ```
    /// let raw = taskq::protocol::RawJson::from_text(r#"{"b": 1, "a": 2}"#)?;
    /// assert_eq!(raw.to_object().unwrap().keys().collect::<Vec<_>>(), ["b", "a"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn to_object(&self) -> Option<RawObject> {
        self.as_str()
            .starts_with('{')
            .then(|| serde_json::from_str(self.as_str()).ok())
            .flatten()
    }

    /// The items of this value when it is an array; `None` otherwise.
    ///
    /// ```
    /// let raw = taskq::protocol::RawJson::from_text("[1, 100000000000000000000000]")?;
    /// assert_eq!(raw.to_items().unwrap()[1].as_str(), "100000000000000000000000");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn to_items(&self) -> Option<Vec<RawJson>> {
        let items: Vec<&RawValue> = if self.as_str().starts_with('[') {
            serde_json::from_str(self.as_str()).ok()?
        } else {
            return None;
        };
        Some(items.into_iter().map(Self::from_raw).collect())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(match python_dialect(raw.get()) {
            Cow::Borrowed(_) => Self(raw),
            Cow::Owned(text) => Self::from_python_text(text),
        })
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RawJson {}

impl std::hash::Hash for RawJson {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// Compares the value read as a `Value` (see [`RawJson::to_value`]).
impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.to_value().is_ok_and(|value| value == *other)
    }
}

impl PartialEq<RawJson> for Value {
    fn eq(&self, other: &RawJson) -> bool {
        other == self
    }
}

/// Compares the value read as a number, boolean or string: `raw == 5` when it reads as 5.
macro_rules! raw_json_eq {
    ($($ty:ty),*) => {$(
        impl PartialEq<$ty> for RawJson {
            fn eq(&self, other: &$ty) -> bool {
                self.parse::<$ty>().is_ok_and(|value| value == *other)
            }
        }
    )*};
}

raw_json_eq!(bool, i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64, String);

impl PartialEq<&str> for RawJson {
    fn eq(&self, other: &&str) -> bool {
        self.parse::<String>().is_ok_and(|value| value == *other)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for RawJson {
    fn default() -> Self {
        Self::null()
    }
}

/// A `Value`'s text: exact for big integers when the application's serde_json has
/// `arbitrary_precision`, in its map order.
impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> Self {
        Self::from_serialize(value).expect("a Value serializes")
    }
}

macro_rules! raw_json_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for RawJson {
            fn from(value: $ty) -> Self {
                Self::from_serialize(&value).expect("a plain value serializes")
            }
        }
    )*};
}

raw_json_from!(bool, i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64, &str, String);

/// The entries of a JSON object, in the order they were written; values are [`RawJson`].
/// A key written twice keeps its first place and its last value, as Python's `json` reads it.
///
/// ```
/// use taskq::protocol::{RawJson, RawObject};
///
/// let mut kwargs: RawObject = serde_json::from_str(r#"{"z": 1, "a": 10000000000000000000000}"#)?;
/// kwargs.insert("m", RawJson::from(true));
/// assert_eq!(kwargs.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
/// assert_eq!(kwargs["a"].parse::<u128>()?, 10_000_000_000_000_000_000_000);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawObject(Vec<(String, RawJson)>);

impl RawObject {
    /// No entries.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&RawJson> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`: in its place when present (returning the old value), else last.
    pub fn insert(&mut self, key: impl Into<String>, value: RawJson) -> Option<RawJson> {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Sets `key` to `value` serialized; for values taskq builds, which always serialize.
    pub(crate) fn set<T: Serialize + ?Sized>(&mut self, key: impl Into<String>, value: &T) {
        let value = RawJson::from_serialize(value).expect("taskq's values serialize");
        self.insert(key, value);
    }

    /// Removes `key`, the others keeping their order.
    pub fn remove(&mut self, key: &str) -> Option<RawJson> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawJson)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The object as a `serde_json` map (see [`RawJson::to_value`] for what it keeps).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_value().unwrap_or(Value::Null)))
            .collect()
    }

    /// The object as one [`RawJson`].
    pub fn to_raw(&self) -> RawJson {
        RawJson::from_serialize(self).expect("an object of JSON values serializes")
    }
}

impl std::ops::Index<&str> for RawObject {
    type Output = RawJson;

    /// The value of `key`; panics when it is absent.
    fn index(&self, key: &str) -> &RawJson {
        self.get(key)
            .unwrap_or_else(|| panic!("no key {key:?} in the object"))
    }
}

impl IntoIterator for RawObject {
    type Item = (String, RawJson);
    type IntoIter = std::vec::IntoIter<(String, RawJson)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Into<String>> FromIterator<(K, RawJson)> for RawObject {
    fn from_iter<I: IntoIterator<Item = (K, RawJson)>>(iter: I) -> Self {
        let mut object = Self::new();
        for (key, value) in iter {
            object.insert(key, value);
        }
        object
    }
}

/// The map's entries, in its order (sorted unless the application's serde_json has
/// `preserve_order`).
impl From<Map<String, Value>> for RawObject {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter()
            .map(|(k, v)| (k, RawJson::from(v)))
            .collect()
    }
}

impl fmt::Debug for RawObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Entries::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(Self(
            entries
                .0
                .into_iter()
                .map(|(k, raw)| (k, RawJson::from_raw(&raw)))
                .collect(),
        ))
    }
}

/// An object's entries in order; a repeated key keeps its first place and its last value.
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, old)) => *old = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

/// A JSON value opened up, its numbers still text and its objects in order: what `repr`,
/// untagging and reading infinities work on.
#[derive(Debug, Clone)]
pub(crate) enum Tree<'a> {
    Null,
    Bool(bool),
    Number(&'a RawValue),
    String(String),
    Array(Vec<Tree<'a>>),
    Object(Vec<(String, Tree<'a>)>),
}

impl<'a> Tree<'a> {
    /// The tree of a value (valid JSON, so depth and syntax are already checked).
    pub(crate) fn read(raw: &'a RawValue) -> serde_json::Result<Self> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'n') => Tree::Null,
            Some(b't') => Tree::Bool(true),
            Some(b'f') => Tree::Bool(false),
            Some(b'"') => Tree::String(serde_json::from_str(text)?),
            Some(b'[') => {
                let items: Vec<&'a RawValue> = serde_json::from_str(text)?;
                Tree::Array(
                    items
                        .into_iter()
                        .map(Tree::read)
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(b'{') => {
                let entries: Entries<&'a RawValue> = serde_json::from_str(text)?;
                Tree::Object(
                    entries
                        .0
                        .into_iter()
                        .map(|(k, v)| Tree::read(v).map(|v| (k, v)))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => Tree::Number(raw),
        })
    }

    /// The entry `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Tree<'a>> {
        match self {
            Tree::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether a number in the tree is beyond `f64` (Python's `Infinity`, kept as `1e999`).
    fn has_infinity(&self) -> bool {
        match self {
            Tree::Number(raw) => is_infinite(raw.get()),
            Tree::Array(items) => items.iter().any(Tree::has_infinity),
            Tree::Object(entries) => entries.iter().any(|(_, v)| v.has_infinity()),
            _ => false,
        }
    }

    /// kombu's tagged values (`{"__type__": ..., "__value__": ...}`) replaced by their plain
    /// form, recursively; the rule of [`pyjson::untag`](super::pyjson::untag).
    pub(crate) fn untag(self) -> Self {
        match self {
            Tree::Array(items) => Tree::Array(items.into_iter().map(Tree::untag).collect()),
            Tree::Object(entries) => {
                if let [(k1, Tree::String(kind)), (k2, inner)] = entries.as_slice() {
                    if k1 == "__type__" && k2 == "__value__" {
                        if let Some(plain) = untag_one(kind, inner) {
                            return plain;
                        }
                    }
                }
                if let [(k1, inner), (k2, Tree::String(kind))] = entries.as_slice() {
                    if k1 == "__value__" && k2 == "__type__" {
                        if let Some(plain) = untag_one(kind, inner) {
                            return plain;
                        }
                    }
                }
                Tree::Object(entries.into_iter().map(|(k, v)| (k, v.untag())).collect())
            }
            other => other,
        }
    }
}

fn untag_one<'a>(kind: &str, inner: &Tree<'a>) -> Option<Tree<'a>> {
    match kind {
        "datetime" | "date" | "time" | "decimal" | "bytes" | "base64" => Some(inner.clone()),
        "uuid" => match inner.get("hex") {
            Some(Tree::String(hex)) => uuid::Uuid::parse_str(hex)
                .ok()
                .map(|u| Tree::String(u.to_string())),
            _ => None,
        },
        _ => None,
    }
}

/// Whether number text is a float beyond `f64` (integers of any size are not).
fn is_infinite(number: &str) -> bool {
    number.contains(['e', 'E', '.']) && number.parse::<f64>().is_ok_and(f64::is_infinite)
}

impl Serialize for Tree<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => serializer.serialize_unit(),
            Tree::Bool(b) => serializer.serialize_bool(*b),
            Tree::Number(raw) => raw.serialize(serializer),
            Tree::String(s) => serializer.serialize_str(s),
            Tree::Array(items) => serializer.collect_seq(items),
            Tree::Object(entries) => serializer.collect_map(entries.iter().map(|(k, v)| (k, v))),
        }
    }
}

/// Deserializer methods that read a number with serde_json's own method of the same name.
macro_rules! integer_methods {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
            match self {
                Tree::Number(raw) => number(raw.get(), visitor, |de, v| de.$method(v)),
                other => other.deserialize_any(visitor),
            }
        }
    )*};
}

/// Reads a tree as any `Deserialize` type; numbers are read by serde_json from their text,
/// except infinities, which serde_json refuses and which read as `f64::INFINITY` (or keep their
/// text in a `Value` when the application's serde_json has `arbitrary_precision`).
impl<'de> de::Deserializer<'de> for &'de Tree<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
        match self {
            Tree::Null => visitor.visit_unit(),
            Tree::Bool(b) => visitor.visit_bool(*b),
            Tree::Number(raw) => {
                let text = raw.get();
                // With `arbitrary_precision`, a `Value` keeps the text of any number.
                if is_infinite(text) && serde_json::from_str::<Value>(text).is_err() {
                    visitor.visit_f64(infinity(text))
                } else {
                    number(text, visitor, |de, v| de.deserialize_any(v))
                }
            }
            Tree::String(s) => visitor.visit_borrowed_str(s),
            Tree::Array(items) => SeqDeserializer::new(items.iter()).deserialize_any(visitor),
            Tree::Object(entries) => {
                MapDeserializer::new(entries.iter().map(|(k, v)| (k.as_str(), v)))
                    .deserialize_any(visitor)
            }
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
        match self {
            Tree::Number(raw) if is_infinite(raw.get()) => visitor.visit_f64(infinity(raw.get())),
            Tree::Number(raw) => number(raw.get(), visitor, |de, v| de.deserialize_f64(v)),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
        match self {
            Tree::Number(raw) if is_infinite(raw.get()) => visitor.visit_f64(infinity(raw.get())),
            Tree::Number(raw) => number(raw.get(), visitor, |de, v| de.deserialize_f32(v)),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
        match self {
            Tree::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> serde_json::Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> serde_json::Result<V::Value> {
        match self {
            Tree::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Tree::Object(entries) if entries.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(
                    entries.iter().map(|(k, v)| (k.as_str(), v)),
                )))
            }
            other => other.deserialize_any(visitor),
        }
    }

    integer_methods! {
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
    }

    serde::forward_to_deserialize_any! {
        bool char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for &'de Tree<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Reads number `text` with serde_json's deserializer.
fn number<'de, V: Visitor<'de>>(
    text: &'de str,
    visitor: V,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
        V,
    ) -> serde_json::Result<V::Value>,
) -> serde_json::Result<V::Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = read(&mut de, visitor)?;
    de.end()?;
    Ok(value)
}

fn infinity(text: &str) -> f64 {
    if text.starts_with('-') {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    }
}

/// `error` without the position serde_json adds when it reads text (` at line 1 column 5`):
/// the position in an argument list or a result taskq put together means nothing to the
/// reader, and messages stay as they were when these were read from `Value`s.
pub(crate) fn without_position(error: serde_json::Error) -> serde_json::Error {
    if error.line() == 0 {
        return error;
    }
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    <serde_json::Error as de::Error>::custom(text.strip_suffix(&suffix).unwrap_or(&text))
}

/// `text` (valid JSON) in Python's dialect: borrowed when it already is.
pub(crate) fn python_dialect(text: &str) -> Cow<'_, str> {
    if is_python_dialect(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(to_python_dialect(text))
    }
}

/// Whether valid JSON `text` is spelled as Python's `json.dumps` spells it: ASCII only, no
/// whitespace outside strings but one space after each `,` and `:`.
fn is_python_dialect(text: &str) -> bool {
    if !text.is_ascii() {
        return false;
    }
    let bytes = text.as_bytes();
    let (mut in_string, mut escaped, mut i) = (false, false, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b':' => {
                    if bytes.get(i + 1) != Some(&b' ') {
                        return false;
                    }
                    i += 1;
                }
                b' ' | b'\t' | b'\n' | b'\r' => return false,
                _ => {}
            }
        }
        i += 1;
    }
    true
}

/// Valid JSON `text` respelled as Python's `json.dumps` spells it; numbers, escapes and
/// characters unchanged, non-ASCII characters escaped as `\uXXXX`.
fn to_python_dialect(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut units = [0u16; 2];
    for ch in text.chars() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            if ch.is_ascii() {
                out.push(ch);
            } else {
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        } else {
            match ch {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(ch);
                }
                ',' => out.push_str(", "),
                ':' => out.push_str(": "),
                _ => out.push(ch),
            }
        }
    }
    out
}

/// A [`RawObject`] of `key => value` entries in this order, each value serialized
/// (`RawObject::set`): for the JSON objects taskq writes, whose order is on the wire.
macro_rules! raw_object {
    ($($key:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut object = $crate::protocol::RawObject::new();
        $( object.set($key, &$value); )*
        object
    }};
}
pub(crate) use raw_object;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_are_read_and_written_exactly() {
        let raw =
            RawJson::from_text("[1000000000000000000000000000000, -12345678901234567890]").unwrap();
        let (big, negative): (u128, i128) = raw.parse().unwrap();
        assert_eq!(big, 1_000_000_000_000_000_000_000_000_000_000);
        assert_eq!(negative, -12_345_678_901_234_567_890);
        let back = RawJson::from_serialize(&(big, negative)).unwrap();
        assert_eq!(back, raw);
        assert!(raw.parse::<(u64, i64)>().is_err(), "too big for 64 bits");
    }

    #[test]
    fn objects_keep_their_order_and_a_repeated_key_its_first_place() {
        let object: RawObject = serde_json::from_str(r#"{"z": 1, "a": 2, "z": 3}"#).unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["z", "a"]);
        assert_eq!(object["z"].as_str(), "3");
        assert_eq!(object.to_raw().as_str(), r#"{"z": 3, "a": 2}"#);
        let mut object = object;
        assert_eq!(object.remove("z").unwrap().as_str(), "3");
        object.insert("b", RawJson::from(1));
        assert_eq!(object.to_raw().as_str(), r#"{"a": 2, "b": 1}"#);
    }

    #[test]
    fn text_is_respelled_in_pythons_dialect_only_where_needed() {
        let python = r#"{"a": [1, 2.5e10, "x, y: \"z\""], "b": "\u00e9"}"#;
        assert!(matches!(python_dialect(python), Cow::Borrowed(_)));
        let compact = "{\"a\":[1,2.5e10,\"x, y: \\\"z\\\"\"],\n \"b\":\"é\"}";
        assert_eq!(python_dialect(compact), python);
        assert_eq!(
            RawJson::from_text("\"😀\"").unwrap().as_str(),
            r#""\ud83d\ude00""#
        );
    }

    #[test]
    fn infinities_read_as_floats_and_values_as_values() {
        let raw = RawJson::from_text(r#"{"x": [1e999, -1e999], "n": 7}"#).unwrap();
        #[derive(Deserialize)]
        struct Shape {
            x: Vec<f64>,
            n: u8,
        }
        let shape: Shape = raw.parse().unwrap();
        assert_eq!(
            (shape.x, shape.n),
            (vec![f64::INFINITY, f64::NEG_INFINITY], 7)
        );
        assert!(raw.parse::<(u8,)>().is_err());
        assert_eq!(raw.to_value().unwrap()["n"], 7);
    }

    #[test]
    fn tagged_values_become_plain_in_place() {
        let raw = RawJson::from_text(
            r#"{"z": {"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}, "a": [{"__type__": "decimal", "__value__": "1.5"}, 100000000000000000000000]}"#,
        )
        .unwrap();
        assert_eq!(
            raw.untagged().as_str(),
            r#"{"z": "12345678-1234-5678-1234-567812345678", "a": ["1.5", 100000000000000000000000]}"#
        );
    }

    #[test]
    fn objects_are_built_in_the_order_written() {
        let object = raw_object! {"type" => "task-sent", "n" => 1u128 << 100, "none" => (), "list" => [1, 2]};
        assert_eq!(
            object.to_raw().as_str(),
            r#"{"type": "task-sent", "n": 1267650600228229401496703205376, "none": null, "list": [1, 2]}"#
        );
    }
}
