//! Celery events (`celeryev`): what `celery events`, Flower and other monitors read.
//!
//! When enabled ([`WorkerBuilder::send_events`](super::WorkerBuilder::send_events), or the
//! `enable_events` remote-control command), the worker publishes `worker-online` at start,
//! `worker-heartbeat` every [`HEARTBEAT`], `worker-offline` at stop, and one event per task
//! step. Task events are queued by the job that makes them and published by this module's
//! loop, batched per turn as one list on routing key `task.multi`, as Celery's worker does.
//! Disabled, a task step costs one atomic load and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::part::{Loop, LoopPart};
use super::Shared;
use crate::protocol::kombu::encode_message;
use crate::protocol::{
    args_repr, format_datetime, kwargs_repr, py_repr, raw_object, RawJson, RawObject, TaskMessage,
};

/// Celery's event exchange.
pub(super) const EXCHANGE: &str = "celeryev";

/// How often `worker-heartbeat` is sent (Celery's default `freq`).
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);

/// Most task events published in one message.
const MAX_BATCH: usize = 100;

/// The on/off switch and the queue of task events waiting to be published.
#[derive(Debug)]
pub(super) struct Events {
    enabled: AtomicBool,
    queue: mpsc::UnboundedSender<RawObject>,
}

impl Events {
    /// Events switched `enabled`, and the receiving end of their queue for [`run`].
    pub(super) fn new(enabled: bool) -> (Self, mpsc::UnboundedReceiver<RawObject>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let enabled = AtomicBool::new(enabled);
        (Self { enabled, queue }, rx)
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Switches events on or off; whether they were on before.
    pub(super) fn set_enabled(&self, on: bool) -> bool {
        self.enabled.swap(on, Ordering::Relaxed)
    }
}

/// Queues a task event of `kind` for task `id` with `fields`, in their order; nothing when
/// events are off (and `fields` is then never called).
pub(super) fn task(shared: &Shared, kind: &str, id: &str, fields: impl FnOnce() -> RawObject) {
    if !shared.events.enabled() {
        return;
    }
    let mut event = common(shared, kind);
    event.set("uuid", id);
    for (name, value) in fields() {
        event.insert(name, value);
    }
    let _ = shared.events.queue.send(event);
}

/// The fields of `task-received`: the arguments as Python's `repr`, keyword arguments in the
/// order they were sent.
pub(super) fn received_fields(message: &TaskMessage) -> RawObject {
    raw_object! {
        "name" => message.task,
        "args" => args_repr(&message.args),
        "kwargs" => kwargs_repr(&message.kwargs),
        "root_id" => message.root_id.as_deref().unwrap_or(&message.id),
        "parent_id" => message.parent_id,
        "retries" => message.retries,
        "eta" => message.eta.map(format_datetime),
        "expires" => message.expires.map(format_datetime),
    }
}

/// Python's `repr()` of a result, as `task-succeeded` carries it.
pub(super) fn result_repr(value: &RawJson) -> String {
    py_repr(value)
}

/// The part that publishes Celery events.
#[derive(Debug)]
pub(super) struct EventPublisher(Loop);

impl EventPublisher {
    /// Starts publishing what `queue` receives, and heartbeats, while events are enabled.
    /// Shut down last of all, so the events of tasks that finished during the drain go out
    /// before `worker-offline`.
    pub(super) fn start(shared: Arc<Shared>, queue: mpsc::UnboundedReceiver<RawObject>) -> Self {
        Self(Loop::spawn(|stop| run(shared, queue, stop)))
    }
}

impl LoopPart for EventPublisher {
    const NAME: &'static str = "event publisher";

