//! Python's `repr()` of JSON values, for the `argsrepr`/`kwargsrepr` headers, events and
//! failure messages that monitors such as Flower show.

use super::{RawJson, RawObject, Tree};

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
pub(crate) fn args_repr(args: &[RawJson]) -> String {
    let items: Vec<String> = args.iter().map(py_repr).collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

/// Python's `repr()` of the keyword arguments, in the order they were sent: `{'b': 1, 'a': 2}`.
pub(crate) fn kwargs_repr(kwargs: &RawObject) -> String {
    let entries: Vec<String> = kwargs
        .iter()
        .map(|(k, v)| format!("'{}': {}", k, py_repr(v)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// Python's `repr()` of a JSON value: numbers as written, objects in their order.
pub(crate) fn py_repr(value: &RawJson) -> String {
    match value.tree() {
        Ok(tree) => tree_repr(&tree),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr()` of a string.
pub(crate) fn str_repr(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn tree_repr(tree: &Tree<'_>) -> String {
    match tree {
        Tree::Null => "None".to_owned(),
        Tree::Bool(true) => "True".to_owned(),
        Tree::Bool(false) => "False".to_owned(),
        Tree::Number(n) => n.get().to_owned(),
        Tree::String(s) => str_repr(s),
        Tree::Array(items) => format!(
            "[{}]",
            items.iter().map(tree_repr).collect::<Vec<_>>().join(", ")
        ),
        Tree::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("'{}': {}", k, tree_repr(v)))
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
        let encoded: serde_json::Value =
            serde_json::from_str(&msg.encode("celery").unwrap()).unwrap();
        let argsrepr = encoded["headers"]["argsrepr"].as_str().unwrap();
        assert_eq!(argsrepr.chars().count(), REPR_MAX_CHARS + 3);
        assert!(argsrepr.starts_with("('éé") && argsrepr.ends_with("é..."));
        assert_eq!(truncate_repr("(2, 3)".to_owned()), "(2, 3)");
    }
    #[test]
    fn reprs_look_like_python() {
        let raw = |v: serde_json::Value| RawJson::from(v);
        assert_eq!(args_repr(&[raw(json!(42))]), "(42,)");
        assert_eq!(
            args_repr(&[raw(json!("it's")), raw(json!(null)), raw(json!(true))]),
            r#"('it\'s', None, True)"#
        );
        assert_eq!(py_repr(&raw(json!({"a": [1]}))), "{'a': [1]}");
        assert_eq!(args_repr(&[]), "()");
    }
    #[test]
    fn reprs_keep_big_integers_and_the_order_sent() {
        let kwargs: RawObject = serde_json::from_str(
            r#"{"zeta": 100000000000000000000000, "alpha": {"y": 1.5, "x": "a\\b"}}"#,
        )
        .unwrap();
        assert_eq!(
            kwargs_repr(&kwargs),
            r#"{'zeta': 100000000000000000000000, 'alpha': {'y': 1.5, 'x': 'a\\b'}}"#
        );
        assert_eq!(kwargs_repr(&RawObject::new()), "{}");
    }
}
