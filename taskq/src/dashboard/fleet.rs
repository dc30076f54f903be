//! What the dashboard knows of the fleet, kept in memory: the workers (from their heartbeats
//! and from remote control), the recent tasks (from Celery events, as Flower reads them),
//! and the queues' counts over time (sampled from the broker; the page shows the latest
//! sample). Pure data: the monitor (`monitor.rs`) feeds it, the API (`api.rs`) reads it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::broker::QueueStats;

/// How many tasks the dashboard remembers (oldest forgotten first), as Flower's
/// `max_tasks` does.
pub const MAX_TASKS: usize = 2000;

/// How many queue samples are kept: at one per [`SAMPLE_EVERY`](super::monitor::SAMPLE_EVERY)
/// (2 s), half an hour.
pub(crate) const MAX_SAMPLES: usize = 900;

/// A worker missing for this long (no heartbeat, no reply) is shown offline.
const OFFLINE_AFTER: f64 = 15.0;

/// Everything the dashboard shows that it does not read afresh per request.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    workers: BTreeMap<String, WorkerSeen>,
    tasks: HashMap<String, TaskSeen>,
    /// Task ids, oldest first, for forgetting and listing.
    order: VecDeque<String>,
    samples: VecDeque<Sample>,
    /// Tasks seen succeeding and failing since the dashboard started, for the rates.
    succeeded: u64,
    failed: u64,
}

/// One worker, as its events and its control replies describe it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WorkerSeen {
    pub(crate) name: String,
    /// The software: `py-celery 5.4.0`, `taskq 0.1.0`.
    pub(crate) software: Option<String>,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: Option<u64>,
    pub(crate) running: Option<u64>,
    pub(crate) processed: Option<u64>,
    pub(crate) pid: Option<u64>,
    /// The last `worker-heartbeat` (or online) event's time, seconds since the epoch.
    pub(crate) last_heartbeat: Option<f64>,
    /// The last time anything was heard from it.
    pub(crate) last_seen: f64,
    /// A `worker-offline` event came after the last sign of life.
    pub(crate) went_offline: bool,
}

/// One task, as its events describe it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TaskSeen {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    /// The last state its events reached: `RECEIVED`, `STARTED`, `SUCCESS`, `FAILURE`,
    /// `RETRY`, `REVOKED`, `REJECTED`, `PENDING` (sent).
    pub(crate) state: String,
    /// As the events carry them: Python's `repr` of each.
    pub(crate) args: Option<String>,
    pub(crate) kwargs: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) retries: Option<u64>,
    pub(crate) eta: Option<String>,
    pub(crate) received: Option<f64>,
    pub(crate) started: Option<f64>,
    /// When it reached its last state.
    pub(crate) updated: f64,
    pub(crate) runtime: Option<f64>,
    pub(crate) result: Option<String>,
    pub(crate) exception: Option<String>,
    pub(crate) traceback: Option<String>,
}

/// The queues at one moment, and the task rates since the sample before.
#[derive(Debug, Clone)]
struct Sample {
    time: f64,
    queues: Vec<QueueStats>,
    succeeded: u64,
    failed: u64,
}

/// A queue as last sampled, with its depth over the samples kept.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueView {
    pub(crate) name: String,
    pub(crate) waiting: usize,
    pub(crate) unacked: usize,
    pub(crate) scheduled: usize,
    pub(crate) dead: usize,
    pub(crate) paused: bool,
    /// Waiting messages at each of [`FleetView::sample_times`].
    pub(crate) history: Vec<usize>,
}

/// What the page shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FleetView {
    pub(crate) workers: Vec<WorkerView>,
    pub(crate) queues: Vec<QueueView>,
    pub(crate) sample_times: Vec<f64>,
    /// Tasks succeeded and failed per second over the last sample period.
    pub(crate) succeeded_per_second: f64,
    pub(crate) failed_per_second: f64,
    /// The newest tasks first.
    pub(crate) tasks: Vec<TaskSeen>,
    /// The newest failures first.
    pub(crate) failed: Vec<TaskSeen>,
}

/// A worker as shown: online or not at the time of the view.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerView {
    #[serde(flatten)]
    pub(crate) seen: WorkerSeen,
    pub(crate) online: bool,
}

/// What a control poll learnt of one worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerReport {
    pub(crate) queues: Option<Vec<String>>,
    pub(crate) concurrency: Option<u64>,
    pub(crate) processed: Option<u64>,
    pub(crate) running: Option<u64>,
    pub(crate) pid: Option<u64>,
}

