//! The link-time task registry: every `#[task]` submits a [`TaskEntry`] through `inventory`,
//! and workers look tasks up by name here. There is no task list to maintain by hand.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::failure::TaskFailure;
use crate::protocol::{without_position, RawJson, RawObject};
use crate::task::{BoxFuture, Task, TaskOptions};

/// Decoded call arguments as they arrive on the wire: positional `args` and keyword `kwargs`,
/// each value the exact JSON text sent.
///
/// ```
/// use taskq::protocol::{RawJson, RawObject};
///
/// let raw: taskq::registry::RawArgs = (vec![RawJson::from(1)], RawObject::new());
/// ```
pub type RawArgs = (Vec<RawJson>, RawObject);

/// Runs a task from raw wire arguments and returns its result as JSON text.
///
/// ```
/// #[taskq::task(name = "tasks.erased_doc")]
/// async fn erased_doc() {}
///
/// let run: taskq::registry::ErasedRun = taskq::registry::lookup("tasks.erased_doc").unwrap().run;
/// ```
pub type ErasedRun = fn(RawArgs) -> BoxFuture<Result<RawJson, TaskFailure>>;

/// One registered task, type-erased so that a worker can run it from a message.
///
/// ```
/// #[taskq::task(name = "tasks.registry_doc")]
/// async fn registry_doc() {}
///
/// let entry = taskq::registry::lookup("tasks.registry_doc").expect("registered at link time");
/// assert_eq!(entry.name, "tasks.registry_doc");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TaskEntry {
    /// The registered name.
    pub name: &'static str,
    /// Argument names, in order.
    pub arg_names: &'static [&'static str],
    /// Options from the attribute.
    pub options: TaskOptions,
    /// The type-erased body.
    pub run: ErasedRun,
    /// Where the task is defined: the function's path (`my_app::tasks::send_email`), as
    /// `#[task]` records it, for reports such as two tasks registered under one name. Empty
    /// for an entry made by [`TaskEntry::of`] without [`TaskEntry::defined_at`].
    pub function: &'static str,
}

impl TaskEntry {
    /// The entry of task `T`; `const` so that `inventory::submit!` accepts it.
    ///
    /// ```
    /// #[taskq::task(name = "tasks.entry_doc")]
    /// async fn entry_doc(x: u8) -> u8 { x }
    ///
    /// const ENTRY: taskq::registry::TaskEntry = taskq::registry::TaskEntry::of::<entry_doc>();
    /// assert_eq!(ENTRY.arg_names, ["x"]);
    /// ```
    pub const fn of<T: Task>() -> Self {
        Self {
            name: T::NAME,
            arg_names: T::ARG_NAMES,
            options: T::OPTIONS,
            run: run_erased::<T>,
            function: "",
        }
    }

    /// The entry with the path of the function that defines the task; `#[task]` passes
    /// `concat!(module_path!(), "::", <fn name>)`.
    ///
    /// ```
    /// #[taskq::task(name = "tasks.defined_at_doc")]
    /// async fn defined_at_doc() {}
    ///
    /// let entry = taskq::registry::lookup("tasks.defined_at_doc").unwrap();
    /// assert!(entry.function.ends_with("::defined_at_doc"), "{}", entry.function);
    /// ```
    pub const fn defined_at(mut self, function: &'static str) -> Self {
        self.function = function;
        self
    }

    /// The function's path, or the task name when it is not known.
    pub(crate) fn origin(&self) -> &'static str {
        if self.function.is_empty() {
            self.name
        } else {
            self.function
        }
    }
}

inventory::collect!(TaskEntry);

fn run_erased<T: Task>(raw: RawArgs) -> BoxFuture<Result<RawJson, TaskFailure>> {
    let args = match decode_args::<T::Args>(raw, T::ARG_NAMES) {
        Ok(args) => args,
        Err(failure) => return Box::pin(async move { Err(failure) }),
    };
    Box::pin(async move {
        let output = T::run(args).await?;
        RawJson::from_serialize(&output).map_err(|e| TaskFailure::result_not_serializable(&e))
    })
}

/// Merges positional and keyword arguments into the argument tuple, by parameter name, and
/// reads the tuple from their text (so a `u128` argument is exact).
fn decode_args<A: serde::de::DeserializeOwned>(
    (mut args, mut kwargs): RawArgs,
    names: &[&str],
) -> Result<A, TaskFailure> {
    if args.len() > names.len() {
        return Err(TaskFailure::bad_arguments(format!(
            "takes {} positional arguments but {} were given",
            names.len(),
            args.len()
        )));
    }
    for name in &names[args.len()..] {
        match kwargs.remove(name) {
            Some(value) => args.push(value),
            None => {
                return Err(TaskFailure::bad_arguments(format!(
                    "missing required argument: '{name}'"
                )))
            }
        }
    }
    if let Some(unexpected) = kwargs.keys().next() {
        return Err(TaskFailure::bad_arguments(format!(
            "got an unexpected keyword argument '{unexpected}'"
        )));
    }
    // A task without arguments has `()` as its tuple, which serde reads from null, not `[]`.
    let tuple = if names.is_empty() {
        serde_json::from_str("null")
    } else {
        RawJson::parse_array(&args)
    };
    tuple.map_err(|e| {
        TaskFailure::bad_arguments(format!("argument does not decode: {}", without_position(e)))
    })
}

