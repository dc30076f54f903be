//! The dashboard's background work, with a start and a shutdown: it listens to Celery events
//! (as Flower does), samples the queues, and asks the workers about themselves by remote
//! control, so that a page load only reads memory and a few Redis keys.
//!
//! Like Flower, it switches task events on in every worker now and then (`enable_events`),
//! so that tasks show without starting the workers with `-E`; a dashboard built with
//! [`DashboardBuilder::enable_events(false)`](super::DashboardBuilder::enable_events) leaves
//! them as they are.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fleet::{text, Fleet, WorkerReport};
use crate::backoff::Backoff;
use crate::control::{ControlOptions, NodeReply};
use crate::protocol::KombuMessage;
use crate::{unix_now, Client};

/// How often the queues are read: the counts the page shows, and their depth over time.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// How often the workers are asked about themselves.
const POLL_EVERY: Duration = Duration::from_secs(4);

/// How long a poll waits for the workers' replies.
const REPLY_WAIT: Duration = Duration::from_millis(1500);

/// Celery's event exchange.
const EVENTS_EXCHANGE: &str = "celeryev";

/// What the background loops keep, shared with the API.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) fleet: Mutex<Fleet>,
    /// The tasks workers hold until their ETA, from the last poll.
    pub(crate) scheduled: Mutex<Vec<ScheduledTask>>,
}

impl Seen {
    pub(crate) fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn scheduled(&self) -> MutexGuard<'_, Vec<ScheduledTask>> {
        self.scheduled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A task a worker holds until its ETA (`inspect scheduled`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScheduledTask {
    pub(crate) worker: String,
    pub(crate) eta: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) args: Option<String>,
}

/// The running loops.
#[derive(Debug)]
pub(crate) struct Monitor {
    cancel: CancellationToken,
    loops: Vec<JoinHandle<()>>,
}

impl Monitor {
    /// Starts the loops on the current tokio runtime.
    pub(crate) fn start(client: Client, seen: Arc<Seen>, enable_events: bool) -> Self {
        let cancel = CancellationToken::new();
        let loops = vec![
            tokio::spawn(listen_to_events(
                client.clone(),
                seen.clone(),
                cancel.clone(),
            )),
            tokio::spawn(sample_queues(client.clone(), seen.clone(), cancel.clone())),
            tokio::spawn(poll_workers(client, seen, enable_events, cancel.clone())),
        ];
        Self { cancel, loops }
    }

    /// Stops the loops and waits for them.
    pub(crate) async fn shutdown(mut self) {
        self.cancel.cancel();
        for handle in std::mem::take(&mut self.loops) {
            let _ = handle.await;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Feeds every event published on `celeryev` into the fleet, resubscribing after a failure.
async fn listen_to_events(client: Client, seen: Arc<Seen>, cancel: CancellationToken) {
    let mut backoff = Backoff::starting_at(Duration::from_millis(200));
    while !cancel.is_cancelled() {
        let subscribed = tokio::select! {
            subscribed = client.broker().subscribe_broadcast(EVENTS_EXCHANGE) => subscribed,
            () = cancel.cancelled() => return,
        };
        let mut subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: cannot subscribe to events");
                let wait = backoff.next_delay();
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = cancel.cancelled() => return,
                }
            }
        };
        backoff.reset();
        loop {
            let raw = tokio::select! {
                raw = subscription.recv() => raw,
                () = cancel.cancelled() => return,
            };
            let Some(raw) = raw else { break };
            let Ok(message) = KombuMessage::decode(&raw) else {
                continue;
            };
            let events = message.into_events();
            let now = unix_now();
            let mut fleet = seen.fleet();
            for event in &events {
                fleet.apply_event(event, now);
            }
        }
    }
}

/// Reads the queues' counts every [`SAMPLE_EVERY`], the first time at once; `api/state`
/// serves the latest sample rather than reading the queues per request.
async fn sample_queues(client: Client, seen: Arc<Seen>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        match client.broker().queue_stats(&[]).await {
            Ok(queues) => seen.fleet().add_sample(queues, unix_now()),
            Err(e) => tracing::warn!(error = %e, "dashboard: cannot read the queues"),
        }
    }
}

