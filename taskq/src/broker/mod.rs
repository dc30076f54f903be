//! The broker: where task messages wait until a worker takes them.
//!
//! [`Broker`] is the contract; [`redis::RedisBroker`] speaks kombu's Redis layout and
//! [`memory::MemoryBroker`] gives the same semantics inside one process.
//!
//! The life of a message:
//!
//! ```text
//!  publish ──► queue list ──fetch──► unacked ──ack──► (gone; the result is stored first)
//!                 ▲                   │  │
//!                 └──── requeue ──────┘  ├──defer──► eta schedule ──promote──► queue list
//!                                        └──dead_letter──► dead-letter list (with a reason)
//! ```
//!
//! Every arrow is one atomic step in the store: a message is never only in a worker's memory.
//!
//! Besides task queues, a broker carries kombu's two other kinds of exchange, used by remote
//! control and events: fanout exchanges ([`Broker::broadcast`], [`Broker::subscribe_broadcast`];
//! Redis Pub/Sub, fire-and-forget) and direct exchanges routed through a binding table
//! ([`Broker::publish_direct`]; how remote-control replies reach the asking client). It also
//! keeps the set of revoked task ids ([`Broker::record_revokes`], [`Broker::revokes_since`]),
//! so that a revoke holds with no worker listening.

pub mod cluster;
pub mod memory;
mod pubsub;
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::connection;
use crate::keys::BrokerKeys;
use crate::protocol::{DecodeError, DecodeErrorKind};
use crate::Result;

/// Opens the broker named by `url`: `redis://`, `rediss://`, `unix://` or `memory://[name]`.
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) for an unknown scheme, [`Error::Redis`](crate::Error::Redis)
/// for a bad Redis URL.
///
/// ```
/// let broker = taskq::broker::open("memory://docs")?;
/// assert_eq!(broker.describe(), "memory://docs");
/// # Ok::<(), taskq::Error>(())
/// ```
pub fn open(url: &str) -> Result<Arc<dyn Broker>> {
    open_with_keys(url, BrokerKeys::default())
}

/// Like [`open`], with key names built by `keys` (prefix, priority separator and steps).
///
/// # Errors
///
/// As [`open`].
///
/// ```
/// use taskq::keys::BrokerKeys;
///
/// let keys = BrokerKeys::default().with_priority_steps(&[0, 5, 7]);
/// let broker = taskq::broker::open_with_keys("memory://steps", keys)?;
/// assert_eq!(broker.describe(), "memory://steps");
/// # Ok::<(), taskq::Error>(())
/// ```
pub fn open_with_keys(url: &str, keys: BrokerKeys) -> Result<Arc<dyn Broker>> {
    match connection::scheme(url) {
        "memory" => Ok(memory::MemoryBroker::named_with_keys(
            connection::memory_name(url),
            keys,
        )),
        "redis+cluster" | "rediss+cluster" => {
            Ok(Arc::new(cluster::ClusterBroker::with_keys(url, keys)?))
        }
        scheme if connection::is_redis_scheme(scheme) => {
            Ok(Arc::new(redis::RedisBroker::with_keys(url, keys)?))
        }
        other => Err(crate::Error::Config(format!(
            "broker URL scheme {other:?} is not supported (use redis://, rediss://, sentinel://, \
             redis+cluster:// or memory://)"
        ))),
    }
}

/// Envelopes arriving on a fanout exchange, from [`Broker::subscribe_broadcast`]. Dropping it
/// ends the subscription.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker};
///
/// let broker = MemoryBroker::named("subscription-doc");
/// let mut sub = broker.subscribe_broadcast("celery.pidbox").await?;
/// broker.broadcast("celery.pidbox", "", "{}").await?;
/// assert_eq!(sub.recv().await.as_deref(), Some("{}"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    messages: mpsc::Receiver<String>,
    /// The task feeding `messages`, stopped when the subscription is dropped.
    feeder: AbortHandle,
}

impl Subscription {
    /// A subscription reading `messages`, fed by the task `feeder`.
    pub(crate) fn new(messages: mpsc::Receiver<String>, feeder: AbortHandle) -> Self {
        Self { messages, feeder }
    }