impl Fleet {
    /// Takes in one Celery event (a JSON object with a `type`).
    pub(crate) fn apply_event(&mut self, event: &Value, now: f64) {
        let Some(kind) = event.get("type").and_then(Value::as_str) else {
            return;
        };
        if let Some(step) = kind.strip_prefix("worker-") {
            self.apply_worker_event(step, event, now);
        } else if let Some(step) = kind.strip_prefix("task-") {
            self.apply_task_event(step, event, now);
        }
    }

    fn apply_worker_event(&mut self, step: &str, event: &Value, now: f64) {
        let Some(name) = text(event, "hostname") else {
            return;
        };
        let worker = self.worker(&name, now);
        if let (Some(ident), Some(version)) = (text(event, "sw_ident"), text(event, "sw_ver")) {
            worker.software = Some(format!("{ident} {version}"));
        }
        if step == "offline" {
            worker.went_offline = true;
            return;
        }
        worker.went_offline = false;
        worker.last_heartbeat = event.get("timestamp").and_then(Value::as_f64).or(Some(now));
        if let Some(active) = event.get("active").and_then(Value::as_u64) {
            worker.running = Some(active);
        }
        if let Some(processed) = event.get("processed").and_then(Value::as_u64) {
            worker.processed = Some(processed);
        }
        if let Some(pid) = event.get("pid").and_then(Value::as_u64) {
            worker.pid = Some(pid);
        }
    }

    fn apply_task_event(&mut self, step: &str, event: &Value, now: f64) {
        let Some(id) = text(event, "uuid") else {
            return;
        };
        let time = event
            .get("timestamp")
            .and_then(Value::as_f64)
            .unwrap_or(now);
        let task = self.task(&id, time);
        let state = match step {
            "sent" => "PENDING",
            "received" => "RECEIVED",
            "started" => "STARTED",
            "succeeded" => "SUCCESS",
            "failed" => "FAILURE",
            "retried" => "RETRY",
            "revoked" => "REVOKED",
            "rejected" => "REJECTED",
            _ => return,
        };
        // Events of one task may arrive out of order (batched per worker); a finished task
        // does not go back to running.
        let finished = matches!(task.state.as_str(), "SUCCESS" | "FAILURE" | "REVOKED");
        if !finished || matches!(state, "SUCCESS" | "FAILURE" | "REVOKED" | "RETRY") {
            task.state = state.to_owned();
            task.updated = time;
        }
        if let Some(worker) = text(event, "hostname") {
            if step != "sent" {
                task.worker = Some(worker);
            }
        }
        fill(&mut task.name, event, "name");
        fill(&mut task.args, event, "args");
        fill(&mut task.kwargs, event, "kwargs");
        fill(&mut task.queue, event, "queue");
        fill(&mut task.eta, event, "eta");
        fill(&mut task.result, event, "result");
        fill(&mut task.exception, event, "exception");
        fill(&mut task.traceback, event, "traceback");
        if let Some(retries) = event.get("retries").and_then(Value::as_u64) {
            task.retries = Some(retries);
        }
        if let Some(runtime) = event.get("runtime").and_then(Value::as_f64) {
            task.runtime = Some(runtime);
        }
        match step {
            "received" => task.received = Some(time),
            "started" => task.started = Some(time),
            "succeeded" => self.succeeded += 1,
            "failed" => self.failed += 1,
            _ => {}
        }
    }

    /// Takes in what a control poll learnt of worker `name`.
    pub(crate) fn apply_report(&mut self, name: &str, report: WorkerReport, now: f64) {
        let worker = self.worker(name, now);
        worker.went_offline = false;
        if let Some(queues) = report.queues {
            worker.queues = queues;
        }
        worker.concurrency = report.concurrency.or(worker.concurrency);
        worker.processed = report.processed.or(worker.processed);
        worker.running = report.running.or(worker.running);
        worker.pid = report.pid.or(worker.pid);
    }

