//! The Redis Cluster broker: every queue split into shards spread over the cluster's masters.
//!
//! A shard is a [`RedisBroker`] whose keys all carry one hash tag
//! ([`BrokerKeys::in_shard`]): its queue lists, `unacked`, leases, started set, ETA schedule
//! and dead letters share a hash slot, so each of its scripts and pipelines runs on one master,
//! exactly as on a standalone Redis. Shard `i` of `N` takes a tag whose slot lies in the `i`-th
//! of `N` equal slot ranges ([`shard_tag`]), so on a cluster whose masters hold contiguous
//! ranges (as `redis-cli --cluster create` makes them) the shards spread evenly over the
//! masters.
//!
//! - A send goes whole to one shard, the next send to the next shard: a call that returns an
//!   error queued nothing elsewhere. A unique call goes to the shard of its key (where its lock
//!   is), a periodic entry to the shard of its name (where its fired slots are).
//! - A fetch starts at the next shard in turn and takes what it still may from the others, so
//!   no shard waits behind a busy one; an idle worker blocks on every shard's lists at once.
//!   A shard that does not answer (its master died and its replica is not promoted yet) is
//!   passed by until a wait on it answers again, and the log says when it stops and starts
//!   answering; a fetch fails only when no shard answers.
//! - A message's delivery tag is prefixed with its shard's index (`2|<tag>`), so an ack, a
//!   renewal or a requeue goes to the shard that holds it without asking anyone.
//! - Recovery, ETA promotion, dead letters, purges and queue counts go to every shard; what
//!   has one copy (revokes, paused queues, the scheduler's lead, remote control's replies and
//!   bindings) lives in shard 0. Rate-limit turns go to the shard of their task.
//!
//! The number of shards is the URL's `shards` parameter ([`DEFAULT_SHARDS`] when absent). The
//! first process to use a cluster records it there; a process whose count differs refuses to
//! run (its sends would go where workers do not look).
//!
//! This layout is taskq's own: kombu has no cluster transport, so Python Celery cannot share a
//! cluster with taskq. On a standalone or Sentinel Redis, taskq keeps kombu's layout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::try_join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::OnceCell;

use super::redis::RedisBroker;
use super::{
    Broker, DeadLetter, DeadLetterMatch, Delivery, Fetched, Outgoing, Promoted, QueueStats,
    RecoverAfter, Subscription,
};
pub use crate::cluster::shard_tag;
use crate::cluster::{hash_slot, ClusterUrl};
use crate::config::mask_url;
use crate::connection::{Endpoint, LazyConnection};
use crate::keys::BrokerKeys;
use crate::revoke::Revoked;
use crate::{Error, Result};

/// Shards per queue when the URL does not say: as many as 1, 2, 3 or 6 masters divide evenly.
pub const DEFAULT_SHARDS: usize = 6;

/// Separates a shard's index from the delivery tag the shard knows a message by.
const TAG_SEP: char = '|';

/// A broker on a Redis Cluster, its queues split into shards (see the [module docs](self)).
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// use taskq::broker::Broker;
///
/// let broker = taskq::broker::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001?shards=6")?;
/// broker.ping().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClusterBroker {
    url: String,
    /// The key names before a shard's tag is added.
    keys: BrokerKeys,
    shards: Vec<RedisBroker>,
    /// The shard the next send goes to.
    next_send: AtomicUsize,
    /// The shard the next fetch starts at.
    next_fetch: AtomicUsize,
    /// Set once the cluster's recorded shard count matched ours.
    layout_checked: OnceCell<()>,
    /// Which shards a fetch could not reach.
    health: ShardHealth,
}

/// Since when each shard has failed to answer a fetch (`None` while it answers), so that the
/// log says once that a shard stopped answering and once that it answers again, not at every
/// fetch in between.
#[derive(Debug)]
struct ShardHealth {
    failing_since: Mutex<Vec<Option<Instant>>>,
    /// How many shards are failing: what answers check before taking the lock.
    failing: AtomicUsize,
}

impl ShardHealth {
    fn new(shards: usize) -> Self {
        Self {
            failing_since: Mutex::new(vec![None; shards]),
            failing: AtomicUsize::new(0),
        }
    }

    fn failed(&self, index: usize, error: &Error) {
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if since[index].is_none() {
            since[index] = Some(Instant::now());
            self.failing.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(shard = index, %error, "Redis Cluster: a shard does not answer; fetching from the others until it does");
        }
    }