    /// The next envelope; `None` once the subscription has ended for good.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// use taskq::broker::{memory::MemoryBroker, Broker};
    ///
    /// let broker = MemoryBroker::named("recv-doc");
    /// let mut sub = broker.subscribe_broadcast("celeryev").await?;
    /// broker.broadcast("celeryev", "worker.heartbeat", "hb").await?;
    /// assert_eq!(sub.recv().await.as_deref(), Some("hb"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an envelope is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<String> {
        self.messages.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

/// How many envelopes a subscription buffers before the feeder waits for the reader.
pub(crate) const SUBSCRIPTION_BUFFER: usize = 1024;

/// A message to publish.
///
/// ```
/// use taskq::{broker::Outgoing, protocol::NewMessage};
///
/// let outgoing = Outgoing {
///     queue: "celery".into(),
///     priority: 0,
///     envelope: NewMessage::new("tasks.add", "id-1").encode("celery").unwrap(),
/// };
/// ```
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Queue name, e.g. `celery`.
    pub queue: String,
    /// Priority 0–9 (0 first); decides the priority list on Redis.
    pub priority: u8,
    /// The encoded kombu envelope.
    pub envelope: String,
}

/// A message taken by a worker. It stays in the broker's unacked set until it is acknowledged,
/// requeued, deferred or dead-lettered.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker, Outgoing};
///
/// let broker = MemoryBroker::named("delivery-doc");
/// let envelope = taskq::protocol::NewMessage::new("t", "id").encode("celery").unwrap();
/// broker.publish(&[Outgoing { queue: "celery".into(), priority: 0, envelope }]).await?;
/// let delivery = broker.fetch(&["celery".into()], 1, 1 << 20).await?.deliveries.remove(0);
/// assert_eq!((delivery.queue.as_str(), delivery.source.as_str()), ("celery", "celery"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Delivery {
    /// kombu's delivery tag (the unacked key).
    pub tag: String,
    /// The queue name it came from.
    pub queue: String,
    /// The exact list it came from (queue plus priority bucket); requeues go back there.
    pub source: String,
    /// The envelope exactly as stored.
    pub raw: Arc<str>,
}

/// What one fetch returned.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker};
///
/// let fetched = MemoryBroker::named("fetched-doc").fetch(&["celery".into()], 10, 1 << 20).await?;
/// assert!(fetched.deliveries.is_empty() && fetched.now > 0.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Fetched {
    /// The broker's clock at the fetch, in seconds since the Unix epoch. Due times (ETA,
    /// expiry) are compared with this clock, not the worker's.
    pub now: f64,
    /// The messages, highest priority first.
    pub deliveries: Vec<Delivery>,
    /// Messages the fetch moved to the dead-letter list instead (over the size limit, or
    /// without a delivery tag), for the worker to log and to tell their callers.
    pub refused: Vec<RefusedMessage>,
}

/// A message a fetch refused and dead-lettered without handing it over: too large to bring
/// into a worker's memory, or impossible to track (no delivery tag).
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker, Outgoing};
///
/// let broker = MemoryBroker::named("refused-doc");
/// let envelope = taskq::protocol::NewMessage::new("t", "id-big").args(vec!["x".repeat(2000).into()]).encode("celery").unwrap();
/// broker.publish(&[Outgoing { queue: "celery".into(), priority: 0, envelope }]).await?;
/// let fetched = broker.fetch(&["celery".into()], 10, 1000).await?;
/// assert!(fetched.deliveries.is_empty());
/// assert_eq!(fetched.refused[0].refusal.task_id(), Some("id-big"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedMessage {
    /// The queue it was taken from.
    pub queue: String,
    /// Why, and the task id when the fetch could find it in the text.
    pub refusal: DecodeError,
}

/// How the fetch names a refusal's kind (the Redis script's reply, the memory broker's
/// choice), and the kind it is.
pub(crate) fn refusal_kind(code: &str) -> DecodeErrorKind {
    match code {
        FETCH_REFUSED_TOO_LARGE => DecodeErrorKind::TooLarge,
        FETCH_REFUSED_NOT_JSON => DecodeErrorKind::Undecodable,
        _ => DecodeErrorKind::Invalid,
    }
}

