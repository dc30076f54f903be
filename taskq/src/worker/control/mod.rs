//! Remote control: answers Celery's `celery inspect …` / `celery control …` and
//! `app.control.*` calls, sent on the `celery.pidbox` fanout exchange.
//!
//! A command is `{"method", "arguments", "destination", "reply_to", "ticket"}`; when it asks
//! for a reply, the answer `{<node name>: <reply>}` goes through the direct exchange
//! `reply.celery.pidbox` to the caller's reply queue, with the `ticket` header the caller
//! matches replies by.
//!
//! Each reply is what Celery 5.6's worker answers (`celery/worker/control.py`), in shape and
//! text:
//!
//! | command | answer |
//! |---|---|
//! | `ping`, `clock`, `hello` (Celery's mingle: a Python worker starting up learns the revoked ids from a taskq node) | as Celery |
//! | `registered`, `stats` (the pool's size now; `autoscaler` when autoscaling), `active_queues` (the queues consumed now) | as Celery |
//! | `active`, `reserved` (fetched, waiting for a slot), `query_task` | Celery's request info (`Request.info()`) |
//! | `scheduled` | the ETA tasks this worker parked, not yet due (see below) |
//! | `rate_limit` | fleet-wide, unlike Celery's per-worker limit (see [`crate::rate_limit`]); Celery's replies |
//! | `revoke`, `revoked` | the ids this worker honours: its copy of the broker's revoked set (see [`crate::revoke`]) |
//! | `conf` | the worker's settings under Celery's names, secrets masked ([`inspect`]) |
//! | `time_limit`, `pool_grow`, `pool_shrink`, `autoscale`, `add_consumer`, `cancel_consumer`, `shutdown` (no reply, as in Celery) | [`commands`] |
//! | `enable_events`, `disable_events` | as Celery |
//! | `pause_queue`, `resume_queue` | taskq's own: follow the fleet-wide pause ([`crate::control::Control::pause_queue`]) |
//!
//! Anything else gets Celery's `{"error": "No such command: …"}`.
//!
//! One difference is by design: Celery holds an ETA message in the worker until it is due;
//! taskq parks it in the broker's ETA schedule, from where any worker's scheduler returns it
//! to its queue when due and any worker may run it. `scheduled` lists the ones this worker
//! parked, until their ETA (a restarted worker forgets them, though they stay parked), and
//! `query_task` calls them `scheduled`, as Celery 5.7 does (5.6 does not report ETA tasks).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

mod commands;
mod inspect;

use super::part::{Loop, LoopPart};
use super::{rate_limits, revoked, Shared};
use crate::backoff::Backoff;
use crate::broker::Subscription;
use crate::protocol::kombu::encode_message;
use crate::protocol::{raw_object, KombuMessage, RawJson, RawObject};
use crate::registry;

/// The mailbox exchange (Celery's `control_exchange` `celery` + `.pidbox`).
pub(super) const EXCHANGE: &str = crate::revoke::CONTROL_EXCHANGE;

/// Where replies go (direct exchange, bound per caller).
pub(super) const REPLY_EXCHANGE: &str = crate::control::REPLY_EXCHANGE;

/// The part that answers remote control.
#[derive(Debug)]
pub(super) struct Control(Loop);

impl Control {
    /// Starts answering the commands sent to this worker's mailbox; it answers until it is
    /// shut down, after the tasks have stopped, so `celery inspect` sees a draining worker.
    /// `subscribed` fires once the mailbox subscription is in place, from when on a `ping`
    /// gets an answer.
    pub(super) fn start(shared: Arc<Shared>, subscribed: oneshot::Sender<()>) -> Self {
        Self(Loop::spawn(|stop| run(shared, stop, subscribed)))
    }
}

impl LoopPart for Control {
    const NAME: &'static str = "remote control";

    fn into_loop(self) -> Loop {
        self.0
    }
}

async fn run(shared: Arc<Shared>, stop: CancellationToken, subscribed: oneshot::Sender<()>) {
    let mut subscribed = Some(subscribed);
    while let Some(mut subscription) = subscribe(&shared, &stop).await {
        if let Some(subscribed) = subscribed.take() {
            let _ = subscribed.send(());
        }
        loop {
            let raw = tokio::select! {
                raw = subscription.recv() => raw,
                () = stop.cancelled() => return,
            };
            match raw {
                Some(raw) => handle(&shared, &raw).await,
                None => break,
            }
        }
    }
}

