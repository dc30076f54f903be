//! Every name in kombu's envelope and Celery's protocol 2 headers that taskq reads or writes,
//! spelled once. Rust code names a field through these constants; the serde structs of the
//! encoder ([`NewMessage`](super::NewMessage)) and of the fast decoder (`decode/fast.rs`) spell them as field
//! identifiers, and a test checks each struct against this list. The Lua scripts in
//! `scripts.rs` cannot import them; each names the rule of `protocol/edit.rs` it mirrors.

/// Fields of protocol 2's embed (the body's third item) that continue a workflow.
pub mod embed {
    /// Signatures to call with the result on success (`link=`).
    pub const CALLBACKS: &str = "callbacks";
    /// Signatures to call on failure (`link_error=`).
    pub const ERRBACKS: &str = "errbacks";
    /// The rest of a chain, last step first.
    pub const CHAIN: &str = "chain";
    /// The callback of the chord this task is a part of.
    pub const CHORD: &str = "chord";
}

/// Top-level fields of kombu's envelope.
pub mod field {
    /// The serialized call, base64 when `properties.body_encoding` says so.
    pub const BODY: &str = "body";
    /// `utf-8`.
    pub const CONTENT_ENCODING: &str = "content-encoding";
    /// The serializer's content type; taskq accepts [`CONTENT_TYPE_JSON`](super::CONTENT_TYPE_JSON) only.
    pub const CONTENT_TYPE: &str = "content-type";
    /// Celery's headers ([`header`](super::header)).
    pub const HEADERS: &str = "headers";
    /// kombu's properties ([`property`](super::property)).
    pub const PROPERTIES: &str = "properties";
}

/// Celery's protocol 2 headers, and taskq's own (which Python Celery ignores).
pub mod header {
    /// The task id.
    pub const ID: &str = "id";
    /// The task name; its presence marks a protocol 2 message.
    pub const TASK: &str = "task";
    /// Not before this time (ISO 8601).
    pub const ETA: &str = "eta";
    /// Discard if not started by this time (ISO 8601).
    pub const EXPIRES: &str = "expires";
    /// `[hard, soft]` time limits in seconds.
    pub const TIMELIMIT: &str = "timelimit";
    /// How many times the task was retried.
    pub const RETRIES: &str = "retries";
    /// kombu's compression of the body, by content type (see `compression.rs`).
    pub const COMPRESSION: &str = "compression";
    /// The producer asked for no result.
    pub const IGNORE_RESULT: &str = "ignore_result";
    /// The task that sent this one.
    pub const PARENT_ID: &str = "parent_id";
    /// The first task of the workflow.
    pub const ROOT_ID: &str = "root_id";
    /// The group the task belongs to.
    pub const GROUP: &str = "group";
    /// The task's position in its group.
    pub const GROUP_INDEX: &str = "group_index";
    /// Protocol 1's name for [`GROUP`].
    pub const TASKSET: &str = "taskset";
    /// The producer's trace context, W3C `traceparent`: written here, among the headers, by
    /// Python's opentelemetry-instrumentation-celery (into `before_task_publish`'s headers)
    /// and read back from the task's request, so taskq does the same.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C `tracestate`, beside [`TRACEPARENT`] when the context has one.
    pub const TRACESTATE: &str = "tracestate";
    /// How many workers put the message back because they did not know its task.
    pub const TASKQ_UNKNOWN_ATTEMPTS: &str = "taskq_unknown_attempts";
    /// How many times recovery took the message back from a worker that died or froze.
    pub const TASKQ_RECOVERIES: &str = "taskq_recoveries";
    /// How many of those recoveries happened while its task was running.
    pub const TASKQ_CRASHES: &str = "taskq_crashes";
    /// A unique call's key, whose lock the worker releases when the task is done.
    pub const TASKQ_UNIQUE: &str = "taskq_unique";
}

/// kombu's message properties.
pub mod property {
    /// The message's key in the broker's `unacked` hash while a worker holds it.
    pub const DELIVERY_TAG: &str = "delivery_tag";
    /// `{exchange, routing_key}`, and `redelivered` once recovered.
    pub const DELIVERY_INFO: &str = "delivery_info";
    /// In [`DELIVERY_INFO`]: the exchange (`""` for task queues).
    pub const EXCHANGE: &str = "exchange";
    /// In [`DELIVERY_INFO`]: the queue the message was routed to.
    pub const ROUTING_KEY: &str = "routing_key";
    /// In [`DELIVERY_INFO`]: set by recovery on a message that was delivered before.
    pub const REDELIVERED: &str = "redelivered";
    /// 0 (first) to 9 (last) on Redis.
    pub const PRIORITY: &str = "priority";
    /// `base64` when the body is base64-encoded.
    pub const BODY_ENCODING: &str = "body_encoding";
    /// 2 persistent, 1 transient.
    pub const DELIVERY_MODE: &str = "delivery_mode";
}

/// Content type of JSON-serialized messages and results.
///
/// ```
/// assert_eq!(taskq::protocol::CONTENT_TYPE_JSON, "application/json");
/// ```
pub const CONTENT_TYPE_JSON: &str = "application/json";