/// The fetch's code for a message over the size limit.
pub(crate) const FETCH_REFUSED_TOO_LARGE: &str = "too_large";
/// The fetch's code for a message that is not JSON.
pub(crate) const FETCH_REFUSED_NOT_JSON: &str = "not_json";
/// The fetch's code for a message without a delivery tag.
pub(crate) const FETCH_REFUSED_NO_TAG: &str = "no_tag";

/// The broker contract: what a worker and a client need from the store that holds messages.
///
/// All operations take batches: one round trip serves many messages.
///
/// Sealed: only taskq's own brokers implement it, [`redis::RedisBroker`] and
/// [`memory::MemoryBroker`], and one test suite (`tests/tests/broker_contract.rs`) holds both to
/// the same semantics. Applications reach it through [`Client::broker`](crate::Client::broker)
/// for inspection (dead letters, clocks, pings); the methods a worker drives (fetching,
/// leases, recovery) may change in a minor release until the contract is declared stable.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker};
///
/// let broker = MemoryBroker::named("trait-doc");
/// broker.ping().await?;
/// assert!(broker.dead_letters(10).await?.is_empty());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Broker: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// Appends messages to their queues.
    async fn publish(&self, messages: &[Outgoing]) -> Result<()>;

    /// Moves up to `max` messages from `queues` into the unacked set, in priority order and
    /// then queue order. Never waits: the batch is empty when the queues are. Messages that
    /// cannot be tracked (not JSON, no delivery tag) or are longer than `max_bytes` go to the
    /// dead-letter list instead, with the reason, and are listed in [`Fetched::refused`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future after the store has moved messages leaves them
    /// unacked with nobody holding them. Let it finish.
    async fn fetch(&self, queues: &[String], max: usize, max_bytes: usize) -> Result<Fetched> {
        self.fetch_marking(queues, max, max_bytes, 0).await
    }

    /// [`fetch`](Self::fetch), marking the first `mark_started` messages taken as started in
    /// the same step (as [`mark_started`](Self::mark_started) would): a worker with idle
    /// execution slots starts them at once. Not cancel-safe either.
    async fn fetch_marking(
        &self,
        queues: &[String],
        max: usize,
        max_bytes: usize,
        mark_started: usize,
    ) -> Result<Fetched>;

    /// Waits until one of `queues` has a message, or `timeout` passes. Takes nothing, so a
    /// fetch must follow; it may also wake without a message (another worker was faster).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it moves no message.
    async fn wait_for_messages(&self, queues: &[String], timeout: Duration) -> Result<()>;

    /// Removes finished messages from the unacked set.
    async fn ack(&self, tags: &[String]) -> Result<()>;

    /// Returns unfinished messages to the front of the lists they came from.
    async fn requeue(&self, deliveries: &[Delivery]) -> Result<()>;

    /// Parks a message whose ETA is not yet due until `eta` (seconds since the Unix epoch, on
    /// the broker's clock).
    async fn defer(&self, delivery: &Delivery, eta: f64) -> Result<()>;

    /// Moves parked messages that are due back to the front of their lists. Returns how many
    /// moved and when the next one is due.
    async fn promote_due(&self, max: usize) -> Result<Promoted>;

    /// Moves a message that cannot be run to the dead-letter list, with the reason.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()>;

    /// Reads the dead-letter list, newest first.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>>;

    /// Puts up to `max` dead-lettered messages back at the back of their queues (at priority
    /// bucket 0), oldest first, once their cause is fixed; returns how many moved. An entry that names no queue
    /// (it never had one) stops the move and stays.
    async fn requeue_dead_letters(&self, max: usize) -> Result<usize>;

    /// Like [`requeue_dead_letters`](Self::requeue_dead_letters), for the entries `which`
    /// matches only (a reason, or one task's message), oldest first: the others stay, and an
    /// entry that names no queue is skipped. Returns how many moved.
    async fn requeue_dead_letters_matching(
        &self,
        max: usize,
        which: &DeadLetterMatch,
    ) -> Result<usize>;

    /// Renews the leases of unacked messages a live worker holds, so that no recovery takes
    /// them. Returns the tags that are no longer unacked (settled, or recovered while their
    /// holder was frozen or cut off): their holder must not start them.
    async fn renew(&self, tags: &[String]) -> Result<Vec<String>>;

    /// Returns up to `max` unacked messages whose holder died or froze to the front of their
    /// queues; returns how many. Safe to run from many workers at once. See [`RecoverAfter`]
    /// for when a message counts as lost.
    async fn recover(&self, after: RecoverAfter, max: usize) -> Result<usize>;

    /// Records that the tasks of these held messages have started, so that losing one now
    /// counts as a crash of its task (poison-message detection).
    async fn mark_started(&self, tags: &[String]) -> Result<()>;

    /// Takes back start marks of messages whose tasks did not start after all (their holder
    /// found its lease lost), or not yet (a rate-limited task waiting for its turn). Settling
    /// a message removes its mark as well.
    async fn unmark_started(&self, tags: &[String]) -> Result<()>;

    /// Checks that the broker answers.
    async fn ping(&self) -> Result<()>;

    /// The broker's clock, in seconds since the epoch: the clock every ETA, lease and
    /// expiry is judged by.
    async fn server_time(&self) -> Result<f64>;

    /// The server's eviction policy (`maxmemory-policy`), when the broker has one and lets
    /// us read it (an ACL may deny `CONFIG`): anything but `noeviction` can drop messages.
    async fn eviction_policy(&self) -> Result<Option<String>>;

    /// The same broker on a connection of its own, for use from another thread's runtime
    /// (the worker renews leases from a dedicated thread that busy tasks cannot starve).
    ///
    /// # Errors
    ///
    /// When a new connection handle cannot be made.
    fn detached(&self) -> Result<std::sync::Arc<dyn Broker>>;

    /// Publishes `envelope` on the fanout exchange `exchange` (kombu: Redis `PUBLISH` on
    /// `/<db>.<exchange>[/<routing_key>]`). Nobody subscribed: it is lost, as in kombu.
    async fn broadcast(&self, exchange: &str, routing_key: &str, envelope: &str) -> Result<()>;

    /// Receives everything published on the fanout exchange `exchange`, whatever the routing
    /// key. Returns once subscribed; the subscription survives reconnections (messages sent
    /// while disconnected are lost, as with kombu).
    async fn subscribe_broadcast(&self, exchange: &str) -> Result<Subscription>;

    /// Binds `queue` to the direct exchange `exchange` with `routing_key`, so that
    /// [`publish_direct`](Self::publish_direct) delivers there (kombu's `queue_bind`; on
    /// Redis a member of `_kombu.binding.<exchange>`). Binding twice is one binding.
    async fn bind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()>;

    /// Routes `envelope` through the direct exchange `exchange`: appended to every queue bound
    /// with exactly `routing_key` (kombu's `_kombu.binding.<exchange>` table). Returns how many
    /// queues got it.
    async fn publish_direct(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &str,
    ) -> Result<usize>;

    /// Records `ids` as revoked, at the broker's clock now, in the set every worker honours
    /// (see [`crate::revoke`]): kept for [`REVOKE_EXPIRES`](crate::revoke::REVOKE_EXPIRES),
    /// at most [`REVOKES_MAX`](crate::revoke::REVOKES_MAX) ids, oldest out first. Recording
    /// an id again moves its time forward; many workers recording the same revoke are fine.
    async fn record_revokes(&self, ids: &[String]) -> Result<()>;

    /// The revokes recorded at or after `since` (the broker's clock, seconds since the epoch)
    /// that have not expired, and the broker's clock now; `f64::NEG_INFINITY` reads them all.
    async fn revokes_since(&self, since: f64) -> Result<crate::revoke::Revoked>;

    /// Takes the oldest message of `queue`'s plain list (priority bucket 0), waiting up to
    /// `timeout` for one (`Duration::ZERO`: not at all); `None` when none came. For queues
    /// that are not task queues, such as a remote-control reply queue
    /// ([`crate::keys::pidbox_reply_queue`]) that [`publish_direct`](Self::publish_direct)
    /// fills.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe on Redis: a message popped as the future is dropped is lost. Let it
    /// finish (it ends after `timeout`).
    async fn pop(&self, queue: &str, timeout: Duration) -> Result<Option<String>>;

    /// Removes the binding [`bind`](Self::bind) made; removing a missing one is no error.
    async fn unbind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()>;

    /// Deletes every message waiting in `queues` (all priority lists; held, parked and
    /// dead-lettered messages stay), in one atomic step; returns how many were deleted.
    async fn purge(&self, queues: &[String]) -> Result<usize>;

    /// Counts per queue: messages waiting, held by workers (unacked), parked until their ETA
    /// and dead-lettered. With no `queues`, every queue the broker knows: those with a kombu
    /// binding (declared by a producer, Python's or taskq's) and those that hold or parked
    /// messages or have dead letters. Sorted by queue name.
    ///
    /// Reads every held, parked and dead-lettered message to count them per queue: meant for
    /// operators and monitoring, not a hot path.
    async fn queue_stats(&self, queues: &[String]) -> Result<Vec<QueueStats>>;

    /// Sends `message` for slot `slot_ms` of periodic entry `entry` and records the slot, in
    /// one step, unless that slot or a later one was sent already; `true` when sent.
    async fn fire_scheduled(&self, entry: &str, slot_ms: i64, message: &Outgoing) -> Result<bool>;

    /// Records `slot_ms` as the slot periodic entry `entry` counts from, unless it has a record
    /// already (a new entry starts with its next slot).
    async fn start_schedule(&self, entry: &str, slot_ms: i64) -> Result<()>;

    /// The last slot sent for periodic entry `entry` (ms since the epoch), if any.
    async fn last_fired(&self, entry: &str) -> Result<Option<i64>>;

    /// Takes or renews the periodic scheduler's lead for `token`, for `lease`; `true` while
    /// `token` leads.
    async fn lead(&self, token: &str, lease: Duration) -> Result<bool>;

    /// Gives up the lead if `token` holds it.
    async fn resign(&self, token: &str) -> Result<()>;

    /// Takes the next `count` turns of rate-limited `task`, turns being `interval` apart across
    /// every worker; returns how long from now the first turn taken starts (zero: at once),
    /// the others following it an interval apart. See [`crate::rate_limit`].
    async fn take_turns(&self, task: &str, interval: Duration, count: u32) -> Result<Duration>;

    /// Queues `message` (of call `task_id`) and takes the lock `key` for it for at most `ttl`,
    /// in one step, unless another call holds `key`: then nothing is queued and that call's id
    /// comes back. See [`Options::unique_for`](crate::Options::unique_for).
    async fn publish_unique(
        &self,
        key: &str,
        task_id: &str,
        ttl: Duration,
        message: &Outgoing,
    ) -> Result<Option<String>>;

    /// Releases the lock `key` if call `task_id` still holds it (its task is done).
    async fn release_unique(&self, key: &str, task_id: &str) -> Result<()>;
    /// Pauses `queue` for every taskq worker (see
    /// [`BrokerKeys::paused_queues`](crate::keys::BrokerKeys::paused_queues)); `true` when it
    /// was not paused. Its messages stay queued.
    async fn pause_queue(&self, queue: &str) -> Result<bool>;

    /// Resumes a paused `queue`; `true` when it was paused.
    async fn resume_queue(&self, queue: &str) -> Result<bool>;

    /// The paused queues, sorted by name.
    async fn paused_queues(&self) -> Result<Vec<String>>;

    /// The broker URL with any password masked, for logs and banners.
    fn describe(&self) -> String;
}