/// Subscribes to the mailbox, retrying while Redis is away; `None` on shutdown.
async fn subscribe(shared: &Shared, stop: &CancellationToken) -> Option<Subscription> {
    let mut backoff = Backoff::starting_at(Duration::from_millis(100));
    loop {
        let attempt = tokio::select! {
            s = shared.client.broker().subscribe_broadcast(EXCHANGE) => s,
            () = stop.cancelled() => return None,
        };
        let wait = backoff.next_delay();
        match attempt {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to remote control; retrying in {wait:?}")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return None,
        }
    }
}

async fn handle(shared: &Shared, raw: &str) {
    let message = match KombuMessage::decode(raw) {
        Ok(m) => m,
        Err(reason) => return tracing::warn!(%reason, "ignoring an undecodable control message"),
    };
    if let Some(clock) = message.headers.get("clock").and_then(Value::as_u64) {
        shared.adjust_clock(clock);
    }
    // `expires: 0` (a cast without timeout, e.g. `AsyncResult.revoke`) means "never".
    let expired = message
        .headers
        .get("expires")
        .and_then(Value::as_f64)
        .is_some_and(|t| t > 0.0 && t < shared.broker_now());
    let body = &message.body;
    if expired || !addressed_to(body, &shared.settings.hostname) {
        return;
    }
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let arguments = body.get("arguments").cloned().unwrap_or(Value::Null);
    tracing::debug!(%method, "remote control command");
    let Some(reply) = answer(shared, method, &arguments).await else {
        return;
    };
    if let (Some(reply_to), Some(ticket)) = (body.get("reply_to"), body.get("ticket")) {
        send_reply(shared, reply_to, ticket, reply).await;
    }
}

/// Whether the command is for this node: no destination means every node.
fn addressed_to(body: &Value, hostname: &str) -> bool {
    match body.get("destination") {
        Some(Value::Array(nodes)) => nodes.iter().any(|n| n.as_str() == Some(hostname)),
        _ => true,
    }
}

/// The reply of this worker to the remote-control command `method`, its objects in Celery's
/// order; `None` for a command Celery does not answer (`shutdown`).
async fn answer(shared: &Shared, method: &str, arguments: &Value) -> Option<RawJson> {
    let hostname = shared.settings.hostname.as_str();
    let reply = match method {
        "ping" => match shared.health.problem() {
            None => raw_object! {"ok" => "pong"}.to_raw(),
            Some(problem) => raw_object! {"error" => problem}.to_raw(),
        },
        "registered" => reply(&registry::all().iter().map(|e| e.name).collect::<Vec<_>>()),
        "active" => reply(&shared.running_tasks.active(hostname)),
        "reserved" => reply(&shared.requests.reserved(hostname)),
        "scheduled" => reply(&shared.requests.scheduled(hostname, shared.broker_now())),
        "query_task" => inspect::query_task(shared, arguments).to_raw(),
        "stats" => inspect::stats(shared).to_raw(),
        "revoke" => revoke(shared, arguments).await.to_raw(),
        "revoked" => reply(&shared.revoked.ids()),
        "rate_limit" => rate_limits::command(shared, arguments).to_raw(),
        "hello" => hello(shared, arguments).await,
        "active_queues" => reply(&inspect::active_queues(shared)),
        "conf" => inspect::conf(shared, arguments).to_raw(),
        "clock" => raw_object! {"clock" => shared.tick()}.to_raw(),
        "enable_events" => toggle_events(shared, true).to_raw(),
        "disable_events" => toggle_events(shared, false).to_raw(),
        other => return change(shared, other, arguments),
    };
    Some(reply)
}

/// The reply to a command that changes the worker; `shutdown`'s is never sent.
fn change(shared: &Shared, method: &str, arguments: &Value) -> Option<RawJson> {
    let reply = match method {
        "time_limit" => commands::time_limit(shared, arguments),
        "pool_grow" => commands::resize_pool(shared, arguments, true),
        "pool_shrink" => commands::resize_pool(shared, arguments, false),
        "autoscale" => commands::autoscale(shared, arguments),
        "add_consumer" => commands::add_consumer(shared, arguments),
        "cancel_consumer" => commands::cancel_consumer(shared, arguments),
        "pause_queue" => commands::pause_queue(shared, arguments, true),
        "resume_queue" => commands::pause_queue(shared, arguments, false),
        "shutdown" => {
            commands::shutdown(shared);
            return None;
        }
        other => raw_object! {"error" => format!("No such command: {other}")},
    };
    Some(reply.to_raw())
}

