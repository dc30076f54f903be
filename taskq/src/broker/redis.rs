//! The Redis broker, in kombu's layout: Python Celery producers and workers can share the
//! same Redis database with taskq.
//!
//! Fetching is one Lua script that moves messages from the queue lists straight into kombu's
//! `unacked` hash and `unacked_index` zset, so a worker killed at any instant leaves every
//! message in Redis. When all queues are empty, the broker blocks on `BLMOVE list list RIGHT
//! RIGHT`, which wakes as soon as a list gets a message without taking it (the message stays
//! where it is), instead of polling.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::{select_all, BoxFuture, Shared};
use futures_util::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::Mutex;

use super::{
    Broker, DeadLetter, DeadLetterMatch, Delivery, Fetched, Outgoing, Promoted, QueueStats,
    RecoverAfter, RefusedMessage, Subscription,
};
use crate::config::mask_url;
use crate::connection::{Conn, Endpoint, LazyConnection};
use crate::keys::BrokerKeys;
use crate::protocol::DecodeError;
use crate::revoke::{Revoked, REVOKES_MAX, REVOKE_EXPIRES};
use crate::scripts::Scripts;
use crate::Result;

/// How long one blocking wait lasts on the server before it is renewed.
const WAIT_SLICE_SECS: f64 = 1.0;

/// A blocking wait on one list, shared by whoever waits on that list now or later (see
/// [`Watcher`]); its error is the command's.
type ListWait = Shared<BoxFuture<'static, std::result::Result<(), redis::RedisError>>>;

/// The watcher of one list: the connection it blocks on (`None` until first used or after an
/// error) and the wait in flight on it, if any.
///
/// A wait for messages watches several lists (a queue's priority lists, several queues) and
/// ends when the first wakes; the others' `BLMOVE`s are still blocked in Redis then. The next
/// wait takes over a wait still in flight instead of sending another command behind it:
/// commands queued behind a blocked one each block in turn, so each wake used to add one
/// to the connection's backlog, and a steady trickle of messages grew it (and the worker's
/// and Redis's memory) without bound.
#[derive(Default)]
struct Watcher {
    conn: Option<MultiplexedConnection>,
    in_flight: Option<ListWait>,
    /// The endpoint's generation the connection was opened for: behind Sentinel, a
    /// connection to a master that has since been replaced is dropped, not waited on.
    generation: u64,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("connected", &self.conn.is_some())
            .field("waiting", &self.in_flight.is_some())
            .finish()
    }
}

/// A list's watcher, behind the lock that serializes its use.
type WatcherSlot = Arc<Mutex<Watcher>>;

/// A broker on a Redis server, compatible with kombu's Redis transport.
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// use taskq::broker::{redis::RedisBroker, Broker};
///
/// let broker = RedisBroker::open("redis://127.0.0.1:6379/0")?;
/// let fetched = broker.fetch(&["celery".to_owned()], 10, 1 << 20).await?;
/// println!("{} messages", fetched.deliveries.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisBroker {
    url: String,
    keys: BrokerKeys,
    /// The database number, part of kombu's Pub/Sub channel names.
    db: i64,
    scripts: Scripts,
    conn: LazyConnection,
    /// One connection per list being watched, because a blocked connection serves nothing else.
    watchers: Mutex<Vec<(String, WatcherSlot)>>,
    /// Queues whose kombu binding this broker declared, and when.
    declared: std::sync::Mutex<HashMap<String, Instant>>,
}

/// How long a declared binding is trusted before a publish declares it again (it may have
/// been flushed, or lost in a Redis restart).
const REDECLARE_AFTER: Duration = Duration::from_secs(60);