/// Keeps [`Broker`] implemented by this crate's brokers only.
mod sealed {
    /// Implemented by the brokers of this crate.
    #[allow(unreachable_pub)] // Reachable only as a bound, which is the point.
    pub trait Sealed {}

    impl Sealed for super::cluster::ClusterBroker {}
    impl Sealed for super::memory::MemoryBroker {}
    impl Sealed for super::redis::RedisBroker {}
}

/// The outcome of [`Broker::promote_due`].
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker};
///
/// let promoted = MemoryBroker::named("promoted-doc").promote_due(100).await?;
/// assert_eq!((promoted.moved, promoted.next_due), (0, None));
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Promoted {
    /// Messages moved back to their queues.
    pub moved: usize,
    /// When the next parked message is due (broker clock, seconds since the epoch).
    pub next_due: Option<f64>,
}

/// When recovery takes an unacked message back from its holder.
///
/// A taskq worker renews a lease on every message it holds, so its messages are lost only
/// when it stops renewing for `leased` ([`Config::visibility_timeout`](crate::Config)). A
/// Python worker renews nothing, and restores its own lost messages (kombu's restore, with
/// its own visibility timeout): by default taskq leaves them to it, because only the Python
/// side knows its timeout, and a taskq guess shorter than it runs tasks twice (an ETA task
/// waits in a Python worker's `unacked` until it is due). With
/// [`unleased_after`](Self::unleased_after), taskq also returns them after that long
/// (never below `leased`): for fleets whose Python workers are gone.
///
/// ```
/// use std::time::Duration;
/// use taskq::broker::RecoverAfter;
///
/// let after = RecoverAfter::new(Duration::from_secs(30));
/// assert_eq!(after.unleased(), None);
/// let after = after.unleased_after(Duration::from_secs(3600));
/// assert_eq!(after.unleased(), Some(Duration::from_secs(3600)));
/// let odd = RecoverAfter::new(Duration::from_secs(30)).unleased_after(Duration::from_secs(5));
/// assert_eq!(odd.unleased(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverAfter {
    leased: Duration,
    unleased: Option<Duration>,
}

