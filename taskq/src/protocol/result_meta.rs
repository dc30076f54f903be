//! The result record under `celery-task-meta-<id>`, as Celery's Redis backend writes it.

use chrono::Utc;
use serde::Serialize;

use super::{format_datetime, pyjson, raw_object, RawJson, RawObject};
use crate::failure::TaskFailure;
use crate::state::TaskState;

/// One result record, in the layout Celery's Redis backend writes:
/// `{"status", "result", "traceback", "children", "date_done", ["group_id",] ["parent_id",]
/// [the six fields of `result_extended`,] "task_id"}`.
///
/// The result and `children` are kept as the exact JSON text ([`RawJson`]): a Python big
/// integer reads back exactly (as a `u128`, say), and objects keep their order.
///
/// ```
/// use taskq::state::ResultMeta;
///
/// let meta = ResultMeta::success("id-1", serde_json::json!(5));
/// let text = meta.to_json();
/// assert!(text.starts_with(r#"{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "#));
/// assert!(text.ends_with(r#", "task_id": "id-1"}"#));
/// assert_eq!(ResultMeta::from_json(&text).unwrap(), meta);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMeta {
    /// The task's state.
    pub status: TaskState,
    /// The return value (SUCCESS), an exception object (FAILURE, RETRY, REVOKED), or the
    /// meta of other states.
    pub result: RawJson,
    /// Traceback text of a failure.
    pub traceback: Option<String>,
    /// Results of tasks this task sent (kept as stored).
    pub children: RawJson,
    /// When the task finished (ISO-8601), for ready states.
    pub date_done: Option<String>,
    /// Parent task id, if the task was sent by another task.
    pub parent_id: Option<String>,
    /// Group id, if the task belongs to a group.
    pub group_id: Option<String>,
    /// What Celery's `result_extended` adds (the call and who ran it); `None` when the
    /// record was written without it.
    pub extended: Option<ExtendedFields>,
    /// The task id.
    pub task_id: String,
}

/// The fields Celery's `result_extended` setting adds to a record, between `parent_id` and
/// `task_id`, in this order: the task's name, its arguments, the node name of the worker that
/// wrote the record, its retry count and the queue (routing key) it came from. Python's
/// `AsyncResult.name`, `.args`, `.kwargs`, `.worker`, `.retries` and `.queue` read them.
///
/// Celery writes all six together, `null` where its request lacks one; a stamped task's
/// stamps, which Celery also adds, are not kept.
///
/// ```
/// use taskq::state::{ExtendedFields, ResultMeta};
///
/// let meta = ResultMeta::from_json(
///     r#"{"status": "SUCCESS", "result": 11, "name": "tasks.add", "args": [5, 6], "kwargs": {},
///         "worker": "w1@host", "retries": 0, "queue": "celery", "task_id": "id-1"}"#,
/// )?;
/// let extended: ExtendedFields = meta.extended.unwrap();
/// assert_eq!(extended.name.as_deref(), Some("tasks.add"));
/// assert_eq!(extended.args.parse::<(i64, i64)>()?, (5, 6));
/// assert_eq!((extended.retries, extended.queue.as_deref()), (Some(0), Some("celery")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedFields {
    /// The registered task name (`name`).
    pub name: Option<String>,
    /// The positional arguments, a JSON array (`args`).
    pub args: RawJson,
    /// The keyword arguments, a JSON object (`kwargs`).
    pub kwargs: RawJson,
    /// The node name of the worker that ran the task (`worker`), e.g. `taskq-42@host`.
    pub worker: Option<String>,
    /// How many times the call had been retried (`retries`).
    pub retries: Option<u32>,
    /// The queue the message was taken from: its routing key (`queue`).
    pub queue: Option<String>,
}

impl ExtendedFields {
    /// The names Celery writes, in its order.
    const KEYS: [&'static str; 6] = ["name", "args", "kwargs", "worker", "retries", "queue"];

    /// Takes the extended fields out of a record read from Redis, if it has any of them.
    fn take_from(map: &mut RawObject) -> Option<Self> {
        if !Self::KEYS.iter().any(|key| map.contains_key(key)) {
            return None;
        }
        let mut take_text = |name: &str| map.remove(name).and_then(|v| v.parse::<String>().ok());
        let (name, worker, queue) = (take_text("name"), take_text("worker"), take_text("queue"));
        // Arguments may hold kombu's tagged values (a Python datetime): read them plain.
        let mut take_json = |name: &str| {
            map.remove(name)
                .map_or_else(RawJson::null, RawJson::untagged)
        };
        let (args, kwargs) = (take_json("args"), take_json("kwargs"));
        Some(Self {
            name,
            args,
            kwargs,
            worker,
            retries: map.remove("retries").and_then(|v| v.parse().ok()),
            queue,
        })
    }
}

#[derive(Serialize)]
struct MetaOut<'a> {
    status: &'a str,
    result: &'a RawJson,
    traceback: Option<&'a str>,
    children: &'a RawJson,
    date_done: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<&'a str>,
    #[serde(flatten)]
    extended: Option<&'a ExtendedFields>,
    task_id: &'a str,
}

