//! JSON text in the dialect Python Celery and kombu write and read.
//!
//! * Output looks like Python's `json.dumps`: `", "` and `": "` separators and every non-ASCII
//!   character escaped as `\uXXXX` (`ensure_ascii=True`), so messages and results stored by Rust
//!   and by Python are byte-for-byte alike.
//! * Input may carry kombu's tagged values (`{"__type__": "datetime", "__value__": "..."}`);
//!   [`untag`] turns them into the plain JSON a Rust type deserializes from.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::Value;

use super::RawJson;

/// kombu's tag key as JSON text spells it: a text without it holds no tagged value, and
/// needs no untagging.
pub(crate) const TYPE_TAG: &str = "\"__type__\"";

/// Serializes `value` as Python's `json.dumps` would.
///
/// ```
/// let text = taskq::pyjson::to_string(&serde_json::json!({"a": [1, "é"]})).unwrap();
/// assert_eq!(text, r#"{"a": [1, "\u00e9"]}"#);
/// ```
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    // The formatter writes ASCII only.
    Ok(String::from_utf8(out).expect("python-style JSON is ASCII"))
}

struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(w, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                for unit in ch.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Parses JSON text as Python writes it into a `serde_json::Value`: also accepts the `NaN`,
/// `Infinity` and `-Infinity` that `json.dumps` emits for such floats. `NaN`, which no JSON
/// number can hold, becomes `null`. Infinities become `±1e999`, which a `Value` holds (and
/// which then decode as `f64::INFINITY`) only when the application enables serde_json's
/// `arbitrary_precision`; without it they are refused as out of range, as are integers
/// beyond 64 bits read as `f64`. [`raw_from_str`] keeps every number exactly, without it.
///
/// ```
/// let v = taskq::pyjson::from_str(r#"[1.5, NaN, "NaN"]"#).unwrap();
/// assert_eq!(v, serde_json::json!([1.5, null, "NaN"]));
/// ```
///
/// # Errors
///
/// When the text is not JSON even with those literals allowed.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(error) => match replace_python_literals(text) {
            Some((fixed, _)) => serde_json::from_str(&fixed),
            None => Err(error),
        },
    }
}

/// Parses JSON text as Python writes it, like [`from_str`], into a [`RawJson`] that keeps
/// every number exactly as written (a `u128` reads back exactly) and objects in their order.
/// Infinities are kept as `±1e999`, which [`RawJson::parse`] reads as `f64::INFINITY`.
///
/// ```
/// let v = taskq::pyjson::raw_from_str(r#"[1.5, Infinity, -Infinity, NaN, "NaN", 100000000000000000000000]"#).unwrap();
/// let (_, inf, neg, nan, text, big): (f64, f64, f64, Option<f64>, String, u128) = v.parse().unwrap();
/// assert!(inf.is_infinite() && inf > 0.0 && neg.is_infinite() && neg < 0.0);
/// assert_eq!((nan, text.as_str(), big), (None, "NaN", 100_000_000_000_000_000_000_000));
/// ```
///
/// # Errors
///
/// When the text is not JSON even with those literals allowed.
pub fn raw_from_str(text: &str) -> serde_json::Result<RawJson> {
    match RawJson::from_text(text) {
        Ok(value) => Ok(value),
        Err(error) => match replace_python_literals(text) {
            Some((fixed, _)) => RawJson::from_text(&fixed),
            None => Err(error),
        },
    }
}

/// Parses a task body as Python writes it, like [`raw_from_str`], but refuses `NaN` instead
/// of turning it into `null`: an argument must not silently change value. Python's `json`
/// (and so Celery) accepts `NaN`, but no JSON number, and so no task argument decoded from
/// one, can hold it. Infinities pass, as in [`raw_from_str`].
///
/// # Errors
///
/// The reason, when the text is not JSON or holds a `NaN`.
pub(crate) fn from_str_refusing_nan(text: &str) -> Result<RawJson, String> {
    let error = match RawJson::from_text(text) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match replace_python_literals(text) {
        Some((_, true)) => Err("it holds a NaN, which taskq cannot pass to a task: JSON \
                                numbers cannot hold NaN (send None or a string instead)"
            .to_owned()),
        Some((fixed, false)) => RawJson::from_text(&fixed).map_err(|e| e.to_string()),
        None => Err(error.to_string()),
    }
}