/// A reply of any serializable type, as JSON text.
fn reply<T: serde::Serialize + ?Sized>(value: &T) -> RawJson {
    RawJson::from_serialize(value).expect("a reply serializes")
}
/// Remembers the ids as revoked (they are discarded when fetched) and, with `terminate`,
/// aborts those running now; they end REVOKED "terminated". The ids are recorded in the
/// broker too, so that workers not listening now honour them as well (see [`crate::revoke`]).
async fn revoke(shared: &Shared, arguments: &Value) -> RawObject {
    let ids = task_ids(arguments.get("task_id"));
    if ids.is_empty() {
        return raw_object! {"error" => "revoke needs task_id"};
    }
    let terminate = arguments.get("terminate").and_then(Value::as_bool) == Some(true);
    for id in &ids {
        shared.revoked.add(id);
        if terminate && shared.running_tasks.terminate(id) {
            tracing::info!(%id, "terminating task (revoked)");
        }
    }
    tracing::info!(ids = ?ids, terminate, "tasks flagged as revoked");
    revoked::record_in_broker(shared, &ids).await;
    raw_object! {"ok" => format!("tasks {} flagged as revoked", ids.join(", "))}
}

/// Celery's mingle: a Python worker starting up sends its revoked ids to every node and
/// takes theirs (and the clock) from the replies. Keep its ids, in the broker too, and answer
/// with ours as a list, what Celery 5.7 sends and every Celery 5 line's `LimitedSet.update`
/// accepts. A node's own `hello` gets no answer, as in Celery.
async fn hello(shared: &Shared, arguments: &Value) -> RawJson {
    let from = arguments.get("from_node").and_then(Value::as_str);
    if from == Some(shared.settings.hostname.as_str()) {
        return RawJson::null();
    }
    let theirs = mingled_ids(arguments.get("revoked"));
    if !theirs.is_empty() {
        for id in &theirs {
            shared.revoked.add(id);
        }
        revoked::record_in_broker(shared, &theirs).await;
    }
    tracing::info!(
        node = from.unwrap_or("?"),
        "mingle: sync with a starting node"
    );
    raw_object! {"revoked" => shared.revoked.ids(), "clock" => shared.tick()}.to_raw()
}

/// The ids of a mingle `revoked` value: a list of ids (Celery 5.7) or `LimitedSet._data`, an
/// object keyed by id (Celery 5.6 and before).
fn mingled_ids(revoked: Option<&Value>) -> Vec<String> {
    match revoked {
        Some(Value::Object(entries)) => entries.keys().cloned().collect(),
        Some(Value::Array(_)) => task_ids(revoked),
        _ => Vec::new(),
    }
}

/// Task ids as Celery sends them: one id or a list (`revoke`'s `task_id`, `query_task`'s
/// `ids`, the CLI's variadic ids); anything else is none.
fn task_ids(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn toggle_events(shared: &Shared, on: bool) -> RawObject {
    let was = shared.events.set_enabled(on);
    let word = if on { "enabled" } else { "disabled" };
    if was == on {
        raw_object! {"ok" => format!("task events already {word}")}
    } else {
        raw_object! {"ok" => format!("task events {word}")}
    }
}

async fn send_reply(shared: &Shared, reply_to: &Value, ticket: &Value, reply: RawJson) {
    let exchange = reply_to
        .get("exchange")
        .and_then(Value::as_str)
        .unwrap_or(REPLY_EXCHANGE);
    let Some(routing_key) = reply_to.get("routing_key").and_then(Value::as_str) else {
        return;
    };
    let body = raw_object! {shared.settings.hostname.as_str() => reply};
    let headers = raw_object! {"ticket" => ticket, "clock" => shared.tick()};
    let envelope = encode_message(exchange, routing_key, &body.to_raw(), &headers, 1);
    let sent = shared
        .client
        .broker()
        .publish_direct(exchange, routing_key, &envelope)
        .await;
    match sent {
        Ok(0) => tracing::debug!(%routing_key, "nobody waits for this reply (no binding)"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot send a remote-control reply"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn destinations_select_nodes() {
        assert!(addressed_to(&json!({"destination": null}), "taskq@h"));
        assert!(addressed_to(
            &json!({"destination": ["a@h", "taskq@h"]}),
            "taskq@h"
        ));
        assert!(!addressed_to(&json!({"destination": ["a@h"]}), "taskq@h"));
    }

    #[test]
    fn task_ids_come_as_one_or_a_list() {
        assert_eq!(task_ids(Some(&json!("a"))), ["a"]);
        assert_eq!(task_ids(Some(&json!(["a", "b", 3]))), ["a", "b"]);
        assert!(task_ids(None).is_empty());
    }

    #[test]
    fn mingle_revoked_ids_come_as_a_list_or_as_limited_set_data() {
        assert_eq!(mingled_ids(Some(&json!(["a", "b"]))), ["a", "b"]);
        let data = json!({"a": [1795236465.5, "a"]});
        assert_eq!(mingled_ids(Some(&data)), ["a"]);
        assert!(mingled_ids(None).is_empty());
    }
}