impl Serialize for ExtendedFields {
    /// Celery's order, `null` for what is unknown.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Self::KEYS.len()))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("args", &self.args)?;
        map.serialize_entry("kwargs", &self.kwargs)?;
        map.serialize_entry("worker", &self.worker)?;
        map.serialize_entry("retries", &self.retries)?;
        map.serialize_entry("queue", &self.queue)?;
        map.end()
    }
}

impl ResultMeta {
    fn new(task_id: &str, status: TaskState, result: RawJson) -> Self {
        let date_done = status.is_ready().then(|| format_datetime(Utc::now()));
        Self {
            status,
            result,
            traceback: None,
            children: RawJson::from_serialize(&[(); 0]).expect("[] serializes"),
            date_done,
            parent_id: None,
            group_id: None,
            extended: None,
            task_id: task_id.to_owned(),
        }
    }

    /// A SUCCESS record with the return value: a [`RawJson`] (exact), or anything that
    /// converts into one, such as a `serde_json::Value` (whose integers beyond 64 bits are
    /// exact only with serde_json's `arbitrary_precision` in the application).
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// assert_eq!(ResultMeta::success("id", 5).status, taskq::TaskState::Success);
    /// let big = ResultMeta::success("id", u128::MAX);
    /// assert_eq!(big.result.parse::<u128>().unwrap(), u128::MAX);
    /// ```
    pub fn success(task_id: &str, result: impl Into<RawJson>) -> Self {
        Self::new(task_id, TaskState::Success, result.into())
    }

    /// A FAILURE record (or REVOKED, for revoke failures) with the exception and traceback.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::failure("id", &taskq::TaskFailure::panic("boom"));
    /// assert_eq!(meta.status, taskq::TaskState::Failure);
    /// ```
    pub fn failure(task_id: &str, failure: &TaskFailure) -> Self {
        let status = if failure.is_revoked() {
            TaskState::Revoked
        } else {
            TaskState::Failure
        };
        let mut meta = Self::new(task_id, status, failure.to_exception_json());
        meta.traceback = failure.traceback().map(str::to_owned);
        meta
    }

    /// A RETRY record: the failure that will be retried, not ready yet.
    ///
    /// ```
    /// let meta = taskq::state::ResultMeta::retry("id", &taskq::TaskFailure::panic("flaky"));
    /// assert_eq!(meta.status, taskq::TaskState::Retry);
    /// assert!(meta.date_done.is_none());
    /// ```
    pub fn retry(task_id: &str, failure: &TaskFailure) -> Self {
        let mut meta = Self::new(task_id, TaskState::Retry, failure.to_exception_json());
        meta.traceback = failure.traceback().map(str::to_owned);
        meta
    }

    /// A STARTED record with the worker's pid and host name, as Celery writes.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// assert!(ResultMeta::started("id", "taskq@host").date_done.is_none());
    /// ```
    pub fn started(task_id: &str, hostname: &str) -> Self {
        let result = raw_object! {"pid" => std::process::id(), "hostname" => hostname};
        Self::new(task_id, TaskState::Started, result.to_raw())
    }

    /// A record of any state, with `meta` as its result (Celery's `update_state`).
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::custom("id", "PROGRESS".into(), serde_json::json!({"done": 3}));
    /// assert_eq!(meta.status.as_str(), "PROGRESS");
    /// ```
    pub fn custom(task_id: &str, state: TaskState, meta: impl Into<RawJson>) -> Self {
        Self::new(task_id, state, meta.into())
    }

    /// Sets the parent task id.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::success("id", 1).with_parent(Some("parent-id".into()));
    /// assert!(meta.to_json().contains(r#""parent_id": "parent-id""#));
    /// ```
    pub fn with_parent(mut self, parent_id: Option<String>) -> Self {
        self.parent_id = parent_id;
        self
    }

    /// Sets the group id.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::success("id", 1).with_group(Some("g1".into()));
    /// assert!(meta.to_json().contains(r#""group_id": "g1""#));
    /// ```
    pub fn with_group(mut self, group_id: Option<String>) -> Self {
        self.group_id = group_id;
        self
    }