impl RecoverAfter {
    /// Leased messages lapse after `leased`; messages without a lease are left alone.
    pub fn new(leased: Duration) -> Self {
        Self {
            leased,
            unleased: None,
        }
    }

    /// Also take back messages without a lease (a Python worker's) after `unleased` (at least
    /// `leased`).
    pub fn unleased_after(self, unleased: Duration) -> Self {
        Self {
            unleased: Some(unleased),
            ..self
        }
    }

    /// How long a taskq worker's messages stay claimed after its last lease renewal.
    pub fn leased(&self) -> Duration {
        self.leased
    }

    /// How long a message without a taskq lease (a Python worker's) stays claimed; `None`:
    /// taskq never takes it back.
    pub fn unleased(&self) -> Option<Duration> {
        self.unleased.map(|unleased| unleased.max(self.leased))
    }
}

/// How many messages one queue has in each state, from [`Broker::queue_stats`].
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::broker::{memory::MemoryBroker, Broker, Outgoing};
///
/// let broker = MemoryBroker::named("queue-stats-doc");
/// let envelope = taskq::protocol::NewMessage::new("t", "id").encode("reports").unwrap();
/// broker.publish(&[Outgoing { queue: "reports".into(), priority: 0, envelope }]).await?;
/// let stats = broker.queue_stats(&[]).await?;
/// assert_eq!((stats[0].queue.as_str(), stats[0].waiting, stats[0].unacked), ("reports", 1, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    /// The queue name.
    pub queue: String,
    /// Messages waiting to be taken, all priorities.
    pub waiting: usize,
    /// Messages taken by a worker and not yet acknowledged.
    pub unacked: usize,
    /// Messages parked until their ETA (taskq workers park them in the broker; a Python
    /// worker keeps its ETA messages in `unacked`).
    pub scheduled: usize,
    /// Entries of the dead-letter list taken from this queue.
    pub dead_letters: usize,
}

