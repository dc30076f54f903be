//! Python's `repr()` of JSON values, for the `argsrepr`/`kwargsrepr` headers, events and
//! failure messages that monitors such as Flower show.

use serde_json::Value;

/// The longest `argsrepr`/`kwargsrepr` header, in characters, as Celery's
/// `argsrepr_maxsize`/`kwargsrepr_maxsize`: the reprs are for logs and monitors, and a
/// large argument must not be carried twice.
const REPR_MAX_CHARS: usize = 1024;

/// `repr` cut to [`REPR_MAX_CHARS`] characters and marked with `...` when longer.
pub(super) fn truncate_repr(mut repr: String) -> String {
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

/// The `argsrepr` and `kwargsrepr` headers of the envelope `raw`, as its producer wrote them:
/// what monitors show, as Celery's worker does, since they keep the producer's key order and
/// may hide what it chose to hide. `None` for each one the envelope does not have.
pub(crate) fn producer_reprs(raw: &str) -> (Option<String>, Option<String>) {
    use super::names::{field, header};
    let headers = super::object::Object::parse(raw)
        .ok()
        .and_then(|envelope| envelope.object(field::HEADERS));
    let read = |name: &str| {
        headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .and_then(|text| serde_json::from_str::<String>(text.get()).ok())
    };
    (read(header::ARGSREPR), read(header::KWARGSREPR))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_producers_reprs_are_read_as_written() {
        let raw = r#"{"body": "", "headers": {"task": "t", "argsrepr": "(1,)", "kwargsrepr": "{'y': 1, 'x': 2}"}}"#;
        assert_eq!(
            producer_reprs(raw),
            (Some("(1,)".to_owned()), Some("{'y': 1, 'x': 2}".to_owned()))
        );
        assert_eq!(producer_reprs(r#"{"headers": {}}"#), (None, None));
        assert_eq!(producer_reprs("not json"), (None, None));
    }
    use crate::protocol::NewMessage;

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