    /// Sets the fields of Celery's `result_extended` (`None`: a record without them).
    ///
    /// ```
    /// use taskq::state::{ExtendedFields, ResultMeta};
    /// use taskq::protocol::RawJson;
    ///
    /// let extended = ExtendedFields {
    ///     name: Some("tasks.add".into()),
    ///     args: RawJson::from_text("[5, 6]")?,
    ///     kwargs: RawJson::from_text("{}")?,
    ///     worker: Some("w1@host".into()),
    ///     retries: Some(0),
    ///     queue: Some("celery".into()),
    /// };
    /// let text = ResultMeta::success("id-1", 11).with_extended(Some(extended)).to_json();
    /// assert!(text.ends_with(
    ///     r#", "name": "tasks.add", "args": [5, 6], "kwargs": {}, "worker": "w1@host", "retries": 0, "queue": "celery", "task_id": "id-1"}"#
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_extended(mut self, extended: Option<ExtendedFields>) -> Self {
        self.extended = extended;
        self
    }

    /// The failure in this record, for exception states.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::failure("id", &taskq::TaskFailure::revoked("expired"));
    /// assert!(meta.failure_info().unwrap().is_revoked());
    /// ```
    pub fn failure_info(&self) -> Option<TaskFailure> {
        self.status
            .is_exception()
            .then(|| TaskFailure::from_exception_json(&self.result, self.traceback.clone()))
    }

    /// The JSON text stored in Redis and published to waiters.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// assert!(ResultMeta::success("id", 5).to_json().starts_with(r#"{"status": "SUCCESS", "result": 5"#));
    /// ```
    pub fn to_json(&self) -> String {
        let out = MetaOut {
            status: self.status.as_str(),
            result: &self.result,
            traceback: self.traceback.as_deref(),
            children: &self.children,
            date_done: self.date_done.as_deref(),
            group_id: self.group_id.as_deref(),
            parent_id: self.parent_id.as_deref(),
            extended: self.extended.as_ref(),
            task_id: &self.task_id,
        };
        pyjson::to_string(&out).expect("result meta is plain JSON")
    }