    /// Whether `index` failed to answer last time, while at least one other shard answered:
    /// a fetch passes it by (on the cluster's shared connection, a command to a dead master
    /// waits for the promotion, and would hold up what the other shards handed over), and
    /// the next wait, on a connection of its own, finds whether it answers again.
    fn passed_by(&self, index: usize) -> bool {
        let failing = self.failing.load(Ordering::Relaxed);
        if failing == 0 {
            return false;
        }
        let since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        failing < since.len() && since[index].is_some()
    }

    fn answered(&self, index: usize) {
        if self.failing.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(failed_at) = since[index].take() {
            self.failing.fetch_sub(1, Ordering::Relaxed);
            tracing::info!(
                shard = index,
                after = ?failed_at.elapsed(),
                "Redis Cluster: the shard answers again"
            );
        }
    }
}

impl ClusterBroker {
    /// A broker on the cluster `url` names (`redis+cluster://` or `rediss+cluster://`), with
    /// `keys`' prefix and priority steps in every shard. Connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the URL is not a valid cluster URL.
    ///
    /// ```
    /// use taskq::broker::{cluster::ClusterBroker, Broker};
    ///
    /// let broker = ClusterBroker::with_keys("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000?shards=3",
    ///                                       taskq::keys::BrokerKeys::default())?;
    /// assert_eq!(broker.shard_count(), 3);
    /// assert_eq!(broker.describe(), "redis+cluster://:**@10.0.0.1:7000,10.0.0.2:7000?shards=3");
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn with_keys(url: &str, keys: BrokerKeys) -> Result<Self> {
        Self::on(Endpoint::open(url)?, url, keys)
    }

    fn on(endpoint: Endpoint, url: &str, keys: BrokerKeys) -> Result<Self> {
        let count = ClusterUrl::parse(url)?.shards.unwrap_or(DEFAULT_SHARDS);
        let shards = (0..count)
            .map(|index| {
                let conn = LazyConnection::on(endpoint.clone(), url)?;
                let keys = keys.clone().in_shard(&shard_tag(index, count));
                Ok(RedisBroker::on(conn, url, keys))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            url: url.to_owned(),
            keys,
            shards,
            next_send: AtomicUsize::new(random_start()),
            next_fetch: AtomicUsize::new(random_start()),
            layout_checked: OnceCell::new(),
            health: ShardHealth::new(count),
        })
    }

    /// How many shards each queue is split into.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard 0, home of what has one copy.
    fn home(&self) -> &RedisBroker {
        &self.shards[0]
    }

    /// The shard a name belongs to (a unique key, a periodic entry, a task's rate limit): the
    /// same in every process.
    fn shard_of(&self, name: &str) -> &RedisBroker {
        &self.shards[usize::from(hash_slot(name)) % self.shards.len()]
    }

    /// Checks, once, that the cluster is split into as many shards as this broker splits it:
    /// the first process records its count, the others compare theirs.
    async fn ready(&self) -> Result<&Self> {
        self.layout_checked
            .get_or_try_init(|| async {
                let key = self.keys.cluster_shards();
                let mut conn = self.home().connection().await?;
                let (recorded,): (usize,) = redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(self.shards.len())
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                if recorded != self.shards.len() {
                    return Err(Error::Config(format!(
                        "this cluster's queues are split into {recorded} shards (recorded in \
                         {key}), but this process splits them into {}: set shards={recorded} \
                         in the URL",
                        self.shards.len()
                    )));
                }
                Ok(())
            })
            .await?;
        Ok(self)
    }

    /// A shard's tag as this broker hands it out: prefixed with the shard's index.
    fn outward_tag(index: usize, tag: &str) -> String {
        format!("{index}{TAG_SEP}{tag}")
    }

    /// The delivery as this broker hands it out (see [`outward_tag`](Self::outward_tag)).
    fn outward(index: usize, mut delivery: Delivery) -> Delivery {
        delivery.tag = Self::outward_tag(index, &delivery.tag);
        delivery
    }

    /// The shard index and the shard's own tag of a tag this broker handed out.
    fn split_tag(tag: &str) -> Result<(usize, &str)> {
        tag.split_once(TAG_SEP)
            .and_then(|(index, tag)| Some((index.parse().ok()?, tag)))
            .ok_or_else(|| Error::Config(format!("delivery tag {tag:?} names no cluster shard")))
    }

