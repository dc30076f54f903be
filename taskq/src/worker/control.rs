//! Remote control: answers Celery's `celery inspect …` / `celery control …` and
//! `app.control.*` calls, sent on the `celery.pidbox` fanout exchange.
//!
//! A command is `{"method", "arguments", "destination", "reply_to", "ticket"}`; when it asks
//! for a reply, the answer `{<node name>: <reply>}` goes through the direct exchange
//! `reply.celery.pidbox` to the caller's reply queue, with the `ticket` header the caller
//! matches replies by.
//!
//! Supported: `ping`, `registered`, `active`, `stats`, `revoke`, `revoked` (the ids this
//! worker honours: its copy of the broker's revoked set, see [`crate::revoke`]), `scheduled` and
//! `reserved` (always empty: taskq parks ETA tasks in Redis and starts reserved ones at once),
//! `active_queues`, `conf`, `clock`, `enable_events`, `disable_events`, and `hello` (Celery's
//! mingle: a Python worker starting up learns the revoked ids from a taskq node).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::part::{Loop, Part};
use super::{revoked, Shared};
use crate::backoff::Backoff;
use crate::broker::Subscription;
use crate::protocol::KombuMessage;
use crate::registry;

/// The mailbox exchange (Celery's `control_exchange` `celery` + `.pidbox`).
pub(super) const EXCHANGE: &str = crate::revoke::CONTROL_EXCHANGE;

/// Where replies go (direct exchange, bound per caller).
pub(super) const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// The part that answers remote control.
#[derive(Debug)]
pub(super) struct Control(Loop);

impl Control {
    /// Starts answering the commands sent to this worker's mailbox; it answers until it is
    /// shut down, after the tasks have stopped, so `celery inspect` sees a draining worker.
    pub(super) fn start(shared: Arc<Shared>) -> Self {
        Self(Loop::spawn(|stop| run(shared, stop)))
    }
}

#[async_trait]
impl Part for Control {
    fn name(&self) -> &'static str {
        "remote control"
    }

    async fn shutdown(self: Box<Self>) {
        self.0.stop().await;
    }
}

async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    while let Some(mut subscription) = subscribe(&shared, &stop).await {
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
    let reply = answer(shared, method, &arguments).await;
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

/// The reply of this worker to the remote-control command `method`.
async fn answer(shared: &Shared, method: &str, arguments: &Value) -> Value {
    match method {
        "ping" => match shared.health.problem() {
            None => json!({"ok": "pong"}),
            Some(problem) => json!({"error": problem}),
        },
        "registered" => json!(registry::all().iter().map(|e| e.name).collect::<Vec<_>>()),
        "active" => json!(shared.running_tasks.active(&shared.settings.hostname)),
        "stats" => stats(shared),
        "revoke" => revoke(shared, arguments).await,
        "revoked" => json!(shared.revoked.ids()),
        "hello" => hello(shared, arguments).await,
        "scheduled" | "reserved" => json!([]),
        "active_queues" => active_queues(shared),
        "conf" => json!({}),
        "clock" => json!({"clock": shared.tick()}),
        "enable_events" => toggle_events(shared, true),
        "disable_events" => toggle_events(shared, false),
        other => json!({"error": format!("No such command: {other}")}),
    }
}

/// Remembers the ids as revoked (they are discarded when fetched) and, with `terminate`,
/// aborts those running now; they end REVOKED "terminated". The ids are recorded in the
/// broker too, so that workers not listening now honour them as well (see [`crate::revoke`]).
async fn revoke(shared: &Shared, arguments: &Value) -> Value {
    let ids: Vec<String> = match arguments.get("task_id") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return json!({"error": "revoke needs task_id"}),
    };
    let terminate = arguments.get("terminate").and_then(Value::as_bool) == Some(true);
    for id in &ids {
        shared.revoked.add(id);
        if terminate && shared.running_tasks.terminate(id) {
            tracing::info!(%id, "terminating task (revoked)");
        }
    }
    tracing::info!(ids = ?ids, terminate, "tasks flagged as revoked");
    revoked::record_in_broker(shared, &ids).await;
    json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
}

