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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
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