    /// Records the queues as read now.
    pub(crate) fn add_sample(&mut self, queues: Vec<QueueStats>, now: f64) {
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            time: now,
            queues,
            succeeded: self.succeeded,
            failed: self.failed,
        });
    }

    /// The task `id`, if remembered.
    pub(crate) fn task_seen(&self, id: &str) -> Option<TaskSeen> {
        self.tasks.get(id).cloned()
    }

    /// What the page shows now: the queues as last sampled (none before the first sample),
    /// `paused` the queues paused, `limit` the most tasks listed.
    pub(crate) fn view(&self, paused: &[String], limit: usize, now: f64) -> FleetView {
        let workers = self
            .workers
            .values()
            .map(|seen| WorkerView {
                online: !seen.went_offline && now - seen.last_seen < OFFLINE_AFTER,
                seen: seen.clone(),
            })
            .collect();
        let newest = self.order.iter().rev().filter_map(|id| self.tasks.get(id));
        let tasks = newest.clone().take(limit).cloned().collect();
        let failed = newest
            .filter(|task| task.state == "FAILURE")
            .take(limit)
            .cloned()
            .collect();
        let (succeeded_per_second, failed_per_second) = self.rates();
        FleetView {
            workers,
            queues: self.queue_views(paused),
            sample_times: self.samples.iter().map(|s| s.time).collect(),
            succeeded_per_second,
            failed_per_second,
            tasks,
            failed,
        }
    }

    /// The task rates between the last two samples.
    fn rates(&self) -> (f64, f64) {
        let mut last_two = self.samples.iter().rev();
        let (Some(last), Some(before)) = (last_two.next(), last_two.next()) else {
            return (0.0, 0.0);
        };
        let seconds = (last.time - before.time).max(f64::EPSILON);
        let per_second = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        (
            per_second(last.succeeded, before.succeeded),
            per_second(last.failed, before.failed),
        )
    }

    /// Every queue in the last sample (or paused), with its waiting count at each sample.
    fn queue_views(&self, paused: &[String]) -> Vec<QueueView> {
        let latest = self.samples.back().map_or(&[][..], |s| s.queues.as_slice());
        let mut views: BTreeMap<&str, QueueView> = BTreeMap::new();
        let names = latest
            .iter()
            .map(|q| q.queue.as_str())
            .chain(paused.iter().map(String::as_str));
        for name in names {
            let now = latest.iter().find(|q| q.queue == name);
            let history = self
                .samples
                .iter()
                .map(|s| {
                    s.queues
                        .iter()
                        .find(|q| q.queue == name)
                        .map_or(0, |q| q.waiting)
                })
                .collect();
            views.insert(
                name,
                QueueView {
                    name: name.to_owned(),
                    waiting: now.map_or(0, |q| q.waiting),
                    unacked: now.map_or(0, |q| q.unacked),
                    scheduled: now.map_or(0, |q| q.scheduled),
                    dead: now.map_or(0, |q| q.dead_letters),
                    paused: paused.iter().any(|p| p == name),
                    history,
                },
            );
        }
        views.into_values().collect()
    }

    fn worker(&mut self, name: &str, now: f64) -> &mut WorkerSeen {
        let worker = self
            .workers
            .entry(name.to_owned())
            .or_insert_with(|| WorkerSeen {
                name: name.to_owned(),
                ..WorkerSeen::default()
            });
        worker.last_seen = now;
        worker
    }

    /// The task `id`, remembered from now on (forgetting the oldest beyond [`MAX_TASKS`]).
    fn task(&mut self, id: &str, time: f64) -> &mut TaskSeen {
        if !self.tasks.contains_key(id) {
            if self.order.len() == MAX_TASKS {
                if let Some(oldest) = self.order.pop_front() {
                    self.tasks.remove(&oldest);
                }
            }
            self.order.push_back(id.to_owned());
            let task = TaskSeen {
                id: id.to_owned(),
                state: "PENDING".to_owned(),
                updated: time,
                ..TaskSeen::default()
            };
            self.tasks.insert(id.to_owned(), task);
        }
        self.tasks.get_mut(id).expect("inserted above")
    }
}