/// Adds one count per queue name to `stats` (by queue name), creating entries as needed.
pub(crate) fn tally<'a>(
    stats: &mut std::collections::BTreeMap<String, QueueStats>,
    queues: impl IntoIterator<Item = &'a str>,
    field: fn(&mut QueueStats) -> &mut usize,
) {
    for queue in queues {
        let entry = stats.entry(queue.to_owned()).or_insert_with(|| QueueStats {
            queue: queue.to_owned(),
            ..QueueStats::default()
        });
        *field(entry) += 1;
    }
}

/// The entries of `stats` asked for: `queues` in name order (zeros for unknown ones), or all
/// when `queues` is empty.
pub(crate) fn select_stats(
    mut stats: std::collections::BTreeMap<String, QueueStats>,
    queues: &[String],
) -> Vec<QueueStats> {
    if queues.is_empty() {
        return stats.into_values().collect();
    }
    let mut asked: Vec<QueueStats> = queues
        .iter()
        .map(|q| {
            stats.remove(q).unwrap_or_else(|| QueueStats {
                queue: q.clone(),
                ..QueueStats::default()
            })
        })
        .collect();
    asked.sort_by(|a, b| a.queue.cmp(&b.queue));
    asked.dedup_by(|a, b| a.queue == b.queue);
    asked
}