    /// Reads a stored record, written by taskq or by Python Celery.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`](crate::Error::Malformed) when the text is not a JSON object with a
    /// string `status`.
    ///
    /// ```
    /// use taskq::state::ResultMeta;
    ///
    /// let meta = ResultMeta::from_json(r#"{"status": "SUCCESS", "result": 42, "task_id": "x"}"#)?;
    /// assert_eq!(meta.result, serde_json::json!(42));
    /// let big = ResultMeta::from_json(r#"{"status": "SUCCESS", "result": 100000000000000000000000000001}"#)?;
    /// assert_eq!(big.result.parse::<u128>()?, 100000000000000000000000000001);
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let value = pyjson::raw_from_str(text)
            .map_err(|e| crate::Error::malformed("result", e.to_string()))?;
        let Some(mut map) = value.to_object() else {
            return Err(crate::Error::malformed("result", "not a JSON object"));
        };
        let status = match map.get("status").map(RawJson::parse::<String>) {
            Some(Ok(s)) => TaskState::from(s.as_str()),
            _ => return Err(crate::Error::malformed("result", "no string `status`")),
        };
        let extended = ExtendedFields::take_from(&mut map);
        let mut take_text = |name: &str| map.remove(name).and_then(|v| v.parse::<String>().ok());
        Ok(Self {
            extended,
            traceback: take_text("traceback"),
            date_done: take_text("date_done"),
            parent_id: take_text("parent_id"),
            group_id: take_text("group_id"),
            task_id: take_text("task_id").unwrap_or_default(),
            result: map
                .remove("result")
                .map_or_else(RawJson::null, RawJson::untagged),
            children: map
                .remove("children")
                .unwrap_or_else(|| RawJson::from_serialize(&[(); 0]).expect("[] serializes")),
            status,
        })
    }

    /// The state of a task whose record is absent.
    pub(crate) fn pending(task_id: &str) -> Self {
        let mut meta = Self::new(task_id, TaskState::Pending, RawJson::null());
        meta.children = RawJson::null();
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn records_keep_big_integers_and_the_order_written() {
        let python = r#"{"status": "SUCCESS", "result": {"z": 340282366920938463463374607431768211455, "a": [-12345678901234567890, Infinity]}, "traceback": null, "children": [], "date_done": "2026-11-21T04:47:50.848476+00:00", "task_id": "b5"}"#;
        let meta = ResultMeta::from_json(python).unwrap();
        assert_eq!(meta.to_json(), python.replace("Infinity", "1e999"));
        #[derive(serde::Deserialize)]
        struct Out {
            z: u128,
            a: (i128, f64),
        }
        let out: Out = meta.result.parse().unwrap();
        assert_eq!(
            (out.z, out.a),
            (u128::MAX, (-12_345_678_901_234_567_890, f64::INFINITY))
        );
        let started = ResultMeta::started("x", "host").to_json();
        assert!(started.contains(&format!(
            r#""result": {{"pid": {}, "hostname": "host"}}"#,
            std::process::id()
        )));
    }

    #[test]
    fn failure_records_have_celery_shape() {
        let meta = ResultMeta::failure("x", &TaskFailure::new("ValueError", "builtins", "bad"));
        let v: Value = serde_json::from_str(&meta.to_json()).unwrap();
        assert_eq!(v["status"], "FAILURE");
        assert_eq!(
            v["result"],
            json!({"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"})
        );
        assert!(v["date_done"].is_string());
    }

    #[test]
    fn python_records_read_back() {
        let text = r#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad thing", 42], "exc_module": "builtins"}, "traceback": "Traceback ...", "children": [], "date_done": "2026-11-21T04:47:50.848476+00:00", "task_id": "b5"}"#;
        let meta = ResultMeta::from_json(text).unwrap();
        assert_eq!(meta.status, TaskState::Failure);
        let failure = meta.failure_info().unwrap();
        assert_eq!(
            (failure.exc_type(), failure.message()),
            ("ValueError", "bad thing, 42".to_owned())
        );
        assert_eq!(failure.traceback(), Some("Traceback ..."));
    }

    fn extended(args: &str) -> ExtendedFields {
        ExtendedFields {
            name: Some("tasks_ext.add".into()),
            args: RawJson::from_text(args).unwrap(),
            kwargs: RawJson::from_text("{}").unwrap(),
            worker: Some("w6@testhost".into()),
            retries: Some(0),
            queue: Some("celery".into()),
        }
    }

    #[test]
    fn extended_records_have_celerys_layout() {
        // As Celery 5.x's Redis backend wrote it with result_extended=True (reference §5.3).
        let celery = r#"{"status": "SUCCESS", "result": 11, "traceback": null, "children": [], "date_done": "2026-11-21T04:51:09.385228+00:00", "name": "tasks_ext.add", "args": [5, 6], "kwargs": {}, "worker": "w6@testhost", "retries": 0, "queue": "celery", "task_id": "1e4a"}"#;
        let mut meta = ResultMeta::success("1e4a", 11).with_extended(Some(extended("[5, 6]")));
        meta.date_done = Some("2026-11-21T04:51:09.385228+00:00".into());
        assert_eq!(meta.to_json(), celery);
        assert_eq!(ResultMeta::from_json(celery).unwrap(), meta);
    }

    #[test]
    fn extended_fields_follow_group_and_parent() {
        let meta = ResultMeta::custom("c", "PROGRESS".into(), json!({"current": 1}))
            .with_group(Some("g".into()))
            .with_parent(Some("p".into()))
            .with_extended(Some(extended("[]")));
        assert_eq!(
            meta.to_json(),
            r#"{"status": "PROGRESS", "result": {"current": 1}, "traceback": null, "children": [], "date_done": null, "group_id": "g", "parent_id": "p", "name": "tasks_ext.add", "args": [], "kwargs": {}, "worker": "w6@testhost", "retries": 0, "queue": "celery", "task_id": "c"}"#
        );
    }

    #[test]
    fn python_extended_records_read_back_with_unknowns_as_null() {
        let text = r#"{"status": "STARTED", "result": {"pid": 7, "hostname": "py@h"}, "traceback": null, "children": [], "date_done": null, "name": "py.add", "args": [{"__type__": "date", "__value__": "2024-01-02"}], "kwargs": {"x": 1}, "worker": "py@h", "retries": 2, "queue": null, "task_id": "s"}"#;
        let meta = ResultMeta::from_json(text).unwrap();
        let extended = meta.extended.clone().unwrap();
        assert_eq!(
            extended.args,
            json!(["2024-01-02"]),
            "kombu's tags are read plain"
        );
        assert_eq!(extended.kwargs, json!({"x": 1}));
        assert_eq!((extended.retries, extended.queue), (Some(2), None));
        assert!(meta
            .to_json()
            .contains(r#""retries": 2, "queue": null, "task_id": "s"}"#));
        let plain = ResultMeta::from_json(r#"{"status": "SUCCESS", "result": 1}"#).unwrap();
        assert_eq!(plain.extended, None);
    }

    #[test]
    fn custom_states_are_stored_as_celerys_update_state_writes_them() {
        let meta = ResultMeta::custom("be1e", "PROGRESS".into(), json!({"current": 0, "total": 3}));
        assert_eq!(
            meta.to_json(),
            r#"{"status": "PROGRESS", "result": {"current": 0, "total": 3}, "traceback": null, "children": [], "date_done": null, "task_id": "be1e"}"#
        );
    }

    #[test]
    fn started_records_are_not_ready_and_have_no_date() {
        let meta = ResultMeta::started("x", "host");
        assert!(meta.date_done.is_none());
        assert!(meta.to_json().contains(r#""hostname": "host""#));
    }
}