impl RedisBroker {
    /// Adds (`SADD`) or removes (`SREM`) kombu's binding of `queue` to `exchange` under
    /// `routing_key`.
    async fn edit_binding(
        &self,
        command: &str,
        exchange: &str,
        routing_key: &str,
        queue: &str,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let _changed: i64 = redis::cmd(command)
            .arg(self.keys.exchange_binding(exchange))
            .arg(self.keys.exchange_binding_member(routing_key, queue))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// A broker for `url` (`redis://` or `rediss://`, with user, password and db number) with
    /// kombu's default key names. Connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) if the URL is not a valid Redis URL.
    ///
    /// ```
    /// let broker = taskq::broker::redis::RedisBroker::open("redis://:secret@127.0.0.1:6379/0")?;
    /// use taskq::broker::Broker;
    /// assert_eq!(broker.describe(), "redis://:**@127.0.0.1:6379/0");
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::with_keys(url, BrokerKeys::default())
    }

    /// Like [`open`](Self::open), with custom key names (prefix, priority separator).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) if the URL is not a valid Redis URL.
    ///
    /// ```
    /// use taskq::keys::{BrokerKeys, DEFAULT_PRIORITY_SEP};
    ///
    /// let broker = taskq::broker::redis::RedisBroker::with_keys("redis://127.0.0.1/0", BrokerKeys::new("app1:", DEFAULT_PRIORITY_SEP))?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn with_keys(url: &str, keys: BrokerKeys) -> Result<Self> {
        if crate::cluster::is_cluster_url(url) {
            return Err(crate::Error::Config(
                "a Redis Cluster broker is sharded: open it with taskq::broker::open (or \
                 ClusterBroker), not RedisBroker"
                    .to_owned(),
            ));
        }
        Ok(Self::on(LazyConnection::new(url)?, url, keys))
    }

    /// A broker with `keys` over `conn` (`url` is what it describes itself as, and reopens
    /// when detached). A cluster broker's shards share one endpoint this way.
    pub(crate) fn on(conn: LazyConnection, url: &str, keys: BrokerKeys) -> Self {
        Self {
            db: conn.endpoint().db(),
            conn,
            url: url.to_owned(),
            keys,
            scripts: Scripts::new(),
            watchers: Mutex::new(Vec::new()),
            declared: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Where a held message is recorded, in the order of the release script's `KEYS[1..4]`:
    /// `unacked`, `unacked_index`, the leases and the started set.
    fn held_keys(&self) -> [String; 4] {
        [
            self.keys.unacked(),
            self.keys.unacked_index(),
            self.keys.leases(),
            self.keys.started(),
        ]
    }

    /// An invocation of a script that settles held messages, with the held keys in place.
    fn releasing<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.held_keys() {
            invocation.key(key);
        }
        invocation
    }

    /// The queues among `messages` whose binding is not declared (recently), marked declared.
    /// kombu declares a queue's binding once per connection, not with every message; doing
    /// it per message doubled the commands of a send.
    fn undeclared<'a>(&self, messages: &'a [Outgoing]) -> Vec<&'a str> {
        let mut declared = self.declared.lock().expect("declared lock");
        let mut due = Vec::new();
        for message in messages {
            let queue = message.queue.as_str();
            let fresh = declared
                .get(queue)
                .is_some_and(|at| at.elapsed() < REDECLARE_AFTER);
            if !fresh {
                declared.insert(queue.to_owned(), Instant::now());
                due.push(queue);
            }
        }
        due
    }

    async fn conn(&self) -> Result<Conn> {
        self.conn.get().await
    }

    /// The connection this broker's commands go on.
    pub(crate) async fn connection(&self) -> Result<Conn> {
        self.conn().await
    }

    /// Waits until one of `lists` has a message or `wait` passes, without taking anything.
    async fn wait_for_message(&self, lists: &[String], wait: Duration) -> Result<()> {
        let slice = wait.as_secs_f64().clamp(0.01, WAIT_SLICE_SECS);
        let watchers = self.watchers_for(lists).await;
        let endpoint = self.conn.endpoint();
        let waits = watchers.into_iter().map(|(list, slot)| {
            Box::pin(async move { watch_list(endpoint, &slot, &list, slice).await })
        });
        let (outcome, _, _) = select_all(waits).await;
        outcome
    }

    async fn watchers_for(&self, lists: &[String]) -> Vec<(String, WatcherSlot)> {
        let mut watchers = self.watchers.lock().await;
        lists
            .iter()
            .map(|list| {
                if let Some((_, slot)) = watchers.iter().find(|(l, _)| l == list) {
                    return (list.clone(), slot.clone());
                }
                let slot = Arc::new(Mutex::new(Watcher::default()));
                watchers.push((list.clone(), slot.clone()));
                (list.clone(), slot)
            })
            .collect()
    }

    /// The queues declared on the default exchange: a kombu binding set named after a queue
    /// that routes to that same queue (what kombu and taskq write when they publish to it).
    /// Exchanges such as `celery.pidbox` or `reply.celery.pidbox` route to other queues and
    /// are left out.
    async fn declared_queues(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        let pattern = self.keys.binding_scan_pattern();
        loop {
            // On a cluster, the bindings of a shard carry its hash tag: the node serving the
            // pattern's slot holds them all.
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .clone();
            let (next, batch): (u64, Vec<String>) = conn.query_near(&pattern, &scan).await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut queues = Vec::new();
        for key in &keys {
            let Some(exchange) = self.keys.exchange_of_binding(key) else {
                continue;
            };
            let members: Vec<String> = redis::cmd("SMEMBERS").arg(key).query_async(conn).await?;
            let routes_to_itself = members.iter().any(|m| {
                self.keys
                    .split_binding_member(m)
                    .is_some_and(|(_, _, queue)| queue == exchange)
            });
            if routes_to_itself {
                queues.push(exchange.to_owned());
            }
        }
        Ok(queues)
    }

    /// Reads the fetch script's reply (see `scripts::FETCH`): messages taken, and refused
    /// ones, told apart by the sign of their list's index.
    fn parse_fetch_reply(reply: Vec<redis::Value>, order: &[(String, String)]) -> Result<Fetched> {
        let mut items = reply.into_iter();
        let now: String = from_value(items.next().unwrap_or(redis::Value::Nil))?;
        let mut fetched = Fetched {
            now: now.parse().unwrap_or_default(),
            ..Fetched::default()
        };
        while let (Some(index), Some(second), Some(third)) =
            (items.next(), items.next(), items.next())
        {
            let index: i64 = from_value(index)?;
            if index < 0 {
                // A refusal: its code, the task id, and one more item, the reason.
                let reason = items.next().unwrap_or(redis::Value::Nil);
                let queue = &order[index.unsigned_abs() as usize - 1].1;
                fetched
                    .refused
                    .push(refused_message(queue, second, third, reason)?);
                continue;
            }
            // A message taken: its tag and text.
            let (source, queue) = order[index as usize - 1].clone();
            let raw: String = from_value(third)?;
            fetched.deliveries.push(Delivery {
                tag: from_value(second)?,
                queue,
                source,
                raw: raw.into(),
            });
        }
        Ok(fetched)
    }
}