    fn into_loop(self) -> Loop {
        self.0
    }
}

/// Publishes queued task events and heartbeats until `stop`, then the rest and
/// `worker-offline`.
async fn run(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<RawObject>,
    stop: CancellationToken,
) {
    if shared.events.enabled() {
        publish_worker(&shared, "worker-online").await;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = queue.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 { break; }
                publish_tasks(&shared, &mut batch).await;
            }
            _ = heartbeat.tick() => {
                if shared.events.enabled() {
                    publish_worker(&shared, "worker-heartbeat").await;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    while let Ok(event) = queue.try_recv() {
        batch.push(event);
    }
    publish_tasks(&shared, &mut batch).await;
    if shared.events.enabled() {
        publish_worker(&shared, "worker-offline").await;
    }
}

/// The fields every event has.
fn common(shared: &Shared, kind: &str) -> RawObject {
    raw_object! {
        "type" => kind,
        "hostname" => shared.settings.hostname,
        "timestamp" => crate::unix_now(),
        "utcoffset" => utcoffset_hours(),
        "pid" => std::process::id(),
        "clock" => shared.tick(),
    }
}

/// Python's `celery.utils.time.utcoffset()`: hours *west* of UTC.
fn utcoffset_hours() -> i64 {
    let east = chrono::Local::now().offset().local_minus_utc();
    -i64::from(east) / 3600
}

async fn publish_tasks(shared: &Shared, batch: &mut Vec<RawObject>) {
    if batch.is_empty() {
        return;
    }
    let (routing_key, body) = if batch.len() == 1 {
        let event = batch.pop().expect("one event");
        (routing_key(&event), event.to_raw())
    } else {
        let events = RawJson::from_serialize(&batch).expect("events serialize");
        batch.clear();
        ("task.multi".to_owned(), events)
    };
    publish(shared, &routing_key, body).await;
}

/// The routing key of an event: its type with `-` → `.` (`task.succeeded`).
fn routing_key(event: &RawObject) -> String {
    event
        .get("type")
        .and_then(|t| t.parse::<String>().ok())
        .unwrap_or_default()
        .replace('-', ".")
}

async fn publish_worker(shared: &Shared, kind: &str) {
    let mut event = common(shared, kind);
    event.set("freq", &HEARTBEAT.as_secs_f64());
    event.set("active", &shared.running_tasks.active_count());
    event.set("processed", &shared.running_tasks.processed());
    event.set("loadavg", &loadavg());
    event.set("sw_ident", "taskq");
    event.set("sw_ver", env!("CARGO_PKG_VERSION"));
    event.set("sw_sys", std::env::consts::OS);
    publish(shared, &kind.replace('-', "."), event.to_raw()).await;
}

async fn publish(shared: &Shared, routing_key: &str, body: RawJson) {
    let headers = raw_object! {"hostname" => shared.settings.hostname};
    let envelope = encode_message(EXCHANGE, routing_key, &body, &headers, 1);
    let broker = shared.client.broker();
    if let Err(e) = broker.broadcast(EXCHANGE, routing_key, &envelope).await {
        tracing::warn!(error = %e, "cannot publish an event; it is dropped");
    }
}

/// The 1, 5 and 15 minute load averages, or zeros where the system does not say.
fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [(); 3].map(|()| values.next().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_replace_dashes() {
        let event = raw_object! {"type" => "task-succeeded"};
        assert_eq!(routing_key(&event), "task.succeeded");
    }

    #[test]
    fn received_events_show_arguments_exactly_and_keyword_arguments_in_order() {
        let raw = r#"{"body": "[[100000000000000000000000000001], {\"zeta\": 1, \"alpha\": -12345678901234567890}, null]", "content-type": "application/json", "headers": {"task": "t", "id": "i"}, "properties": {}}"#;
        let message = TaskMessage::decode(raw).unwrap();
        let fields = received_fields(&message);
        assert_eq!(
            fields["args"].parse::<String>().unwrap(),
            "(100000000000000000000000000001,)"
        );
        assert_eq!(
            fields["kwargs"].as_str(),
            r#""{'zeta': 1, 'alpha': -12345678901234567890}""#
        );
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            [
                "name",
                "args",
                "kwargs",
                "root_id",
                "parent_id",
                "retries",
                "eta",
                "expires"
            ]
        );
    }

    #[test]
    fn loadavg_has_three_values() {
        assert!(loadavg().iter().all(|v| *v >= 0.0));
    }
}