/// Celery's mingle: a Python worker starting up sends its revoked ids to every node and
/// takes theirs (and the clock) from the replies. Keep its ids, in the broker too, and answer
/// with ours as a list, what Celery 5.7 sends and every Celery 5 line's `LimitedSet.update`
/// accepts. A node's own `hello` gets no answer, as in Celery.
async fn hello(shared: &Shared, arguments: &Value) -> Value {
    let from = arguments.get("from_node").and_then(Value::as_str);
    if from == Some(shared.settings.hostname.as_str()) {
        return Value::Null;
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
    json!({"revoked": shared.revoked.ids(), "clock": shared.tick()})
}

/// The ids of a mingle `revoked` value: a list of ids (Celery 5.7) or `LimitedSet._data`, an
/// object keyed by id (Celery 5.6 and before).
fn mingled_ids(revoked: Option<&Value>) -> Vec<String> {
    match revoked {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Object(entries)) => entries.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn stats(shared: &Shared) -> Value {
    let config = shared.config();
    json!({
        "total": shared.running_tasks.totals(),
        "pid": std::process::id(),
        "clock": shared.tick().to_string(),
        "uptime": shared.started.elapsed().as_secs(),
        "pool": {
            "implementation": "taskq:tokio",
            "max-concurrency": config.concurrency,
            "processes": [std::process::id()],
            "max-tasks-per-child": "N/A",
            "put-guarded-by-semaphore": false,
            "timeouts": [0, 0],
        },
        "broker": broker_info(&config.broker_url),
        "prefetch_count": config.concurrency * config.prefetch_multiplier,
        "rusage": {},
        "sw_ident": "taskq",
        "sw_ver": env!("CARGO_PKG_VERSION"),
    })
}

/// The broker connection as Celery's `stats` describes it (no password).
fn broker_info(url: &str) -> Value {
    let parsed = url::Url::parse(url).ok();
    let scheme = parsed.as_ref().map_or("redis", url::Url::scheme);
    let host = parsed.as_ref().and_then(url::Url::host_str).unwrap_or("");
    let port = parsed.as_ref().and_then(url::Url::port).unwrap_or(6379);
    let db = parsed
        .as_ref()
        .map(|u| u.path().trim_start_matches('/'))
        .filter(|db| !db.is_empty())
        .unwrap_or("0");
    json!({
        "hostname": host,
        "userid": null,
        "virtual_host": db,
        "port": port,
        "insist": false,
        "ssl": scheme == "rediss",
        "transport": scheme,
        "connect_timeout": 4,
        "transport_options": {},
        "login_method": null,
        "uri_prefix": null,
        "heartbeat": 120.0,
        "failover_strategy": "round-robin",
        "alternates": [],
    })
}

fn active_queues(shared: &Shared) -> Value {
    let queues: Vec<Value> = shared
        .config()
        .queues
        .iter()
        .map(|q| {
            json!({
                "name": q,
                "exchange": {"name": q, "type": "direct", "arguments": null, "durable": true,
                             "passive": false, "auto_delete": false, "delivery_mode": null, "no_declare": false},
                "routing_key": q,
                "queue_arguments": null, "binding_arguments": null, "consumer_arguments": null,
                "durable": true, "exclusive": false, "auto_delete": false, "no_ack": false,
                "alias": null, "bindings": [], "no_declare": null, "expires": null,
                "message_ttl": null, "max_length": null, "max_length_bytes": null, "max_priority": null,
            })
        })
        .collect();
    json!(queues)
}

fn toggle_events(shared: &Shared, on: bool) -> Value {
    let was = shared.events.set_enabled(on);
    let word = if on { "enabled" } else { "disabled" };
    if was == on {
        json!({"ok": format!("task events already {word}")})
    } else {
        json!({"ok": format!("task events {word}")})
    }
}

async fn send_reply(shared: &Shared, reply_to: &Value, ticket: &Value, reply: Value) {
    let exchange = reply_to
        .get("exchange")
        .and_then(Value::as_str)
        .unwrap_or(REPLY_EXCHANGE);
    let Some(routing_key) = reply_to.get("routing_key").and_then(Value::as_str) else {
        return;
    };
    let body = json!({ shared.settings.hostname.clone(): reply });
    let message = KombuMessage::new(exchange, routing_key, body)
        .header("ticket", ticket.clone())
        .header("clock", json!(shared.tick()));
    let Ok(envelope) = message.encode() else {
        return;
    };
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
    fn mingle_revoked_ids_come_as_a_list_or_as_limited_set_data() {
        assert_eq!(mingled_ids(Some(&json!(["a", "b"]))), ["a", "b"]);
        let data = json!({"a": [1795236465.5, "a"]});
        assert_eq!(mingled_ids(Some(&data)), ["a"]);
        assert!(mingled_ids(None).is_empty());
    }

    #[test]
    fn broker_info_names_host_port_and_db() {
        let info = broker_info("redis://:pw@10.0.0.5:6390/3");
        assert_eq!(
            (info["hostname"].as_str(), info["port"].as_u64()),
            (Some("10.0.0.5"), Some(6390))
        );
        assert_eq!(info["virtual_host"], "3");
        assert_eq!(info["transport"], "redis");
        let encoded = broker_info("rediss://app:p%40ss@cache.internal/0?ssl_cert_reqs=CERT_NONE");
        assert_eq!(encoded["hostname"], "cache.internal");
        assert_eq!(
            (encoded["port"].as_u64(), encoded["ssl"].as_bool()),
            (Some(6379), Some(true))
        );
        assert_eq!(broker_info("memory://")["virtual_host"], "0");
    }
}