/// A refusal from the fetch script's reply: its code, the task id found (`""`: none) and
/// the reason.
fn refused_message(
    queue: &str,
    code: redis::Value,
    id: redis::Value,
    reason: redis::Value,
) -> Result<RefusedMessage> {
    let (code, id, reason): (String, String, String) =
        (from_value(code)?, from_value(id)?, from_value(reason)?);
    let refusal = DecodeError::new(super::refusal_kind(&code), reason)
        .or_task_id(Some(id.as_str()).filter(|id| !id.is_empty()));
    Ok(RefusedMessage {
        queue: queue.to_owned(),
        refusal,
    })
}

fn from_value<T: redis::FromRedisValue>(value: redis::Value) -> Result<T> {
    redis::from_redis_value(value).map_err(|e| redis::RedisError::from(e).into())
}

/// One blocking wait on `list`, on the list's own connection: the wait still in flight there
/// if there is one (see [`Watcher`]), else a new one.
async fn watch_list(
    endpoint: &Endpoint,
    slot: &Mutex<Watcher>,
    list: &str,
    slice: f64,
) -> Result<()> {
    let mut retried = false;
    loop {
        let (wait, reused) = list_wait(endpoint, slot, list, slice).await?;
        let Err(error) = wait.await else {
            return Ok(());
        };
        // The connection is suspect: the next wait opens a new one.
        *slot.lock().await = Watcher::default();
        // A connection that sat blocked may have died with a server since replaced (a
        // restart, a failover): one more try, on a new connection, tells a dead connection
        // from a dead server, instead of failing the wait once per list that went stale.
        if retried || !reused || error.is_timeout() {
            return Err(error.into());
        }
        retried = true;
    }
}

