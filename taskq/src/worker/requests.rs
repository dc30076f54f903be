//! The tasks this worker holds without running them, for `inspect reserved`, `inspect
//! scheduled` and `query_task`, in Celery's request-info shape (`Request.info()`).
//!
//! Reserved: fetched and handed to the dispatcher, not started yet (waiting for a slot). The
//! consumer inserts a job as it hands it on; the job removes itself when it starts or is
//! is put back unstarted. That is on every task's path, so it keeps only a shared handle on
//! the envelope, keyed by where the envelope lives (no allocation: one mutex insert and one
//! remove); the envelope is read again only when a command asks.
//!
//! Scheduled: ETA tasks this worker parked. Celery holds an ETA message in the worker's
//! memory until it is due; taskq moves it to the broker's ETA schedule instead, where any
//! worker's scheduler moves it back to its queue when due and any worker may then run it.
//! This worker lists the ones it parked itself until their ETA passes (they are back in their
//! queue then, out of its hands); a worker that restarts forgets them, though they wait in
//! Redis all the same (`taskq queues` counts them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::protocol::{format_datetime, raw_object, RawJson, RawObject, TaskMessage};

/// Celery's timer priority for an ETA request (`call_at(eta, …, priority=6)` in
/// `worker/strategy.py`), which `inspect scheduled` shows.
const ETA_TIMER_PRIORITY: u8 = 6;

/// What `Request.info()` shows of a message.
#[derive(Debug, Clone)]
pub(super) struct TaskInfo {
    id: String,
    name: String,
    args: Vec<RawJson>,
    kwargs: RawObject,
    routing_key: String,
    priority: u8,
}

impl TaskInfo {
    pub(super) fn of(message: &TaskMessage) -> Self {
        Self {
            id: message.id.clone(),
            name: message.task.clone(),
            args: message.args.clone(),
            kwargs: message.kwargs.clone(),
            routing_key: message.routing_key.clone(),
            priority: message.priority,
        }
    }

    /// Celery's `Request.info()`: `time_start` and `worker_pid` are set once the task runs.
    pub(super) fn info(&self, hostname: &str, time_start: Option<f64>) -> RawObject {
        let worker_pid = time_start.map(|_| std::process::id());
        raw_object! {
            "id" => self.id,
            "name" => self.name,
            "args" => self.args,
            "kwargs" => self.kwargs,
            "type" => self.name,
            "hostname" => hostname,
            "time_start" => time_start,
            "acknowledged" => false,
            "delivery_info" => raw_object! {
                "exchange" => "",
                "routing_key" => self.routing_key,
                "priority" => self.priority,
                "redelivered" => false,
            },
            "worker_pid" => worker_pid,
        }
    }
}

/// The reserved and the scheduled tasks of this worker.
#[derive(Debug, Default)]
pub(super) struct Requests {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The envelope's address → (arrival number, for fetch order; the envelope). The entry
    /// holds the envelope, so its address cannot be reused while the entry is there.
    reserved: HashMap<usize, (u64, Arc<str>)>,
    /// Task id → (ETA, seconds since the epoch; the ETA as sent; what it is).
    scheduled: HashMap<String, (f64, String, TaskInfo)>,
    arrivals: u64,
}