/// `object[key]` as text (a string as is, anything else as JSON), if present and not null:
/// a field of an event, or of a control reply (`monitor.rs`).
pub(super) fn text(object: &Value, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Sets `slot` from `event[key]` when the event has it.
fn fill(slot: &mut Option<String>, event: &Value, key: &str) {
    if let Some(value) = text(event, key) {
        *slot = Some(value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_failed_task_keeps_its_arguments_and_traceback() {
        let mut fleet = Fleet::default();
        let received = json!({"type": "task-received", "uuid": "t1", "name": "tasks.fail",
            "args": "(1,)", "kwargs": "{}", "hostname": "w@h", "timestamp": 10.0});
        let failed = json!({"type": "task-failed", "uuid": "t1", "exception": "ValueError('x')",
            "traceback": "Traceback ...", "hostname": "w@h", "timestamp": 11.0});
        fleet.apply_event(&failed, 11.0);
        fleet.apply_event(&received, 11.0);
        let view = fleet.view(&[], 10, 12.0);
        let task = &view.failed[0];
        assert_eq!(
            task.state, "FAILURE",
            "a late received does not undo the failure"
        );
        assert_eq!(task.args.as_deref(), Some("(1,)"));
        assert_eq!(task.traceback.as_deref(), Some("Traceback ..."));
        assert_eq!(task.worker.as_deref(), Some("w@h"));
    }

    #[test]
    fn workers_go_offline_when_silent_or_told() {
        let mut fleet = Fleet::default();
        let beat = json!({"type": "worker-heartbeat", "hostname": "a@h", "active": 2,
            "processed": 7, "sw_ident": "py-celery", "sw_ver": "5.4.0", "timestamp": 100.0});
        fleet.apply_event(&beat, 100.0);
        fleet.apply_report("b@h", WorkerReport::default(), 100.0);
        let view = fleet.view(&[], 10, 101.0);
        assert!(view.workers.iter().all(|w| w.online));
        assert_eq!(
            view.workers[0].seen.software.as_deref(),
            Some("py-celery 5.4.0")
        );
        assert_eq!(view.workers[0].seen.processed, Some(7));

        fleet.apply_event(&json!({"type": "worker-offline", "hostname": "a@h"}), 102.0);
        let view = fleet.view(&[], 10, 102.0);
        assert!(!view.workers[0].online && view.workers[1].online);
        let view = fleet.view(&[], 10, 100.0 + OFFLINE_AFTER + 1.0);
        assert!(!view.workers[1].online, "silent for too long");
    }

    #[test]
    fn the_oldest_tasks_are_forgotten() {
        let mut fleet = Fleet::default();
        for n in 0..MAX_TASKS + 5 {
            let event = json!({"type": "task-received", "uuid": format!("t{n}")});
            fleet.apply_event(&event, 1.0);
        }
        assert_eq!(fleet.tasks.len(), MAX_TASKS);
        assert!(fleet.task_seen("t0").is_none() && fleet.task_seen("t5").is_some());
        let view = fleet.view(&[], 3, 1.0);
        let newest: Vec<_> = view.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            newest,
            [
                format!("t{}", MAX_TASKS + 4),
                format!("t{}", MAX_TASKS + 3),
                format!("t{}", MAX_TASKS + 2)
            ]
        );
    }

    #[test]
    fn queues_keep_their_depth_over_time_and_rates_come_from_samples() {
        let mut fleet = Fleet::default();
        let stats = |waiting| {
            vec![QueueStats {
                queue: "celery".into(),
                waiting,
                unacked: 0,
                scheduled: 0,
                dead_letters: 1,
            }]
        };
        fleet.add_sample(stats(5), 0.0);
        for n in 0..10 {
            let event = json!({"type": "task-succeeded", "uuid": format!("t{n}")});
            fleet.apply_event(&event, 1.0);
        }
        fleet.add_sample(stats(3), 5.0);
        let view = fleet.view(&["reports".into()], 10, 5.0);
        assert_eq!(view.queues.len(), 2, "a paused queue shows even when empty");
        assert_eq!(view.queues[0].name, "celery");
        assert_eq!(view.queues[0].history, [5, 3]);
        assert_eq!(view.queues[0].waiting, 3, "the last sample's count");
        assert_eq!(view.queues[0].dead, 1);
        assert!(view.queues[1].paused);
        assert!((view.succeeded_per_second - 2.0).abs() < 1e-9);
    }

    #[test]
    fn before_the_first_sample_only_paused_queues_show() {
        let fleet = Fleet::default();
        let view = fleet.view(&["reports".into()], 10, 1.0);
        assert_eq!(view.queues.len(), 1);
        assert_eq!(view.queues[0].name, "reports");
        assert_eq!(view.queues[0].waiting, 0);
        assert!(view.queues[0].paused && view.queues[0].history.is_empty());
        assert!(view.sample_times.is_empty());
    }

    #[test]
    fn the_oldest_samples_are_dropped() {
        let mut fleet = Fleet::default();
        for n in 0..MAX_SAMPLES + 3 {
            fleet.add_sample(Vec::new(), n as f64);
        }
        let view = fleet.view(&[], 10, 0.0);
        assert_eq!(view.sample_times.len(), MAX_SAMPLES);
        assert_eq!(view.sample_times[0], 3.0);
    }
}
