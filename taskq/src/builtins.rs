//! Celery's built-in tasks, which a workflow sent from Python may ask any worker to run:
//! `celery.map` and `celery.starmap` (a task called in-process over a list), `celery.chunks`
//! (a list cut into `celery.starmap` tasks sent as a group) and `celery.accumulate` (a
//! group's results as one result). Every taskq worker runs them; they are looked up after the
//! application's own tasks and not listed among them.

use crate::canvas::{apply, Origin};
use crate::failure::TaskFailure;
use crate::protocol::{RawJson, RawObject, Signature, SignatureKind};
use crate::registry::{RawArgs, TaskEntry};
use crate::task::{BoxFuture, TaskOptions};

const fn builtin(
    name: &'static str,
    arg_names: &'static [&'static str],
    run: crate::registry::ErasedRun,
) -> TaskEntry {
    TaskEntry {
        name,
        arg_names,
        options: TaskOptions::new(),
        run,
        function: name,
    }
}

static BUILTINS: [TaskEntry; 4] = [
    builtin("celery.map", &["task", "it"], run_map),
    builtin("celery.starmap", &["task", "it"], run_starmap),
    builtin("celery.chunks", &["task", "it", "n"], run_chunks),
    builtin("celery.accumulate", &[], run_accumulate),
];

/// The built-in task called `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static TaskEntry> {
    BUILTINS.iter().find(|entry| entry.name == name)
}

type Run = BoxFuture<Result<RawJson, TaskFailure>>;

/// `celery.map(task, it)`: `[task(item) for item in it]`, each call made in this worker.
fn run_map(raw: RawArgs) -> Run {
    Box::pin(async move {
        let (task, items) = task_and_items(&raw)?;
        call_each(task, items, |item| vec![item]).await
    })
}

/// `celery.starmap(task, it)`: `[task(*item) for item in it]`, each call made in this worker.
fn run_starmap(raw: RawArgs) -> Run {
    Box::pin(async move {
        let (task, items) = task_and_items(&raw)?;
        call_each(task, items, |item| {
            item.to_items().unwrap_or_else(|| vec![item])
        })
        .await
    })
}

/// `celery.chunks(task, it, n)`: `it` cut into parts of `n`, each sent as a `celery.starmap`
/// task, all in one group; returns the group's result tuple.
fn run_chunks(raw: RawArgs) -> Run {
    Box::pin(async move {
        let (task, items) = task_and_items(&raw)?;
        let size: usize = named(&raw, 2, "n")?
            .parse()
            .map_err(|e| TaskFailure::bad_arguments(format!("n is not a count: {e}")))?;
        let parts: Vec<Signature> = items
            .chunks(size.max(1))
            .map(|part| starmap_of(&task, part))
            .collect();
        let mut kwargs = RawObject::new();
        kwargs.insert("tasks", to_json(&parts)?);
        let group = Signature::composite(SignatureKind::Group, kwargs);
        let client = crate::Client::current().map_err(|e| TaskFailure::from_error(&e))?;
        let request = crate::request::current();
        let origin = Origin {
            parent_id: request.as_ref().map(|r| r.id.clone()),
            root_id: request.map(|r| r.id),
        };
        let sent = apply(&client, group, None, &origin)
            .await
            .map_err(|e| TaskFailure::from_error(&e))?;
        Ok(sent.as_tuple())
    })
}

/// `celery.accumulate(*args, index=None)`: the arguments as a list, or the one at `index`.
fn run_accumulate((args, kwargs): RawArgs) -> Run {
    Box::pin(async move {
        let index = kwargs.get("index").filter(|i| !i.is_null());
        match index {
            None => to_json(&args),
            Some(index) => {
                let at: usize = index
                    .parse()
                    .map_err(|e| TaskFailure::bad_arguments(format!("index: {e}")))?;
                args.get(at).cloned().ok_or_else(|| {
                    TaskFailure::new("IndexError", "builtins", "tuple index out of range")
                })
            }
        }
    })
}

/// A `celery.starmap` signature over `items`, as Celery's `chunks` writes each part.
fn starmap_of(task: &Signature, items: &[RawJson]) -> Signature {
    let mut part = Signature::new("celery.starmap");
    part.kwargs.insert("task", task.to_raw());
    part.kwargs.insert(
        "it",
        RawJson::from_serialize(items).expect("JSON values serialize"),
    );
    part.immutable = true;
    part
}

/// Calls the registered task of `task` once per item, in order, with the arguments `args_of`
/// makes from the item before the signature's own.
async fn call_each(
    task: Signature,
    items: Vec<RawJson>,
    args_of: impl Fn(RawJson) -> Vec<RawJson>,
) -> Result<RawJson, TaskFailure> {
    let entry = crate::registry::lookup(&task.task)
        .ok_or_else(|| TaskFailure::not_registered(&task.task))?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let mut args = args_of(item);
        args.extend(task.args.iter().cloned());
        results.push((entry.run)((args, task.kwargs.clone())).await?);
    }
    to_json(&results)
}

/// The `task` signature and the `it` list of a map, starmap or chunks call.
fn task_and_items(raw: &RawArgs) -> Result<(Signature, Vec<RawJson>), TaskFailure> {
    let task: Signature = named(raw, 0, "task")?
        .parse()
        .map_err(|e| TaskFailure::bad_arguments(format!("task is not a signature: {e}")))?;
    let items = named(raw, 1, "it")?
        .to_items()
        .ok_or_else(|| TaskFailure::bad_arguments("it is not a list"))?;
    Ok((task, items))
}

/// Argument `name`, given at `position` or by keyword.
fn named(raw: &RawArgs, position: usize, name: &str) -> Result<RawJson, TaskFailure> {
    raw.0
        .get(position)
        .or_else(|| raw.1.get(name))
        .cloned()
        .ok_or_else(|| TaskFailure::bad_arguments(format!("missing required argument: '{name}'")))
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<RawJson, TaskFailure> {
    RawJson::from_serialize(value).map_err(|e| TaskFailure::result_not_serializable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accumulate_returns_its_arguments_or_one_of_them() {
        let args = vec![RawJson::from(1), RawJson::from(2)];
        let all = run_accumulate((args.clone(), RawObject::new()))
            .await
            .unwrap();
        assert_eq!(all.to_value().unwrap(), serde_json::json!([1, 2]));
        let mut kwargs = RawObject::new();
        kwargs.insert("index", RawJson::from(1));
        assert_eq!(
            run_accumulate((args, kwargs)).await.unwrap(),
            RawJson::from(2)
        );
    }

    #[tokio::test]
    async fn map_refuses_a_task_this_worker_does_not_know() {
        let task = Signature::new("tasks.nowhere").to_raw();
        let raw = (
            vec![task, RawJson::from_text("[1]").unwrap()],
            RawObject::new(),
        );
        let failure = run_map(raw).await.unwrap_err();
        assert!(failure.is_not_registered(), "{failure}");
    }

    #[test]
    fn chunks_cut_the_list_into_starmap_parts() {
        let items: Vec<RawJson> = (0..5).map(RawJson::from).collect();
        let part = starmap_of(&Signature::new("tasks.add"), &items[..2]);
        assert_eq!(part.task, "celery.starmap");
        assert!(part.immutable);
        assert_eq!(
            part.kwargs["it"].to_value().unwrap(),
            serde_json::json!([0, 1])
        );
    }
}