impl Requests {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("requests lock")
    }

    /// The task of envelope `raw` waits for an execution slot.
    pub(super) fn reserve(&self, raw: &Arc<str>) {
        let mut inner = self.lock();
        inner.arrivals += 1;
        let arrival = inner.arrivals;
        inner
            .reserved
            .insert(address(raw), (arrival, Arc::clone(raw)));
    }

    /// The task of envelope `raw` no longer waits: it got its slot, or was put back.
    pub(super) fn unreserve(&self, raw: &Arc<str>) {
        self.lock().reserved.remove(&address(raw));
    }

    /// `message` was parked until `eta` (seconds since the epoch, broker clock).
    pub(super) fn schedule(&self, message: &TaskMessage, eta: f64) {
        let Some(when) = message.eta else { return };
        let entry = (eta, format_datetime(when), TaskInfo::of(message));
        self.lock().scheduled.insert(message.id.clone(), entry);
    }

    /// `inspect reserved`: the waiting tasks in the order they came.
    pub(super) fn reserved(&self, hostname: &str) -> Vec<RawObject> {
        let mut waiting: Vec<(u64, Arc<str>)> = self.lock().reserved.values().cloned().collect();
        waiting.sort_by_key(|(arrival, _)| *arrival);
        waiting
            .iter()
            .filter_map(|(_, raw)| reserved_info(raw, hostname))
            .collect()
    }

    /// `inspect scheduled`: the parked tasks not yet due at `now`, soonest first, as
    /// `{"eta", "priority", "request"}`. Due ones are forgotten: they left the schedule.
    pub(super) fn scheduled(&self, hostname: &str, now: f64) -> Vec<RawObject> {
        let mut inner = self.lock();
        inner.scheduled.retain(|_, (eta, _, _)| *eta > now);
        let mut parked: Vec<&(f64, String, TaskInfo)> = inner.scheduled.values().collect();
        parked.sort_by(|a, b| a.0.total_cmp(&b.0));
        parked
            .into_iter()
            .map(|(_, eta, task)| {
                raw_object! {
                    "eta" => eta,
                    "priority" => ETA_TIMER_PRIORITY,
                    "request" => task.info(hostname, None),
                }
            })
            .collect()
    }

    /// `query_task`'s state and request info of task `id` if it is reserved or scheduled
    /// here (Celery 5.7 names the latter `scheduled`).
    pub(super) fn find(
        &self,
        id: &str,
        hostname: &str,
        now: f64,
    ) -> Option<(&'static str, RawObject)> {
        let inner = self.lock();
        let reserved = inner.reserved.values().find_map(|(_, raw)| {
            let message = TaskMessage::decode(raw).ok()?;
            (message.id == id).then(|| TaskInfo::of(&message).info(hostname, None))
        });
        if let Some(info) = reserved {
            return Some(("reserved", info));
        }
        let (eta, _, task) = inner.scheduled.get(id)?;
        (*eta > now).then(|| ("scheduled", task.info(hostname, None)))
    }

    /// How many tasks wait for a slot here (the autoscaler's measure, with the running ones).
    pub(super) fn reserved_count(&self) -> usize {
        self.lock().reserved.len()
    }
}

/// Where an envelope lives: its key among the reserved ones.
fn address(raw: &Arc<str>) -> usize {
    Arc::as_ptr(raw).cast::<u8>() as usize
}

/// The request info of a reserved task, from its envelope (which decoded once already).
fn reserved_info(raw: &str, hostname: &str) -> Option<RawObject> {
    let message = TaskMessage::decode(raw).ok()?;
    Some(TaskInfo::of(&message).info(hostname, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewMessage;

    fn envelope(id: &str, eta: Option<std::time::SystemTime>) -> Arc<str> {
        let mut new = NewMessage::new("tasks.add", id);
        new.eta = eta;
        new.encode("celery").unwrap().into()
    }

    fn message(id: &str, eta: Option<std::time::SystemTime>) -> TaskMessage {
        TaskMessage::decode(&envelope(id, eta)).unwrap()
    }

    #[test]
    fn reserved_tasks_list_in_arrival_order_until_they_leave() {
        let requests = Requests::default();
        let (b, a) = (envelope("b", None), envelope("a", None));
        requests.reserve(&b);
        requests.reserve(&a);
        let ids: Vec<String> = requests
            .reserved("w@h")
            .iter()
            .map(|i| {
                i.to_raw().to_value().unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["b", "a"]);
        requests.unreserve(&b);
        assert_eq!(requests.reserved_count(), 1);
        let (state, info) = requests.find("a", "w@h", 0.0).unwrap();
        let info = info.to_raw().to_value().unwrap();
        assert_eq!(state, "reserved");
        assert_eq!(
            (info["time_start"].is_null(), info["worker_pid"].is_null()),
            (true, true)
        );
        assert_eq!(info["type"], "tasks.add");
    }

    #[test]
    fn scheduled_tasks_show_until_their_eta() {
        let requests = Requests::default();
        let eta = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        requests.schedule(&message("e", Some(eta)), 1_000.0);
        let listed = requests.scheduled("w@h", 999.0);
        let first = listed[0].to_raw().to_value().unwrap();
        assert_eq!(first["eta"], "1970-01-01T00:16:40.000000+00:00");
        assert_eq!(first["priority"], 6);
        assert_eq!(first["request"]["id"], "e");
        assert_eq!(requests.find("e", "w@h", 999.0).unwrap().0, "scheduled");
        assert!(requests.scheduled("w@h", 1_000.0).is_empty());
        assert!(requests.find("e", "w@h", 1_000.0).is_none());
    }
}