    /// [`split_tag`](Self::split_tag), for a shard this broker has.
    fn shard_and_tag<'t>(&self, tag: &'t str) -> Result<(usize, &'t str)> {
        let (index, inner) = Self::split_tag(tag)?;
        if index >= self.shards.len() {
            return Err(Error::Config(format!(
                "delivery tag of shard {index}, but this broker has {} shards",
                self.shards.len()
            )));
        }
        Ok((index, inner))
    }

    /// Tags grouped by the shard holding them, each as that shard knows it.
    fn tags_by_shard(&self, tags: &[String]) -> Result<BTreeMap<usize, Vec<String>>> {
        let mut by_shard: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for tag in tags {
            let (index, inner) = self.shard_and_tag(tag)?;
            by_shard.entry(index).or_default().push(inner.to_owned());
        }
        Ok(by_shard)
    }

    /// Runs `each` at once on every shard holding some of `tags`, with the tags as that shard
    /// knows them.
    async fn on_shards_holding<'a, F, Fut>(&'a self, tags: &[String], each: F) -> Result<()>
    where
        F: Fn(&'a RedisBroker, Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let by_shard = self.tags_by_shard(tags)?;
        let calls = by_shard
            .into_iter()
            .map(|(index, tags)| each(&self.shards[index], tags));
        try_join_all(calls).await.map(drop)
    }

    /// Deliveries grouped by the shard holding them, each with the shard's own tag.
    fn deliveries_by_shard(
        &self,
        deliveries: &[Delivery],
    ) -> Result<BTreeMap<usize, Vec<Delivery>>> {
        let mut by_shard: BTreeMap<usize, Vec<Delivery>> = BTreeMap::new();
        for delivery in deliveries {
            let (index, inner) = self.inward(delivery)?;
            by_shard.entry(index).or_default().push(inner);
        }
        Ok(by_shard)
    }

    /// A delivery as its shard knows it, and the shard's index.
    fn inward(&self, delivery: &Delivery) -> Result<(usize, Delivery)> {
        let (index, tag) = self.shard_and_tag(&delivery.tag)?;
        let mut inner = delivery.clone();
        inner.tag = tag.to_owned();
        Ok((index, inner))
    }

    /// Asks one shard after the other to move at most what is left of `max` (`each(shard,
    /// left)` returns how many it moved), until `max` have moved or every shard was asked.
    async fn until_moved<'a, F, Fut>(&'a self, max: usize, each: F) -> Result<usize>
    where
        F: Fn(&'a RedisBroker, usize) -> Fut,
        Fut: std::future::Future<Output = Result<usize>>,
    {
        self.ready().await?;
        let mut moved = 0;
        for shard in &self.shards {
            if moved >= max {
                break;
            }
            moved += each(shard, max - moved).await?;
        }
        Ok(moved)
    }

    /// Runs `each` on every shard at once; the results in shard order.
    async fn on_every_shard<'a, T, F, Fut>(&'a self, each: F) -> Result<Vec<T>>
    where
        F: Fn(&'a RedisBroker) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.ready().await?;
        try_join_all(self.shards.iter().map(each)).await
    }
}

/// Where a process's turns over the shards start: a process that sends one message and exits
/// (a command line, a cron job) would otherwise always send to shard 0.
fn random_start() -> usize {
    use std::hash::{BuildHasher, Hasher};
    // A std `RandomState` is seeded at random per process.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as usize
}

#[async_trait]
impl Broker for ClusterBroker {
    async fn publish(&self, messages: &[Outgoing]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let index = self.next_send.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.ready().await?.shards[index].publish(messages).await
    }