/// The wait in flight on `list`, or a new one when there is none (or it has ended); and
/// whether it is on a connection opened before this call.
async fn list_wait(
    endpoint: &Endpoint,
    slot: &Mutex<Watcher>,
    list: &str,
    slice: f64,
) -> Result<(ListWait, bool)> {
    let generation = endpoint.generation();
    let mut watcher = slot.lock().await;
    if watcher.generation != generation {
        *watcher = Watcher {
            generation,
            ..Watcher::default()
        };
    }
    if let Some(wait) = &watcher.in_flight {
        if wait.peek().is_none() {
            return Ok((wait.clone(), true));
        }
    }
    let reused = watcher.conn.is_some();
    let mut conn = match &watcher.conn {
        Some(conn) => conn.clone(),
        None => {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs_f64(slice + 5.0)));
            let conn = endpoint
                .client_for(list)
                .await?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            watcher.conn = Some(conn.clone());
            conn
        }
    };
    let list = list.to_owned();
    let wait = async move {
        // Rotating the list's last element onto itself leaves the list unchanged.
        let _moved: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&list)
            .arg(&list)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(slice)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
    .boxed()
    .shared();
    watcher.in_flight = Some(wait.clone());
    Ok((wait, reused))
}

/// How many times a send goes again after its connection dropped: Redis's idle `timeout`, a
/// proxy or a `CLIENT KILL` close connections, and each new one may be closed too. A resend
/// goes at once: the connection manager notices a closed connection only when a command
/// fails on it, and a wait would give the new connection time to be closed as well.
const MAX_RESENDS: usize = 5;

impl RedisBroker {
    /// The list each message goes to.
    fn destination(&self, message: &Outgoing) -> String {
        let bucket = self.keys.priority_bucket(message.priority);
        self.keys.queue_list(&message.queue, bucket)
    }

