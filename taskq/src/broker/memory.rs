//! An in-process broker with the Redis broker's semantics (`memory://`), for unit tests and
//! single-process use. Messages are the same kombu envelopes; nothing leaves the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, Notify};

use super::{
    Broker, DeadLetter, DeadLetterMatch, Delivery, Fetched, Outgoing, Promoted, QueueStats,
    RecoverAfter, RefusedMessage, Subscription,
};
use crate::connection::named_instance;
use crate::keys::BrokerKeys;
use crate::protocol::edit::{self, task_id_by_search};
use crate::protocol::DecodeError;
use crate::revoke::{RevokeLog, Revoked};
use crate::Result;

/// The in-memory broker. Every `memory://<name>` URL in a process names one shared instance,
/// so a producer and a worker in the same process meet.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use std::time::Duration;
/// use taskq::broker::{memory::MemoryBroker, Broker, Outgoing};
/// use taskq::protocol::NewMessage;
///
/// let broker = MemoryBroker::named("doc-example");
/// let envelope = NewMessage::new("tasks.add", "id-1").encode("celery").unwrap();
/// broker.publish(&[Outgoing { queue: "celery".into(), priority: 0, envelope }]).await?;
/// let fetched = broker.fetch(&["celery".into()], 10, 1 << 20).await?;
/// assert_eq!(fetched.deliveries.len(), 1);
/// broker.ack(&[fetched.deliveries[0].tag.clone()]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryBroker {
    name: String,
    keys: BrokerKeys,
    state: Mutex<State>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct State {
    lists: HashMap<String, VecDeque<Arc<str>>>,
    unacked: HashMap<String, Delivery>,
    /// Delivery tag → when its lease was last renewed (seconds since the epoch).
    leases: HashMap<String, f64>,
    /// Periodic entry → the last slot fired (ms since the epoch).
    beat_slots: HashMap<String, i64>,
    /// The scheduler leading, and until when.
    beat_leader: Option<(String, std::time::Instant)>,
    /// Rate-limited task → when its next turn is free.
    rate_turns: HashMap<String, std::time::Instant>,
    /// Unique call key → the call holding it, and until when.
    unique_locks: HashMap<String, (String, std::time::Instant)>,
    /// Tags of messages whose task started.
    started: std::collections::HashSet<String>,
    /// (due time in microseconds, tag) → parked delivery.
    eta: BTreeMap<(i64, String), Delivery>,
    dead: VecDeque<DeadLetter>,
    /// Fanout exchange → its subscribers.
    fanout: HashMap<String, broadcast::Sender<String>>,
    /// Direct exchange → `(routing key, queue)` bindings.
    bindings: HashMap<String, Vec<(String, String)>>,
    /// Revoked ids with their revoke times, bounded as on Redis.
    revoked: RevokeLog,
    /// Queues published to (kombu's bindings on Redis), for [`Broker::queue_stats`].
    declared: std::collections::BTreeSet<String>,
    /// Queues paused for every worker.
    paused: std::collections::BTreeSet<String>,
}

impl State {
    /// Takes `tag` out of the held state (unacked, its lease, the started set), as the Redis
    /// broker's release script does; the delivery it held, if any.
    fn release(&mut self, tag: &str) -> Option<Delivery> {
        self.leases.remove(tag);
        self.started.remove(tag);
        self.unacked.remove(tag)
    }
}

impl MemoryBroker {
    /// The process-wide broker called `name` (`memory://name`; the empty name is `memory://`).
    ///
    /// ```
    /// let a = taskq::broker::memory::MemoryBroker::named("x");
    /// assert!(std::sync::Arc::ptr_eq(&a, &taskq::broker::memory::MemoryBroker::named("x")));
    /// ```
    pub fn named(name: &str) -> Arc<Self> {
        Self::named_with_keys(name, BrokerKeys::default())
    }

    /// Whether the message held under `tag` is marked started.
    #[cfg(test)]
    pub(crate) fn is_started(&self, tag: &str) -> bool {
        self.state().started.contains(tag)
    }