    async fn fetch_marking(
        &self,
        queues: &[String],
        max: usize,
        max_bytes: usize,
        mark_started: usize,
    ) -> Result<Fetched> {
        self.ready().await?;
        let count = self.shards.len();
        let first = self.next_fetch.fetch_add(1, Ordering::Relaxed) % count;
        let mut fetched = Fetched::default();
        let mut first_error = None;
        let mut answered = false;
        for index in (first..first + count).map(|i| i % count) {
            let taken = fetched.deliveries.len();
            if taken >= max {
                break;
            }
            if self.health.passed_by(index) {
                continue;
            }
            let part = self.shards[index]
                .fetch_marking(
                    queues,
                    max - taken,
                    max_bytes,
                    mark_started.saturating_sub(taken),
                )
                .await;
            // What other shards handed over is this worker's now: an error here must not
            // drop it (it would wait in `unacked` for recovery).
            let part = match part {
                Ok(part) => {
                    self.health.answered(index);
                    answered = true;
                    part
                }
                Err(e) => {
                    self.health.failed(index, &e);
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if fetched.now == 0.0 {
                fetched.now = part.now;
            }
            fetched
                .deliveries
                .extend(part.deliveries.into_iter().map(|d| Self::outward(index, d)));
            fetched.refused.extend(part.refused);
        }
        match first_error {
            Some(e) if !answered => Err(e),
            _ => Ok(fetched),
        }
    }

    async fn wait_for_messages(&self, queues: &[String], timeout: Duration) -> Result<()> {
        self.ready().await?;
        // The first shard to wake (or to time out) ends the wait; one that fails is passed by
        // while the others wait, and the wait fails only when every shard failed.
        let mut waits: FuturesUnordered<_> =
            self.shards
                .iter()
                .enumerate()
                .map(|(index, shard)| async move {
                    (index, shard.wait_for_messages(queues, timeout).await)
                })
                .collect();
        let mut first_error = None;
        while let Some((index, outcome)) = waits.next().await {
            match outcome {
                Ok(()) => {
                    self.health.answered(index);
                    return Ok(());
                }
                Err(e) => {
                    self.health.failed(index, &e);
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("a cluster broker has at least one shard"))
    }

    async fn ack(&self, tags: &[String]) -> Result<()> {
        self.on_shards_holding(tags, |shard, tags| async move { shard.ack(&tags).await })
            .await
    }

    async fn requeue(&self, deliveries: &[Delivery]) -> Result<()> {
        let by_shard = self.deliveries_by_shard(deliveries)?;
        let requeues = by_shard
            .iter()
            .map(|(index, deliveries)| self.shards[*index].requeue(deliveries));
        try_join_all(requeues).await.map(drop)
    }

    async fn defer(&self, delivery: &Delivery, eta: f64) -> Result<()> {
        let (index, inner) = self.inward(delivery)?;
        self.shards[index].defer(&inner, eta).await
    }

    async fn promote_due(&self, max: usize) -> Result<Promoted> {
        let each = self.on_every_shard(|shard| shard.promote_due(max)).await?;
        Ok(Promoted {
            moved: each.iter().map(|p| p.moved).sum(),
            next_due: each.iter().filter_map(|p| p.next_due).reduce(f64::min),
        })
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let (index, inner) = self.inward(delivery)?;
        self.shards[index].dead_letter(&inner, reason).await
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>> {
        let each = self.on_every_shard(|shard| shard.dead_letters(max)).await?;
        let mut all: Vec<DeadLetter> = each.into_iter().flatten().collect();
        // Newest first, as one list gives them.
        all.sort_by(|a, b| b.time.total_cmp(&a.time));
        all.truncate(max);
        Ok(all)
    }

    async fn requeue_dead_letters(&self, max: usize) -> Result<usize> {
        self.until_moved(max, |shard, left| shard.requeue_dead_letters(left))
            .await
    }

    async fn requeue_dead_letters_matching(
        &self,
        max: usize,
        which: &DeadLetterMatch,
    ) -> Result<usize> {
        self.until_moved(max, |shard, left| {
            shard.requeue_dead_letters_matching(left, which)
        })
        .await
    }

    async fn renew(&self, tags: &[String]) -> Result<Vec<String>> {
        let by_shard = self.tags_by_shard(tags)?;
        let renewals = by_shard.iter().map(|(index, tags)| async move {
            let lost = self.shards[*index].renew(tags).await?;
            Ok::<_, Error>(
                lost.into_iter()
                    .map(move |tag| Self::outward_tag(*index, &tag)),
            )
        });
        Ok(try_join_all(renewals)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn recover(&self, after: RecoverAfter, max: usize) -> Result<usize> {
        let each = self
            .on_every_shard(|shard| shard.recover(after, max))
            .await?;
        Ok(each.into_iter().sum())
    }

    async fn mark_started(&self, tags: &[String]) -> Result<()> {
        self.on_shards_holding(tags, |shard, tags| async move {
            shard.mark_started(&tags).await
        })
        .await
    }

    async fn unmark_started(&self, tags: &[String]) -> Result<()> {
        self.on_shards_holding(tags, |shard, tags| async move {
            shard.unmark_started(&tags).await
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        // Every shard: a master that is away is reported before a worker says it is ready.
        self.on_every_shard(|shard| shard.ping()).await.map(drop)
    }

    async fn server_time(&self) -> Result<f64> {
        self.home().server_time().await
    }

    async fn eviction_policy(&self) -> Result<Option<String>> {
        let policies = self.on_every_shard(|shard| shard.eviction_policy()).await?;
        // The one to warn about, if any master has one.
        let risky = policies
            .iter()
            .flatten()
            .find(|policy| policy.as_str() != "noeviction");
        Ok(risky.or(policies.iter().flatten().next()).cloned())
    }

    fn detached(&self) -> Result<Arc<dyn Broker>> {
        let endpoint = Endpoint::open_private(&self.url)?;
        Ok(Arc::new(Self::on(endpoint, &self.url, self.keys.clone())?))
    }

    async fn broadcast(&self, exchange: &str, routing_key: &str, envelope: &str) -> Result<()> {
        self.home().broadcast(exchange, routing_key, envelope).await
    }

    async fn subscribe_broadcast(&self, exchange: &str) -> Result<Subscription> {
        self.home().subscribe_broadcast(exchange).await
    }

    async fn bind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        self.home().bind(exchange, routing_key, queue).await
    }

    async fn publish_direct(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &str,
    ) -> Result<usize> {
        self.home()
            .publish_direct(exchange, routing_key, envelope)
            .await
    }

    async fn record_revokes(&self, ids: &[String]) -> Result<()> {
        self.home().record_revokes(ids).await
    }

    async fn revokes_since(&self, since: f64) -> Result<Revoked> {
        self.home().revokes_since(since).await
    }

    async fn pop(&self, queue: &str, timeout: Duration) -> Result<Option<String>> {
        self.home().pop(queue, timeout).await
    }

    async fn unbind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        self.home().unbind(exchange, routing_key, queue).await
    }

    async fn purge(&self, queues: &[String]) -> Result<usize> {
        let each = self.on_every_shard(|shard| shard.purge(queues)).await?;
        Ok(each.into_iter().sum())
    }

    async fn queue_stats(&self, queues: &[String]) -> Result<Vec<QueueStats>> {
        let each = self
            .on_every_shard(|shard| shard.queue_stats(queues))
            .await?;
        let mut merged: BTreeMap<String, QueueStats> = BTreeMap::new();
        for stats in each.into_iter().flatten() {
            let entry = merged
                .entry(stats.queue.clone())
                .or_insert_with(|| QueueStats {
                    queue: stats.queue.clone(),
                    ..QueueStats::default()
                });
            entry.waiting += stats.waiting;
            entry.unacked += stats.unacked;
            entry.scheduled += stats.scheduled;
            entry.dead_letters += stats.dead_letters;
        }
        Ok(super::select_stats(merged, queues))
    }

    async fn fire_scheduled(&self, entry: &str, slot_ms: i64, message: &Outgoing) -> Result<bool> {
        self.ready()
            .await?
            .shard_of(entry)
            .fire_scheduled(entry, slot_ms, message)
            .await
    }

    async fn start_schedule(&self, entry: &str, slot_ms: i64) -> Result<()> {
        self.shard_of(entry).start_schedule(entry, slot_ms).await
    }

    async fn last_fired(&self, entry: &str) -> Result<Option<i64>> {
        self.shard_of(entry).last_fired(entry).await
    }

    async fn lead(&self, token: &str, lease: Duration) -> Result<bool> {
        self.home().lead(token, lease).await
    }

    async fn resign(&self, token: &str) -> Result<()> {
        self.home().resign(token).await
    }

    async fn take_turns(&self, task: &str, interval: Duration, count: u32) -> Result<Duration> {
        self.shard_of(task).take_turns(task, interval, count).await
    }

    async fn publish_unique(
        &self,
        key: &str,
        task_id: &str,
        ttl: Duration,
        message: &Outgoing,
    ) -> Result<Option<String>> {
        self.ready()
            .await?
            .shard_of(key)
            .publish_unique(key, task_id, ttl, message)
            .await
    }

    async fn release_unique(&self, key: &str, task_id: &str) -> Result<()> {
        self.shard_of(key).release_unique(key, task_id).await
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        self.home().pause_queue(queue).await
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        self.home().resume_queue(queue).await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.home().paused_queues().await
    }

    fn describe(&self) -> String {
        mask_url(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_their_shard() {
        let delivery = Delivery {
            tag: "abc".into(),
            queue: "q".into(),
            source: "{taskq.1.0}q".into(),
            raw: "{}".into(),
        };
        let out = ClusterBroker::outward(1, delivery);
        assert_eq!(out.tag, "1|abc");
        assert_eq!(ClusterBroker::split_tag(&out.tag).unwrap(), (1, "abc"));
        // A kombu tag may hold anything after the shard's prefix.
        assert_eq!(ClusterBroker::split_tag("0|a|b").unwrap(), (0, "a|b"));
        assert!(ClusterBroker::split_tag("abc").is_err());
    }
}