    /// Declares `queues`' bindings and pushes `messages`, in one pipeline.
    async fn push(&self, messages: &[Outgoing], declaring: &[&str]) -> Result<()> {
        let mut pipe = redis::pipe();
        for queue in declaring {
            pipe.sadd(self.keys.binding(queue), self.keys.binding_member(queue))
                .ignore();
        }
        for message in messages {
            pipe.lpush(self.destination(message), &message.envelope)
                .ignore();
        }
        let mut conn = self.conn().await?;
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Sends `messages` again after a dropped connection, skipping those that arrived (see
    /// [`RESEND`](crate::scripts::RESEND)).
    async fn resend(&self, messages: &[Outgoing], declaring: &[&str]) -> Result<usize> {
        let mut conn = self.conn().await?;
        if !declaring.is_empty() {
            let mut pipe = redis::pipe();
            for queue in declaring {
                pipe.sadd(self.keys.binding(queue), self.keys.binding_member(queue))
                    .ignore();
            }
            let () = pipe.query_async(&mut conn).await?;
        }
        let mut invocation = self.scripts.resend.prepare_invoke();
        invocation
            .key(self.keys.unacked())
            .key(self.keys.eta_messages())
            .arg(crate::scripts::RESEND_SEARCH_DEPTH);
        for message in messages {
            invocation
                .arg(self.destination(message))
                .arg(&message.envelope);
        }
        let pushed: usize = invocation.invoke_async(&mut conn).await?;
        Ok(pushed)
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, messages: &[Outgoing]) -> Result<()> {
        let declaring = self.undeclared(messages);
        let mut sent = self.push(messages, &declaring).await;
        for _ in 0..MAX_RESENDS {
            match &sent {
                Err(crate::Error::Redis(e)) if crate::connection::connection_dropped(e) => {
                    tracing::debug!(error = %e, "connection dropped during a send; sending again");
                    sent = self.resend(messages, &declaring).await.map(drop);
                }
                _ => break,
            }
        }
        if sent.is_err() {
            // The bindings may not have been written: declare them with the next publish.
            let mut declared = self.declared.lock().expect("declared lock");
            for queue in &declaring {
                declared.remove(*queue);
            }
        }
        sent
    }

    async fn fetch_marking(
        &self,
        queues: &[String],
        max: usize,
        max_bytes: usize,
        mark_started: usize,
    ) -> Result<Fetched> {
        let order = self.keys.fetch_order(queues);
        let mut invocation = self.scripts.fetch.prepare_invoke();
        invocation
            .key(self.keys.unacked())
            .key(self.keys.unacked_index())
            .key(self.keys.dead_letter())
            .key(self.keys.leases())
            .key(self.keys.started())
            .arg(max)
            .arg(max_bytes)
            .arg(mark_started);
        for (list, queue) in &order {
            invocation.key(list).arg(queue);
        }
        // On a cluster, a shard whose master died is reported at once and passed by (see
        // `ClusterBroker::fetch_marking`).
        let mut conn = self.conn.get_quick().await?;
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        Self::parse_fetch_reply(reply, &order)
    }

    async fn wait_for_messages(&self, queues: &[String], timeout: Duration) -> Result<()> {
        let lists: Vec<String> = self
            .keys
            .fetch_order(queues)
            .into_iter()
            .map(|(list, _)| list)
            .collect();
        self.wait_for_message(&lists, timeout).await
    }

    async fn ack(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // Not the release script: a pipeline of four multi-key commands is cheaper per batch
        // on the hot path, and removes the same keys.
        let [unacked, index, leases, started] = self.held_keys();
        let mut conn = self.conn().await?;
        let () = redis::pipe()
            .atomic()
            .hdel(unacked, tags)
            .ignore()
            .zrem(index, tags)
            .ignore()
            .zrem(leases, tags)
            .ignore()
            .srem(started, tags)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn requeue(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut invocation = self.releasing(&self.scripts.requeue);
        for d in deliveries {
            invocation.arg(&d.tag).arg(&d.source).arg(&*d.raw);
        }
        let mut conn = self.conn().await?;
        let _moved: usize = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn defer(&self, delivery: &Delivery, eta: f64) -> Result<()> {
        let mut conn = self.conn().await?;
        let _parked: i64 = self
            .releasing(&self.scripts.defer)
            .key(self.keys.eta_schedule())
            .key(self.keys.eta_messages())
            .arg(&delivery.tag)
            .arg(eta)
            .arg(&delivery.source)
            .arg(&*delivery.raw)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn promote_due(&self, max: usize) -> Result<Promoted> {
        let mut conn = self.conn().await?;
        let (moved, next_due): (usize, String) = self
            .scripts
            .promote
            .key(self.keys.eta_schedule())
            .key(self.keys.eta_messages())
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        Ok(Promoted {
            moved,
            next_due: next_due.parse().ok(),
        })
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let entry = DeadLetter {
            reason: reason.to_owned(),
            queue: delivery.queue.clone(),
            payload: delivery.raw.to_string(),
            time: crate::unix_now(),
        };
        let mut conn = self.conn().await?;
        let _moved: i64 = self
            .releasing(&self.scripts.dead_letter)
            .key(self.keys.dead_letter())
            .arg(&delivery.tag)
            .arg(serde_json::to_string(&entry)?)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conn().await?;
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.dead_letter())
            .arg(0)
            .arg(max.saturating_sub(1))
            .query_async(&mut conn)
            .await?;
        entries
            .iter()
            .map(|e| serde_json::from_str(e).map_err(Into::into))
            .collect()
    }

    async fn requeue_dead_letters(&self, max: usize) -> Result<usize> {
        let mut conn = self.conn().await?;
        let moved: usize = self
            .scripts
            .requeue_dead
            .key(self.keys.dead_letter())
            .arg(max)
            .arg(self.keys.prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(moved)
    }

    async fn requeue_dead_letters_matching(
        &self,
        max: usize,
        which: &DeadLetterMatch,
    ) -> Result<usize> {
        let (field, text) = which.script_args();
        let mut conn = self.conn().await?;
        let moved: usize = self
            .scripts
            .requeue_dead_matching
            .key(self.keys.dead_letter())
            .arg(max)
            .arg(self.keys.prefix())
            .arg(field)
            .arg(text)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved)
    }

    async fn renew(&self, tags: &[String]) -> Result<Vec<String>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation
            .key(self.keys.unacked_index())
            .key(self.keys.leases())
            .arg(tags);
        let mut conn = self.conn().await?;
        let lost: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(lost)
    }

    async fn recover(&self, after: RecoverAfter, max: usize) -> Result<usize> {
        let mut conn = self.conn().await?;
        let restored: usize = self
            .releasing(&self.scripts.recover)
            .key(self.keys.dead_letter())
            .arg(after.leased().as_secs_f64())
            // Empty: messages without a lease are left to their holder.
            .arg(
                after
                    .unleased()
                    .map(|t| t.as_secs_f64().to_string())
                    .unwrap_or_default(),
            )
            .arg(max)
            .arg(self.keys.prefix())
            .arg(self.keys.priority_sep())
            .arg(self.keys.priority_steps_arg())
            .invoke_async(&mut conn)
            .await?;
        Ok(restored)
    }

    async fn mark_started(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.started())
            .arg(tags)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn unmark_started(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("SREM")
            .arg(self.keys.started())
            .arg(tags)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn eviction_policy(&self) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        let get = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .clone();
        // On a cluster, the policy of the master holding this broker's keys.
        let reply: Result<Vec<String>> = conn.query_near(&self.keys.unacked(), &get).await;
        match reply {
            Ok(pair) => Ok(pair.into_iter().nth(1)),
            // Managed services and ACLs often forbid CONFIG: not knowing is not an error.
            Err(crate::Error::Redis(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
                    || e.code() == Some("ERR") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn detached(&self) -> Result<Arc<dyn Broker>> {
        let conn = LazyConnection::private(&self.url)?;
        Ok(Arc::new(Self::on(conn, &self.url, self.keys.clone())))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    async fn server_time(&self) -> Result<f64> {
        let mut conn = self.conn().await?;
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs as f64 + micros as f64 / 1e6)
    }

    fn describe(&self) -> String {
        mask_url(&self.url)
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let added: i64 = redis::cmd("SADD")
            .arg(self.keys.paused_queues())
            .arg(queue)
            .query_async(&mut conn)
            .await?;
        Ok(added == 1)
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let removed: i64 = redis::cmd("SREM")
            .arg(self.keys.paused_queues())
            .arg(queue)
            .query_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        // Read between a worker's fetches: like the fetch, better failed (the worker keeps the
        // set it has) than waiting out a cluster failover of the home shard.
        let mut conn = self.conn.get_quick().await?;
        let mut paused: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.paused_queues())
            .query_async(&mut conn)
            .await?;
        paused.sort();
        Ok(paused)
    }

    async fn record_revokes(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.revoke.prepare_invoke();
        invocation
            .key(self.keys.revoked())
            .arg(REVOKE_EXPIRES.as_secs_f64())
            .arg(REVOKES_MAX)
            .arg(ids);
        let mut conn = self.conn().await?;
        let _now: String = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn revokes_since(&self, since: f64) -> Result<Revoked> {
        let min = if since.is_finite() {
            format!("{since:.6}")
        } else {
            "-inf".to_owned()
        };
        let mut conn = self.conn().await?;
        // Two commands, one round trip; the clock comes first, so nothing recorded after the
        // read can carry a time before `now` (the next read starts from it).
        let ((secs, micros), entries): ((u64, u64), Vec<(String, f64)>) = redis::pipe()
            .cmd("TIME")
            .cmd("ZRANGEBYSCORE")
            .arg(self.keys.revoked())
            .arg(min)
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        let now = secs as f64 + micros as f64 / 1e6;
        let oldest_live = now - REVOKE_EXPIRES.as_secs_f64();
        Ok(Revoked {
            now,
            ids: entries
                .into_iter()
                .filter(|(_, at)| *at > oldest_live)
                .collect(),
        })
    }

    async fn broadcast(&self, exchange: &str, routing_key: &str, envelope: &str) -> Result<()> {
        let channel = self.keys.fanout_channel(self.db, exchange, routing_key);
        let mut conn = self.conn().await?;
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(envelope)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn subscribe_broadcast(&self, exchange: &str) -> Result<Subscription> {
        let patterns = self.keys.fanout_patterns(self.db, exchange).to_vec();
        super::pubsub::subscribe(self.conn.endpoint().clone(), patterns).await
    }

    async fn bind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        self.edit_binding("SADD", exchange, routing_key, queue)
            .await
    }

    async fn unbind(&self, exchange: &str, routing_key: &str, queue: &str) -> Result<()> {
        self.edit_binding("SREM", exchange, routing_key, queue)
            .await
    }

    async fn pop(&self, queue: &str, timeout: Duration) -> Result<Option<String>> {
        let list = self.keys.queue_list(queue, 0);
        if timeout.is_zero() {
            let mut conn = self.conn().await?;
            let popped: Option<String> =
                redis::cmd("RPOP").arg(&list).query_async(&mut conn).await?;
            return Ok(popped);
        }
        // A blocked connection serves nothing else: the wait gets one of its own.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(timeout + Duration::from_secs(5)));
        let mut conn = self
            .conn
            .endpoint()
            .client_for(&list)
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // BRPOP's timeout 0 waits forever: wait at least a millisecond.
        let secs = timeout.as_secs_f64().max(0.001);
        let popped: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(&list)
            .arg(secs)
            .query_async(&mut conn)
            .await?;
        Ok(popped.map(|(_, message)| message))
    }

    async fn purge(&self, queues: &[String]) -> Result<usize> {
        let lists: Vec<String> = self
            .keys
            .fetch_order(queues)
            .into_iter()
            .map(|(list, _)| list)
            .collect();
        if lists.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for list in &lists {
            pipe.cmd("LLEN").arg(list);
        }
        pipe.cmd("DEL").arg(&lists).ignore();
        let mut conn = self.conn().await?;
        let lengths: Vec<usize> = pipe.query_async(&mut conn).await?;
        Ok(lengths.into_iter().sum())
    }

    async fn fire_scheduled(&self, entry: &str, slot_ms: i64, message: &Outgoing) -> Result<bool> {
        let mut conn = self.conn().await?;
        let sent: i64 = self
            .scripts
            .beat_fire
            .key(self.keys.beat_slots())
            .key(self.destination(message))
            .key(self.keys.binding(&message.queue))
            .arg(entry)
            .arg(slot_ms)
            .arg(&message.envelope)
            .arg(self.keys.binding_member(&message.queue))
            .invoke_async(&mut conn)
            .await?;
        Ok(sent == 1)
    }

    async fn start_schedule(&self, entry: &str, slot_ms: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("HSETNX")
            .arg(self.keys.beat_slots())
            .arg(entry)
            .arg(slot_ms)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn last_fired(&self, entry: &str) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        let last: Option<i64> = redis::cmd("HGET")
            .arg(self.keys.beat_slots())
            .arg(entry)
            .query_async(&mut conn)
            .await?;
        Ok(last)
    }

    async fn lead(&self, token: &str, lease: Duration) -> Result<bool> {
        let mut conn = self.conn().await?;
        let leads: i64 = self
            .scripts
            .beat_lead
            .key(self.keys.beat_leader())
            .arg(token)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(leads == 1)
    }

    async fn resign(&self, token: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = self
            .scripts
            .give_up_if_held
            .key(self.keys.beat_leader())
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn take_turns(&self, task: &str, interval: Duration, count: u32) -> Result<Duration> {
        let mut conn = self.conn().await?;
        let micros: i64 = self
            .scripts
            .rate_turn
            .key(self.keys.rate_turns(task))
            .arg(interval.as_micros().max(1) as u64)
            .arg(count)
            .invoke_async(&mut conn)
            .await?;
        Ok(Duration::from_micros(micros.max(0) as u64))
    }

    async fn publish_unique(
        &self,
        key: &str,
        task_id: &str,
        ttl: Duration,
        message: &Outgoing,
    ) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        let holder: Option<String> = self
            .scripts
            .unique_send
            .key(self.keys.unique_lock(key))
            .key(self.destination(message))
            .key(self.keys.binding(&message.queue))
            .arg(task_id)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(&message.envelope)
            .arg(self.keys.binding_member(&message.queue))
            .invoke_async(&mut conn)
            .await?;
        Ok(holder)
    }

    async fn release_unique(&self, key: &str, task_id: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = self
            .scripts
            .give_up_if_held
            .key(self.keys.unique_lock(key))
            .arg(task_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn queue_stats(&self, queues: &[String]) -> Result<Vec<QueueStats>> {
        let mut conn = self.conn().await?;
        let mut names: Vec<String> = queues.to_vec();
        if names.is_empty() {
            names = self.declared_queues(&mut conn).await?;
        }
        let (held, parked, dead): (Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
            .cmd("HVALS")
            .arg(self.keys.unacked())
            .cmd("HVALS")
            .arg(self.keys.eta_messages())
            .cmd("LRANGE")
            .arg(self.keys.dead_letter())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let mut stats = std::collections::BTreeMap::new();
        for name in &names {
            stats.entry(name.clone()).or_insert_with(|| QueueStats {
                queue: name.clone(),
                ..QueueStats::default()
            });
        }
        // [envelope, exchange, routing_key]: the routing key names the queue.
        let held_queues: Vec<String> = held
            .iter()
            .filter_map(|entry| {
                serde_json::from_str::<(serde::de::IgnoredAny, String, String)>(entry).ok()
            })
            .map(|(_, _, routing_key)| routing_key)
            .collect();
        super::tally(&mut stats, held_queues.iter().map(String::as_str), |s| {
            &mut s.unacked
        });
        // [list key, envelope]: the list names the queue.
        let parked_lists: Vec<String> = parked
            .iter()
            .filter_map(|entry| serde_json::from_str::<(String, serde::de::IgnoredAny)>(entry).ok())
            .map(|(list, _)| list)
            .collect();
        let parked_queues = parked_lists
            .iter()
            .filter_map(|list| self.keys.queue_of_list(list));
        super::tally(&mut stats, parked_queues, |s| &mut s.scheduled);
        let dead_queues: Vec<String> = dead
            .iter()
            .filter_map(|entry| serde_json::from_str::<DeadLetter>(entry).ok())
            .map(|dead| dead.queue)
            .filter(|queue| !queue.is_empty())
            .collect();
        super::tally(&mut stats, dead_queues.iter().map(String::as_str), |s| {
            &mut s.dead_letters
        });
        let mut selected = super::select_stats(stats, queues);
        if selected.is_empty() {
            return Ok(selected);
        }
        let mut pipe = redis::pipe();
        for entry in &selected {
            for (list, _) in self.keys.fetch_order(std::slice::from_ref(&entry.queue)) {
                pipe.cmd("LLEN").arg(list);
            }
        }
        let lengths: Vec<usize> = pipe.query_async(&mut conn).await?;
        let per_queue = self.keys.priority_steps().len();
        for (entry, lengths) in selected.iter_mut().zip(lengths.chunks(per_queue)) {
            entry.waiting = lengths.iter().sum();
        }
        Ok(selected)
    }

    async fn publish_direct(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &str,
    ) -> Result<usize> {
        let mut conn = self.conn().await?;
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.exchange_binding(exchange))
            .query_async(&mut conn)
            .await?;
        let queues: Vec<&str> = members
            .iter()
            .filter_map(|m| self.keys.split_binding_member(m))
            .filter(|(key, _, _)| *key == routing_key)
            .map(|(_, _, queue)| queue)
            .collect();
        if queues.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for queue in &queues {
            pipe.lpush(self.keys.queue_list(queue, 0), envelope)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        Ok(queues.len())
    }
}