/// Asks every worker for its stats, queues, running and scheduled tasks every
/// [`POLL_EVERY`] (and switches their task events on, unless told not to).
async fn poll_workers(
    client: Client,
    seen: Arc<Seen>,
    enable_events: bool,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let options = ControlOptions::new().timeout(REPLY_WAIT);
    let control = client.control();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        if enable_events {
            let everyone = serde_json::json!({});
            if let Err(e) = control.cast("enable_events", everyone, None).await {
                tracing::warn!(error = %e, "dashboard: cannot switch the workers' events on");
            }
        }
        let (stats, queues, active, scheduled) = tokio::join!(
            control.inspect("stats", &options),
            control.inspect("active_queues", &options),
            control.inspect("active", &options),
            control.inspect("scheduled", &options),
        );
        let now = unix_now();
        let mut reports = std::collections::BTreeMap::<String, WorkerReport>::new();
        for reply in stats.iter().flatten() {
            let report = reports.entry(reply.node.clone()).or_default();
            report.concurrency = reply
                .reply
                .pointer("/pool/max-concurrency")
                .and_then(Value::as_u64);
            report.pid = reply.reply.get("pid").and_then(Value::as_u64);
            report.processed = reply
                .reply
                .get("total")
                .and_then(Value::as_object)
                .map(|totals| totals.values().filter_map(Value::as_u64).sum());
        }
        for reply in queues.iter().flatten() {
            let names = reply.reply.as_array().map(|queues| {
                queues
                    .iter()
                    .filter_map(|q| q.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            });
            reports.entry(reply.node.clone()).or_default().queues = names;
        }
        for reply in active.iter().flatten() {
            let running = reply.reply.as_array().map(|tasks| tasks.len() as u64);
            reports.entry(reply.node.clone()).or_default().running = running;
        }
        {
            let mut fleet = seen.fleet();
            for (node, report) in reports {
                fleet.apply_report(&node, report, now);
            }
        }
        if let Ok(replies) = scheduled {
            *seen.scheduled() = scheduled_tasks(&replies);
        }
    }
}

/// The tasks in `inspect scheduled` replies, soonest first.
fn scheduled_tasks(replies: &[NodeReply]) -> Vec<ScheduledTask> {
    let mut tasks: Vec<ScheduledTask> = replies
        .iter()
        .flat_map(|reply| {
            let entries = reply.reply.as_array().cloned().unwrap_or_default();
            entries.into_iter().map(move |entry| {
                let request = &entry["request"];
                ScheduledTask {
                    worker: reply.node.clone(),
                    eta: text(&entry, "eta"),
                    id: text(request, "id"),
                    name: text(request, "name"),
                    args: text(request, "args"),
                }
            })
        })
        .collect();
    tasks.sort_by(|a, b| a.eta.cmp(&b.eta));
    tasks
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scheduled_replies_become_tasks_soonest_first() {
        let replies = [
            NodeReply {
                node: "a@h".into(),
                reply: json!([{"eta": "2026-01-02T00:00:00", "request": {"id": "late", "name": "t", "args": [1]}}]),
            },
            NodeReply {
                node: "b@h".into(),
                reply: json!([{"eta": "2026-01-01T00:00:00", "request": {"id": "soon", "name": "t", "args": "(1,)"}}]),
            },
        ];
        let tasks = scheduled_tasks(&replies);
        assert_eq!(tasks[0].id.as_deref(), Some("soon"));
        assert_eq!(tasks[0].args.as_deref(), Some("(1,)"));
        assert_eq!(tasks[1].args.as_deref(), Some("[1]"));
        assert_eq!(tasks[1].worker, "a@h");
    }
}