/// An entry of the dead-letter list.
///
/// ```
/// let entry: taskq::broker::DeadLetter = serde_json::from_str(
///     r#"{"reason": "message is not JSON", "queue": "celery", "payload": "oops", "time": 1.5}"#,
/// ).unwrap();
/// assert_eq!(entry.queue, "celery");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// Why the message could not be run.
    pub reason: String,
    /// The queue it was taken from.
    pub queue: String,
    /// The message exactly as it was stored.
    pub payload: String,
    /// When it was dead-lettered, in seconds since the Unix epoch.
    pub time: f64,
}

impl DeadLetter {
    /// The task id in the message's headers (protocol 2), when the payload has one.
    ///
    /// ```
    /// let envelope = taskq::protocol::NewMessage::new("tasks.add", "id-7").encode("celery").unwrap();
    /// let entry = taskq::broker::DeadLetter { reason: "r".into(), queue: "celery".into(), payload: envelope, time: 0.0 };
    /// assert_eq!(entry.task_id().as_deref(), Some("id-7"));
    /// ```
    pub fn task_id(&self) -> Option<String> {
        use crate::protocol::names::{field, header};
        let message: serde_json::Value = serde_json::from_str(&self.payload).ok()?;
        let id = message.get(field::HEADERS)?.get(header::ID)?.as_str()?;
        Some(id.to_owned())
    }
}

/// Which dead letters [`Broker::requeue_dead_letters_matching`] puts back.
///
/// ```
/// use taskq::broker::{DeadLetter, DeadLetterMatch};
///
/// let entry = DeadLetter { reason: "NotRegistered: x".into(), queue: "celery".into(), payload: "{}".into(), time: 0.0 };
/// assert!(DeadLetterMatch::ReasonContains("NotRegistered".into()).matches(&entry));
/// assert!(!DeadLetterMatch::TaskId("id-1".into()).matches(&entry));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterMatch {
    /// The entries whose reason contains this text (plain, case-sensitive).
    ReasonContains(String),
    /// The entries holding this task's message (by its `id` header): one, unless the same
    /// message was dead-lettered twice.
    TaskId(String),
}

impl DeadLetterMatch {
    /// Whether `entry` is one of those matched. The `REQUEUE_DEAD_MATCHING` script applies
    /// the same rule on Redis.
    pub fn matches(&self, entry: &DeadLetter) -> bool {
        match self {
            Self::ReasonContains(text) => entry.reason.contains(text.as_str()),
            Self::TaskId(id) => entry.task_id().as_deref() == Some(id.as_str()),
        }
    }

    /// The script's arguments: what is compared, and with what.
    pub(crate) fn script_args(&self) -> (&'static str, &str) {
        match self {
            Self::ReasonContains(text) => ("reason", text),
            Self::TaskId(id) => ("task_id", id),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_schemes_are_config_errors() {
        let err = super::open("amqp://guest@localhost//").unwrap_err();
        assert!(matches!(err, crate::Error::Config(_)));
        assert!(
            err.to_string().contains("\"amqp\" is not supported"),
            "{err}"
        );
    }

    #[test]
    fn memory_urls_name_shared_instances() {
        assert_eq!(super::open("memory://a").unwrap().describe(), "memory://a");
        assert_eq!(super::open("memory://").unwrap().describe(), "memory://");
        assert_eq!(super::open("memory://a/").unwrap().describe(), "memory://a");
    }
}