    /// Like [`named`](Self::named), laying out its lists by `keys` (priority steps) when this
    /// opening creates the instance; later openings share it as it was created.
    ///
    /// ```
    /// use taskq::{broker::memory::MemoryBroker, keys::BrokerKeys};
    ///
    /// let keys = BrokerKeys::default().with_priority_steps(&[0, 5, 7]);
    /// let broker = MemoryBroker::named_with_keys("steps-doc", keys);
    /// assert!(broker.is_empty("celery"));
    /// ```
    pub fn named_with_keys(name: &str, keys: BrokerKeys) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> = OnceLock::new();
        named_instance(&REGISTRY, name, || MemoryBroker {
            name: name.to_owned(),
            keys,
            ..Default::default()
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory broker lock")
    }

    /// Puts a dead-lettered message back at the back of its queue's bucket-0 list.
    fn return_to_queue(&self, state: &mut State, dead: DeadLetter) {
        let list = self.keys.queue_list(&dead.queue, 0);
        state
            .lists
            .entry(list)
            .or_default()
            .push_front(dead.payload.into());
    }

    /// Number of messages waiting in `queue` (all priorities).
    ///
    /// ```
    /// let broker = taskq::broker::memory::MemoryBroker::named("len-doc");
    /// assert_eq!(broker.len("celery"), 0);
    /// ```
    pub fn len(&self, queue: &str) -> usize {
        let state = self.state();
        self.keys
            .fetch_order(&[queue.to_owned()])
            .iter()
            .map(|(list, _)| state.lists.get(list).map_or(0, VecDeque::len))
            .sum()
    }

    /// Whether `queue` has no waiting message.
    ///
    /// ```
    /// let broker = taskq::broker::memory::MemoryBroker::named("len-doc");
    /// assert!(broker.is_empty("celery"));
    /// ```
    pub fn is_empty(&self, queue: &str) -> bool {
        self.len(queue) == 0
    }

    /// Number of fetched, unacknowledged messages.
    ///
    /// ```
    /// let broker = taskq::broker::memory::MemoryBroker::named("len-doc");
    /// assert_eq!(broker.unacked_len(), 0);
    /// ```
    pub fn unacked_len(&self) -> usize {
        self.state().unacked.len()
    }

    /// Number of parked ETA messages.
    ///
    /// ```
    /// let broker = taskq::broker::memory::MemoryBroker::named("len-doc");
    /// assert_eq!(broker.scheduled_len(), 0);
    /// ```
    pub fn scheduled_len(&self) -> usize {
        self.state().eta.len()
    }

    fn fanout_sender(&self, exchange: &str) -> broadcast::Sender<String> {
        self.state()
            .fanout
            .entry(exchange.to_owned())
            .or_insert_with(|| broadcast::channel(super::SUBSCRIPTION_BUFFER).0)
            .clone()
    }

    fn take(&self, order: &[(String, String)], max: usize, max_bytes: usize, now: f64) -> Fetched {
        let mut state = self.state();
        let mut fetched = Fetched {
            now,
            ..Fetched::default()
        };
        for (list, queue) in order {
            while fetched.deliveries.len() < max {
                let Some(raw) = state.lists.get_mut(list).and_then(VecDeque::pop_back) else {
                    break;
                };
                let tag = if raw.len() > max_bytes {
                    Err((
                        super::FETCH_REFUSED_TOO_LARGE,
                        oversize_reason(raw.len(), max_bytes),
                    ))
                } else {
                    delivery_tag(&raw)
                };
                match tag {
                    Ok(tag) => {
                        let (tag, raw) = own_tag(&state.unacked, tag, raw);
                        let delivery = Delivery {
                            tag: tag.clone(),
                            queue: queue.clone(),
                            source: list.clone(),
                            raw,
                        };
                        state.leases.insert(tag.clone(), now);
                        state.unacked.insert(tag, delivery.clone());
                        fetched.deliveries.push(delivery);
                    }
                    Err((code, reason)) => {
                        // The id is found as the Redis script finds it, by search.
                        let refusal = DecodeError::new(super::refusal_kind(code), &reason)
                            .or_task_id(task_id_by_search(&raw));
                        state.dead.push_front(DeadLetter {
                            reason,
                            queue: queue.clone(),
                            payload: raw.to_string(),
                            time: now,
                        });
                        fetched.refused.push(RefusedMessage {
                            queue: queue.clone(),
                            refusal,
                        });
                    }
                }
            }
        }
        fetched
    }
}

/// The dead-letter reason of a held message recovery cannot read, worded as the Redis
/// broker's (`scripts::RECOVER`).
const UNRECOVERABLE: &str = "unacked entry is not [envelope, exchange, routing_key]";

/// The dead-letter reason of a message over the size limit, worded as the Redis broker's.
fn oversize_reason(size: usize, limit: usize) -> String {
    format!("message is {size} bytes, over the limit of {limit} (TASKQ_MAX_MESSAGE_SIZE)")
}

/// A copy of an envelope whose tag is already held gets a tag of its own, in its envelope
/// too, as the Redis fetch script does (see [`edit::copy_tag`]).
fn own_tag(unacked: &HashMap<String, Delivery>, tag: String, raw: Arc<str>) -> (String, Arc<str>) {
    if !unacked.contains_key(&tag) {
        return (tag, raw);
    }
    let fresh = (1..)
        .map(|n| edit::copy_tag(&tag, n))
        .find(|candidate| !unacked.contains_key(candidate))
        .expect("an unused tag");
    let retagged = edit::with_delivery_tag(&raw, &fresh);
    (fresh, retagged.map_or(raw, Arc::from))
}

/// The delivery tag of an envelope, or the fetch's refusal code and reason, worded as the
/// Redis script's.
fn delivery_tag(raw: &str) -> Result<String, (&'static str, String)> {
    match edit::delivery_tag(raw) {
        Ok(Some(tag)) => Ok(tag),
        Ok(None) => Err((
            super::FETCH_REFUSED_NO_TAG,
            "message has no properties.delivery_tag".to_owned(),
        )),
        Err(e) => Err((
            super::FETCH_REFUSED_NOT_JSON,
            format!("message is not JSON: {e}"),
        )),
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, messages: &[Outgoing]) -> Result<()> {
        {
            let mut state = self.state();
            for m in messages {
                if !state.declared.contains(&m.queue) {
                    state.declared.insert(m.queue.clone());
                }
                let list = self
                    .keys
                    .queue_list(&m.queue, self.keys.priority_bucket(m.priority));
                state
                    .lists
                    .entry(list)
                    .or_default()
                    .push_front(m.envelope.as_str().into());
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn fetch_marking(
        &self,
        queues: &[String],
        max: usize,
        max_bytes: usize,
        mark_started: usize,
    ) -> Result<Fetched> {
        let order = self.keys.fetch_order(queues);
        let fetched = self.take(&order, max, max_bytes, crate::unix_now());
        let starting = fetched.deliveries.iter().take(mark_started);
        self.state().started.extend(starting.map(|d| d.tag.clone()));
        Ok(fetched)
    }

    async fn wait_for_messages(&self, queues: &[String], timeout: Duration) -> Result<()> {
        // Register interest before looking, so a publish in between is not missed.
        let arrived = self.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if queues.iter().any(|q| !self.is_empty(q)) {
            return Ok(());
        }
        let _ = tokio::time::timeout(timeout, arrived).await;
        Ok(())
    }

    async fn ack(&self, tags: &[String]) -> Result<()> {
        let mut state = self.state();
        for tag in tags {
            state.release(tag);
        }
        Ok(())
    }

    async fn requeue(&self, deliveries: &[Delivery]) -> Result<()> {
        {
            let mut state = self.state();
            for d in deliveries {
                if state.release(&d.tag).is_some() {
                    state
                        .lists
                        .entry(d.source.clone())
                        .or_default()
                        .push_back(d.raw.clone());
                }
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn defer(&self, delivery: &Delivery, eta: f64) -> Result<()> {
        let mut state = self.state();
        // The delivery given, not the one held: a retry parks its next attempt's envelope.
        if state.release(&delivery.tag).is_some() {
            let due = ((eta * 1e6) as i64, delivery.tag.clone());
            state.eta.insert(due, delivery.clone());
        }
        Ok(())
    }

    async fn promote_due(&self, max: usize) -> Result<Promoted> {
        let now = (crate::unix_now() * 1e6) as i64;
        let mut moved = 0;
        let next_due = {
            let mut state = self.state();
            while moved < max {
                let Some(entry) = state.eta.first_entry() else {
                    break;
                };
                if entry.key().0 > now {
                    break;
                }
                let d = entry.remove();
                state
                    .lists
                    .entry(d.source.clone())
                    .or_default()
                    .push_back(d.raw);
                moved += 1;
            }
            state.eta.keys().next().map(|(due, _)| *due as f64 / 1e6)
        };
        if moved > 0 {
            self.arrived.notify_waiters();
        }
        Ok(Promoted { moved, next_due })
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let mut state = self.state();
        if state.release(&delivery.tag).is_some() {
            state.dead.push_front(DeadLetter {
                reason: reason.to_owned(),
                queue: delivery.queue.clone(),
                payload: delivery.raw.to_string(),
                time: crate::unix_now(),
            });
        }
        Ok(())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.state().dead.iter().take(max).cloned().collect())
    }

    async fn requeue_dead_letters(&self, max: usize) -> Result<usize> {
        let mut moved = 0;
        {
            let mut state = self.state();
            while moved < max {
                match state.dead.back() {
                    Some(dead) if !dead.queue.is_empty() => {
                        let dead = state.dead.pop_back().expect("just seen");
                        self.return_to_queue(&mut state, dead);
                        moved += 1;
                    }
                    _ => break,
                }
            }
        }
        if moved > 0 {
            self.arrived.notify_waiters();
        }
        Ok(moved)
    }

    async fn requeue_dead_letters_matching(
        &self,
        max: usize,
        which: &DeadLetterMatch,
    ) -> Result<usize> {
        let mut moved = 0;
        {
            let mut state = self.state();
            let mut i = state.dead.len();
            while i > 0 && moved < max {
                i -= 1;
                let dead = &state.dead[i];
                if dead.queue.is_empty() || !which.matches(dead) {
                    continue;
                }
                let dead = state.dead.remove(i).expect("just seen");
                self.return_to_queue(&mut state, dead);
                moved += 1;
            }
        }
        if moved > 0 {
            self.arrived.notify_waiters();
        }
        Ok(moved)
    }

    async fn renew(&self, tags: &[String]) -> Result<Vec<String>> {
        let now = crate::unix_now();
        let mut state = self.state();
        let mut lost = Vec::new();
        for tag in tags {
            if state.unacked.contains_key(tag) {
                state.leases.insert(tag.clone(), now);
            } else {
                lost.push(tag.clone());
            }
        }
        Ok(lost)
    }

    /// Every holder of a memory broker's messages is a taskq worker in this process, so
    /// every message has a lease: `after.leased` applies.
    async fn recover(&self, after: RecoverAfter, max: usize) -> Result<usize> {
        let cutoff = crate::unix_now() - after.leased().as_secs_f64();
        let restored = {
            let mut state = self.state();
            // Oldest lease first, as the Redis script reads its lease zset.
            let mut stale: Vec<(f64, String)> = state
                .leases
                .iter()
                .filter(|(_, renewed)| **renewed <= cutoff)
                .map(|(tag, renewed)| (*renewed, tag.clone()))
                .collect();
            stale.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            stale.truncate(max);
            let mut restored = 0;
            for (_, tag) in stale {
                let started = state.started.contains(&tag);
                let Some(held) = state.release(&tag) else {
                    continue;
                };
                match edit::recovered(&held.raw, &tag, started) {
                    Ok(recovered) => {
                        state
                            .lists
                            .entry(held.source.clone())
                            .or_default()
                            .push_back(recovered.raw.into());
                        restored += 1;
                    }
                    Err(_) => state.dead.push_front(DeadLetter {
                        reason: UNRECOVERABLE.to_owned(),
                        queue: String::new(),
                        payload: held.raw.to_string(),
                        time: crate::unix_now(),
                    }),
                }
            }
            restored
        };
        if restored > 0 {
            self.arrived.notify_waiters();
        }
        Ok(restored)
    }

    async fn mark_started(&self, tags: &[String]) -> Result<()> {
        self.state().started.extend(tags.iter().cloned());
        Ok(())
    }

    async fn unmark_started(&self, tags: &[String]) -> Result<()> {
        let mut state = self.state();
        for tag in tags {
            state.started.remove(tag);
        }
        Ok(())
    }

    async fn eviction_policy(&self) -> Result<Option<String>> {
        Ok(None)
    }

    fn detached(&self) -> Result<Arc<dyn Broker>> {
        Ok(MemoryBroker::named(&self.name))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn server_time(&self) -> Result<f64> {
        Ok(crate::unix_now())
    }

    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        Ok(self.state().paused.insert(queue.to_owned()))
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        Ok(self.state().paused.remove(queue))
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        Ok(self.state().paused.iter().cloned().collect())
    }

    async fn record_revokes(&self, ids: &[String]) -> Result<()> {
        let now = crate::unix_now();
        let mut state = self.state();
        for id in ids {
            state.revoked.record(id, now, now);
        }
        Ok(())
    }

    async fn revokes_since(&self, since: f64) -> Result<Revoked> {
        let now = crate::unix_now();
        let mut state = self.state();
        state.revoked.trim(now);
        let ids = state
            .revoked
            .entries()
            .filter(|(_, at)| *at >= since)
            .map(|(id, at)| (id.to_owned(), at))
            .collect();
        Ok(Revoked { now, ids })
    }

    async fn broadcast(&self, exchange: &str, _routing_key: &str, envelope: &str) -> Result<()> {
        // No subscriber is not an error: fanout messages are fire-and-forget.
        let _ = self.fanout_sender(exchange).send(envelope.to_owned());
        Ok(())
    }

    async fn subscribe_broadcast(&self, exchange: &str) -> Result<Subscription> {
        let mut source = self.fanout_sender(exchange).subscribe();
        let (tx, rx) = mpsc::channel(super::SUBSCRIPTION_BUFFER);
        let feeder = tokio::spawn(async move {
            loop {
                match source.recv().await {
                    Ok(envelope) => {
                        if tx.send(envelope).await.is_err() {
                            return;
                        }
                    }
                    // A slow reader loses messages, as with Redis Pub/Sub.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Subscription::new(rx, feeder.abort_handle()))
    }

    async fn bind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        let mut state = self.state();
        let bindings = state.bindings.entry(exchange.to_owned()).or_default();
        let binding = (routing_key.to_owned(), queue.to_owned());
        if !bindings.contains(&binding) {
            bindings.push(binding);
        }
        Ok(())
    }

    async fn unbind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        let mut state = self.state();
        if let Some(bindings) = state.bindings.get_mut(exchange) {
            bindings.retain(|(key, q)| !(key == routing_key && q == queue));
        }
        Ok(())
    }

    async fn pop(&self, queue: &str, timeout: Duration) -> Result<Option<String>> {
        let list = self.keys.queue_list(queue, 0);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let popped = self
                .state()
                .lists
                .get_mut(&list)
                .and_then(VecDeque::pop_back);
            if let Some(message) = popped {
                return Ok(Some(message.to_string()));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn purge(&self, queues: &[String]) -> Result<usize> {
        let mut state = self.state();
        let purged = self
            .keys
            .fetch_order(queues)
            .iter()
            .filter_map(|(list, _)| state.lists.remove(list))
            .map(|messages| messages.len())
            .sum();
        Ok(purged)
    }

    async fn fire_scheduled(&self, entry: &str, slot_ms: i64, message: &Outgoing) -> Result<bool> {
        {
            let mut state = self.state();
            if state
                .beat_slots
                .get(entry)
                .is_some_and(|last| *last >= slot_ms)
            {
                return Ok(false);
            }
            state.beat_slots.insert(entry.to_owned(), slot_ms);
        }
        self.publish(std::slice::from_ref(message)).await?;
        Ok(true)
    }

    async fn start_schedule(&self, entry: &str, slot_ms: i64) -> Result<()> {
        self.state()
            .beat_slots
            .entry(entry.to_owned())
            .or_insert(slot_ms);
        Ok(())
    }

    async fn last_fired(&self, entry: &str) -> Result<Option<i64>> {
        Ok(self.state().beat_slots.get(entry).copied())
    }

    async fn lead(&self, token: &str, lease: Duration) -> Result<bool> {
        let mut state = self.state();
        let now = std::time::Instant::now();
        let free = match &state.beat_leader {
            Some((holder, until)) => holder == token || *until <= now,
            None => true,
        };
        if free {
            state.beat_leader = Some((token.to_owned(), now + lease));
        }
        Ok(free)
    }

    async fn resign(&self, token: &str) -> Result<()> {
        let mut state = self.state();
        if state
            .beat_leader
            .as_ref()
            .is_some_and(|(holder, _)| holder == token)
        {
            state.beat_leader = None;
        }
        Ok(())
    }

    async fn take_turns(&self, task: &str, interval: Duration, count: u32) -> Result<Duration> {
        let now = std::time::Instant::now();
        let mut state = self.state();
        let next_free = state.rate_turns.entry(task.to_owned()).or_insert(now);
        let turn = (*next_free).max(now);
        *next_free = turn + interval * count;
        Ok(turn - now)
    }

    async fn publish_unique(
        &self,
        key: &str,
        task_id: &str,
        ttl: Duration,
        message: &Outgoing,
    ) -> Result<Option<String>> {
        let now = std::time::Instant::now();
        {
            let mut state = self.state();
            if let Some((holder, until)) = state.unique_locks.get(key) {
                if *until > now {
                    return Ok(Some(holder.clone()));
                }
            }
            state
                .unique_locks
                .insert(key.to_owned(), (task_id.to_owned(), now + ttl));
        }
        self.publish(std::slice::from_ref(message)).await?;
        Ok(None)
    }

    async fn release_unique(&self, key: &str, task_id: &str) -> Result<()> {
        let mut state = self.state();
        if state
            .unique_locks
            .get(key)
            .is_some_and(|(holder, _)| holder == task_id)
        {
            state.unique_locks.remove(key);
        }
        Ok(())
    }

    async fn queue_stats(&self, queues: &[String]) -> Result<Vec<QueueStats>> {
        let mut stats = std::collections::BTreeMap::new();
        {
            let state = self.state();
            let names: Vec<String> = if queues.is_empty() {
                state.declared.iter().cloned().collect()
            } else {
                queues.to_vec()
            };
            for name in names {
                stats.entry(name.clone()).or_insert_with(|| QueueStats {
                    queue: name,
                    ..QueueStats::default()
                });
            }
            let held = state.unacked.values().map(|d| d.queue.as_str());
            super::tally(&mut stats, held, |s| &mut s.unacked);
            let parked = state.eta.values().map(|d| d.queue.as_str());
            super::tally(&mut stats, parked, |s| &mut s.scheduled);
            let dead = state
                .dead
                .iter()
                .map(|d| d.queue.as_str())
                .filter(|q| !q.is_empty());
            super::tally(&mut stats, dead, |s| &mut s.dead_letters);
        }
        let mut selected = super::select_stats(stats, queues);
        for entry in &mut selected {
            entry.waiting = self.len(&entry.queue);
        }
        Ok(selected)
    }

    async fn publish_direct(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &str,
    ) -> Result<usize> {
        let delivered = {
            let mut state = self.state();
            let queues: Vec<String> = state
                .bindings
                .get(exchange)
                .into_iter()
                .flatten()
                .filter(|(key, _)| key == routing_key)
                .map(|(_, queue)| self.keys.queue_list(queue, 0))
                .collect();
            for list in &queues {
                state
                    .lists
                    .entry(list.clone())
                    .or_default()
                    .push_front(envelope.into());
            }
            queues.len()
        };
        self.arrived.notify_waiters();
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(tag: &str, attempt: u32) -> String {
        serde_json::json!({"attempt": attempt, "properties": {"delivery_tag": tag}}).to_string()
    }

    #[tokio::test]
    async fn a_deferred_retry_comes_back_with_its_new_envelope_and_releases_everything() {
        let broker = MemoryBroker::named("memory-defer-test");
        let outgoing = Outgoing {
            queue: "celery".to_owned(),
            priority: 0,
            envelope: envelope("t1", 0),
        };
        broker.publish(&[outgoing]).await.unwrap();
        let held = broker.fetch(&["celery".into()], 1, 1 << 20).await.unwrap();
        let first = held.deliveries[0].clone();
        broker
            .mark_started(std::slice::from_ref(&first.tag))
            .await
            .unwrap();

        let next = Delivery {
            raw: envelope("t1", 1).into(),
            ..first
        };
        broker.defer(&next, crate::unix_now() - 1.0).await.unwrap();
        {
            let state = broker.state();
            assert!(
                state.unacked.is_empty() && state.leases.is_empty() && state.started.is_empty()
            );
        }
        assert_eq!(broker.promote_due(10).await.unwrap().moved, 1);
        let again = broker.fetch(&["celery".into()], 1, 1 << 20).await.unwrap();
        assert_eq!(&*again.deliveries[0].raw, envelope("t1", 1));
    }
}