/// Looks a task up by its registered name: the application's tasks, then Celery's built-in
/// ones a workflow may send (`celery.map`, `celery.starmap`, `celery.chunks`,
/// `celery.accumulate`).
///
/// ```
/// assert!(taskq::registry::lookup("no.such.task").is_none());
/// ```
pub fn lookup(name: &str) -> Option<&'static TaskEntry> {
    by_name()
        .get(name)
        .copied()
        .or_else(|| crate::builtins::lookup(name))
}

/// Every registered task, sorted by name (what the worker banner lists).
///
/// ```
/// #[taskq::task(name = "tasks.listed")]
/// async fn listed() {}
///
/// assert!(taskq::registry::all().iter().any(|t| t.name == "tasks.listed"));
/// ```
pub fn all() -> Vec<&'static TaskEntry> {
    let mut entries: Vec<_> = by_name().values().copied().collect();
    entries.sort_by_key(|e| e.name);
    entries
}

/// Each pair of tasks registered under one name, as `[kept, ignored]`: the worker runs the
/// first (the one [`lookup`] returns) and never the second. A worker reports them at start.
///
/// ```
/// assert!(taskq::registry::duplicates().iter().all(|[kept, ignored]| kept.name == ignored.name));
/// ```
pub fn duplicates() -> &'static [[&'static TaskEntry; 2]] {
    &index().duplicates
}

/// The tasks by name, and the ones whose name was taken already.
struct Index {
    by_name: HashMap<&'static str, &'static TaskEntry>,
    duplicates: Vec<[&'static TaskEntry; 2]>,
}

fn by_name() -> &'static HashMap<&'static str, &'static TaskEntry> {
    &index().by_name
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        // Sorted by function path, so that which one is kept does not depend on link order.
        let mut entries: Vec<&'static TaskEntry> =
            inventory::iter::<TaskEntry>.into_iter().collect();
        entries.sort_by_key(|e| (e.name, e.function));
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        for entry in entries {
            match by_name.entry(entry.name) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(entry);
                }
                std::collections::hash_map::Entry::Occupied(kept) => {
                    duplicates.push([*kept.get(), entry]);
                }
            }
        }
        Index {
            by_name,
            duplicates,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn raw(args: Value, kwargs: Value) -> RawArgs {
        (
            args.as_array().unwrap().iter().map(RawJson::from).collect(),
            kwargs.as_object().unwrap().clone().into(),
        )
    }

    #[test]
    fn big_integers_reach_the_task_exactly() {
        let args = RawJson::from_text("[1000000000000000000000000000000]").unwrap();
        let kwargs: RawObject = serde_json::from_str(r#"{"n": -12345678901234567890}"#).unwrap();
        let a: (u128, i128) =
            decode_args((args.to_items().unwrap(), kwargs), &["big", "n"]).unwrap();
        assert_eq!(
            a,
            (
                1_000_000_000_000_000_000_000_000_000_000,
                -12_345_678_901_234_567_890
            )
        );
    }

    #[test]
    fn positional_arguments_decode_into_the_tuple() {
        let a: (i64, String) = decode_args(raw(json!([1, "x"]), json!({})), &["n", "s"]).unwrap();
        assert_eq!(a, (1, "x".to_owned()));
    }

    #[test]
    fn keyword_arguments_fill_the_remaining_positions_by_name() {
        let a: (i64, i64) = decode_args(raw(json!([1]), json!({"y": 2})), &["x", "y"]).unwrap();
        assert_eq!(a, (1, 2));
    }

    #[test]
    fn missing_extra_and_unknown_arguments_are_reported() {
        let missing = decode_args::<(i64, i64)>(raw(json!([1]), json!({})), &["x", "y"]);
        assert!(missing
            .unwrap_err()
            .message()
            .contains("missing required argument: 'y'"));
        let extra = decode_args::<(i64,)>(raw(json!([1, 2]), json!({})), &["x"]);
        assert!(extra
            .unwrap_err()
            .message()
            .contains("1 positional arguments but 2"));
        let unknown = decode_args::<(i64,)>(raw(json!([1]), json!({"z": 1})), &["x"]);
        assert!(unknown.unwrap_err().message().contains("'z'"));
    }

    #[test]
    fn tasks_without_arguments_decode_an_empty_call() {
        let unit: () = decode_args(raw(json!([]), json!({})), &[]).unwrap();
        assert_eq!(unit, ());
        assert!(decode_args::<()>(raw(json!([1]), json!({})), &[]).is_err());
    }

    #[test]
    fn wrongly_typed_arguments_are_reported() {
        let err = decode_args::<(i64,)>(raw(json!(["no"]), json!({})), &["x"]).unwrap_err();
        assert_eq!(err.exc_type(), "TypeError");
        assert_eq!(
            err.message(),
            "argument does not decode: invalid type: string \"no\", expected i64"
        );
    }
}