/// Rewrites `NaN` / `Infinity` / `-Infinity` outside strings, and says whether a `NaN` was
/// among them; `None` when there are none.
fn replace_python_literals(text: &str) -> Option<(String, bool)> {
    const LITERALS: [(&str, &str); 3] = [
        ("-Infinity", "-1e999"),
        ("Infinity", "1e999"),
        ("NaN", "null"),
    ];
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped, mut changed, mut nan) = (false, false, false, false);
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if !in_string {
            if let Some((literal, replacement)) = LITERALS.iter().find(|(l, _)| rest.starts_with(l))
            {
                out.push_str(replacement);
                rest = &rest[literal.len()..];
                changed = true;
                nan |= *literal == "NaN";
                continue;
            }
        }
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ => {}
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    changed.then_some((out, nan))
}

/// Python's `", "` between items of arrays and objects.
fn item_separator<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

/// Replaces kombu's tagged values by their plain JSON form, recursively (taskq does the same
/// on the exact text of arguments and results, before a task or `AsyncResult::get` reads them):
/// `datetime`, `date`, `time`, `decimal` and `bytes` become their string value, `uuid` the
/// canonical hyphenated string, and `base64` stays the base64 text.
///
/// Objects with other keys, or with an unknown `__type__`, are left as they are.
///
/// ```
/// use serde_json::json;
///
/// let tagged = json!([{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}},
///                     {"__type__": "decimal", "__value__": "1.5"}]);
/// assert_eq!(taskq::pyjson::untag(tagged),
///            json!(["12345678-1234-5678-1234-567812345678", "1.5"]));
/// ```
pub fn untag(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(untag).collect()),
        Value::Object(map) => {
            if map.len() == 2 {
                if let (Some(Value::String(kind)), Some(inner)) =
                    (map.get("__type__"), map.get("__value__"))
                {
                    if let Some(plain) = untag_one(kind, inner) {
                        return plain;
                    }
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, untag(v))).collect())
        }
        other => other,
    }
}

fn untag_one(kind: &str, inner: &Value) -> Option<Value> {
    match kind {
        "datetime" | "date" | "time" | "decimal" | "bytes" | "base64" => Some(inner.clone()),
        "uuid" => {
            let hex = inner.get("hex")?.as_str()?;
            uuid::Uuid::parse_str(hex)
                .ok()
                .map(|u| Value::String(u.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_match_python() {
        let v = crate::protocol::raw_object! {"args" => [2, 3], "kwargs" => json!({}),
        "embed" => crate::protocol::raw_object! {"callbacks" => (), "chain" => ()}};
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"args": [2, 3], "kwargs": {}, "embed": {"callbacks": null, "chain": null}}"#
        );
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        assert_eq!(
            to_string("naïve 😀").unwrap(),
            r#""na\u00efve \ud83d\ude00""#
        );
        assert_eq!(to_string("a\"b\\c\n").unwrap(), r#""a\"b\\c\n""#);
    }

    #[test]
    fn python_float_literals_parse_outside_strings_only() {
        #[derive(serde::Deserialize)]
        struct Literals {
            a: Option<f64>,
            b: Vec<f64>,
            c: String,
            d: u8,
        }
        let v: Literals =
            raw_from_str(r#"{"a": NaN, "b": [-Infinity], "c": "Infinity \"NaN\"", "d": 2}"#)
                .unwrap()
                .parse()
                .unwrap();
        assert_eq!(v.a, None);
        assert_eq!(v.b[0], f64::NEG_INFINITY);
        assert_eq!(v.c, r#"Infinity "NaN""#);
        assert_eq!(v.d, 2);
        assert!(from_str("{nope}").is_err());
        assert!(raw_from_str("{nope}").is_err());
        assert_eq!(from_str("[NaN, 1]").unwrap(), json!([null, 1]));
    }

    #[test]
    fn task_bodies_refuse_nan_but_keep_infinities() {
        let err = from_str_refusing_nan("[[1.5, NaN], {}, null]").unwrap_err();
        assert!(err.contains("NaN"), "{err}");
        let v = from_str_refusing_nan(r#"[[Infinity, "NaN"], {}, null]"#).unwrap();
        let ((inf, text), _, _): ((f64, String), Value, Value) = v.parse().unwrap();
        assert_eq!((inf, text.as_str()), (f64::INFINITY, "NaN"));
        assert!(from_str_refusing_nan("[nope").is_err());
    }

    #[test]
    fn tagged_values_become_plain() {
        let v = json!({"when": {"__type__": "datetime", "__value__": "2024-05-01T12:00:00+00:00"},
                       "raw": {"__type__": "bytes", "__value__": "abc"},
                       "odd": {"__type__": "frob", "__value__": 1}});
        assert_eq!(
            untag(v),
            json!({"when": "2024-05-01T12:00:00+00:00", "raw": "abc",
                   "odd": {"__type__": "frob", "__value__": 1}})
        );
    }
}
