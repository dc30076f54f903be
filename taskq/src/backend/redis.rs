//! Celery's Redis result backend: records under `celery-task-meta-<id>`, written with SETEX
//! and published on the channel of the same name, so Python's `AsyncResult.get()` and taskq's
//! both wake as soon as a task finishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, Mutex};

use super::chord::{self, ChordPart, ChordResult, ChordVote};
use super::{ResultBackend, DEFAULT_RESULT_EXPIRES};
use crate::cluster::hash_slot;
use crate::config::mask_url;
use crate::connection::{Conn, Endpoint, LazyConnection};
use crate::keys::ResultKeys;
use crate::protocol::{pyjson, raw_object, RawJson};
use crate::scripts::Scripts;
use crate::state::ResultMeta;
use crate::Result;

/// Celery's Redis result backend.
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// use std::time::Duration;
/// use taskq::backend::{redis::RedisBackend, ResultBackend};
///
/// let backend = RedisBackend::open("redis://127.0.0.1:6379/1", Some(Duration::from_secs(3600)))?;
/// if let Some(meta) = backend.get("d3c0c7a8-0000-4000-8000-000000000000").await? {
///     println!("{}", meta.status);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisBackend {
    url: String,
    keys: ResultKeys,
    expires: Option<Duration>,
    scripts: Scripts,
    conn: LazyConnection,
    hub: Mutex<Option<Arc<Hub>>>,
}

/// One Pub/Sub connection shared by all waiters, dispatching each message to the waiters of
/// its channel.
#[derive(Debug)]
struct Hub {
    sink: Mutex<PubSubSink>,
    waiters: Arc<SyncMutex<Waiters>>,
}

#[derive(Debug, Default)]
struct Waiters {
    by_channel: HashMap<String, Vec<(u64, mpsc::UnboundedSender<String>)>>,
    next_id: u64,
    closed: bool,
}

impl RedisBackend {
    /// A backend on `url` keeping results for `expires` (`None`: forever). Connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) if the URL is not a valid Redis URL.
    ///
    /// ```
    /// let backend = taskq::backend::redis::RedisBackend::open("redis://127.0.0.1:6379/1", None)?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn open(url: &str, expires: Option<Duration>) -> Result<Self> {
        Self::with_keys(url, expires, ResultKeys::default())
    }

    /// Like [`open`](Self::open), with custom key names.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) if the URL is not a valid Redis URL.
    ///
    /// ```
    /// use taskq::keys::ResultKeys;
    ///
    /// let backend = taskq::backend::redis::RedisBackend::with_keys("redis://127.0.0.1/1", None, ResultKeys::new("app1"))?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn with_keys(url: &str, expires: Option<Duration>, keys: ResultKeys) -> Result<Self> {
        let conn = LazyConnection::new(url)?;
        // On a cluster, a chord's keys share its group's hash tag.
        let keys = match conn.endpoint() {
            Endpoint::Cluster(_) => keys.for_cluster(),
            _ => keys,
        };
        Ok(Self {
            conn,
            url: url.to_owned(),
            keys,
            expires,
            scripts: Scripts::new(),
            hub: Mutex::new(None),
        })
    }

    async fn conn(&self) -> Result<Conn> {
        self.conn.get().await
    }

    /// The shared Pub/Sub hub, (re)connected when missing or closed.
    async fn hub(&self) -> Result<Arc<Hub>> {
        let mut slot = self.hub.lock().await;
        if let Some(hub) = slot.as_ref() {
            if !hub.waiters.lock().expect("waiters lock").closed {
                return Ok(hub.clone());
            }
        }
        let (sink, mut stream) = self
            .conn
            .endpoint()
            .client()
            .await?
            .get_async_pubsub()
            .await?
            .split();
        let waiters = Arc::new(SyncMutex::new(Waiters::default()));
        let dispatch_to = waiters.clone();
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let (Ok(payload), channel) = (msg.get_payload::<String>(), msg.get_channel_name())
                else {
                    continue;
                };
                let w = dispatch_to.lock().expect("waiters lock");
                for (_, tx) in w.by_channel.get(channel).into_iter().flatten() {
                    let _ = tx.send(payload.clone());
                }
            }
            // The connection is gone: waiters fall back to their final read.
            let mut w = dispatch_to.lock().expect("waiters lock");
            w.closed = true;
            w.by_channel.clear();
        });
        let hub = Arc::new(Hub {
            sink: Mutex::new(sink),
            waiters,
        });
        *slot = Some(hub.clone());
        Ok(hub)
    }
}

impl RedisBackend {
    /// Stores `records` with one call of the store script.
    async fn store_batch(&self, mut conn: Conn, records: Vec<&ResultMeta>) -> Result<()> {
        let ttl = self.ttl_secs().unwrap_or(0);
        let mut invocation = self.scripts.store_results.prepare_invoke();
        invocation.arg(ttl);
        for record in records {
            invocation
                .key(self.keys.task_meta(&record.task_id))
                .arg(record.to_json());
        }
        let _stored: usize = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Deletes `key`.
    async fn delete(&self, key: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
        Ok(())
    }

    /// How long records are kept, in whole seconds (at least 1), `None` for ever.
    fn ttl_secs(&self) -> Option<u64> {
        self.expires.map(|d| d.as_secs().max(1))
    }

    /// Subscribes to `channel` on the shared hub. Subscribe first, then read: a record stored
    /// in between is caught by one or the other. A hub whose connection died (Redis restarted)
    /// is replaced once.
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<(Membership, mpsc::UnboundedReceiver<String>)> {
        let hub = self.hub().await?;
        match Hub::join(&hub, channel).await {
            Ok(joined) => Ok(joined),
            Err(crate::Error::Redis(e)) if is_connection_error(&e) => {
                hub.close();
                let hub = self.hub().await?;
                Hub::join(&hub, channel).await
            }
            Err(e) => Err(e),
        }
    }
}

/// A waiter's place on the hub, given up when dropped: when `wait_ready` returns, and also
/// when its caller drops it mid-wait (inside `select!` or a `timeout`), so neither the waiter
/// nor the channel's subscription outlives it.
#[derive(Debug)]
struct Membership {
    hub: Arc<Hub>,
    channel: String,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let (hub, channel, id) = (self.hub.clone(), std::mem::take(&mut self.channel), self.id);
        // Off the caller's path: the unsubscribe's round trip would only add to every `get()`.
        // Leaves and joins keep their order on the hub's lock. Outside a runtime (the process
        // is ending) there is nothing left to clean.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.leave(&channel, id).await });
        }
    }
}

/// Whether an error means the connection is gone (and a retry on a new one may succeed).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error()
}

impl Hub {
    /// Marks the hub unusable, so the next waiter opens a new connection.
    fn close(&self) {
        self.waiters.lock().expect("waiters lock").closed = true;
    }

    /// Registers a waiter on `channel`, subscribing (and waiting for Redis to confirm) when it
    /// is the channel's first. The waiter leaves when its [`Membership`] is dropped, even if
    /// that is during the subscribe.
    async fn join(
        hub: &Arc<Self>,
        channel: &str,
    ) -> Result<(Membership, mpsc::UnboundedReceiver<String>)> {
        let mut sink = hub.sink.lock().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, first) = {
            let mut w = hub.waiters.lock().expect("waiters lock");
            w.next_id += 1;
            let id = w.next_id;
            let list = w.by_channel.entry(channel.to_owned()).or_default();
            list.push((id, tx));
            (id, list.len() == 1)
        };
        let membership = Membership {
            hub: hub.clone(),
            channel: channel.to_owned(),
            id,
        };
        if first {
            sink.subscribe(channel).await?;
        }
        Ok((membership, rx))
    }

    /// Removes a waiter, unsubscribing when it was the channel's last.
    async fn leave(&self, channel: &str, id: u64) {
        let mut sink = self.sink.lock().await;
        let last = {
            let mut w = self.waiters.lock().expect("waiters lock");
            let Some(list) = w.by_channel.get_mut(channel) else {
                return;
            };
            list.retain(|(i, _)| *i != id);
            let last = list.is_empty();
            if last {
                w.by_channel.remove(channel);
            }
            last
        };
        if last {
            let _ = sink.unsubscribe(channel).await;
        }
    }
}

#[async_trait]
impl ResultBackend for RedisBackend {
    async fn store(&self, records: &[ResultMeta]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let conn = self.conn().await?;
        if let Conn::Cluster(_) = conn {
            // A script's keys must share a hash slot: one call per slot, all at once.
            let mut by_slot: HashMap<u16, Vec<&ResultMeta>> = HashMap::new();
            for record in records {
                let slot = hash_slot(&self.keys.task_meta(&record.task_id));
                by_slot.entry(slot).or_default().push(record);
            }
            let stores = by_slot
                .into_values()
                .map(|batch| self.store_batch(conn.clone(), batch));
            futures_util::future::try_join_all(stores).await?;
            return Ok(());
        }
        self.store_batch(conn, records.iter().collect()).await
    }

    async fn get(&self, task_id: &str) -> Result<Option<ResultMeta>> {
        let key = self.keys.task_meta(task_id);
        let read = || async {
            let mut conn = self.conn().await?;
            let text: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
            Ok::<_, crate::Error>(text)
        };
        // A read is safe to repeat: the first call after Redis went away fails while the
        // connection re-establishes itself.
        let text = match read().await {
            Err(crate::Error::Redis(e)) if is_connection_error(&e) => read().await?,
            other => other?,
        };
        text.map(|t| ResultMeta::from_json(&t)).transpose()
    }

    async fn wait_ready(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let channel = self.keys.task_meta(task_id);
        let (_membership, mut rx) = self.subscribe(&channel).await?;
        async {
            if let Some(meta) = self.get(task_id).await?.filter(|m| m.status.is_ready()) {
                return Ok(Some(meta));
            }
            while let Ok(Some(text)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                let meta = ResultMeta::from_json(&text)?;
                if meta.status.is_ready() {
                    return Ok(Some(meta));
                }
            }
            // Timed out, or the Pub/Sub connection dropped: one last read decides.
            Ok(self.get(task_id).await?.filter(|m| m.status.is_ready()))
        }
        .await
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.delete(&self.keys.task_meta(task_id)).await
    }

    async fn save_group(&self, group_id: &str, tuple: &RawJson) -> Result<()> {
        let record = pyjson::to_string(&raw_object! {"result" => tuple})?;
        let mut set = redis::cmd("SET");
        set.arg(self.keys.group_meta(group_id)).arg(record);
        if let Some(ttl) = self.ttl_secs() {
            set.arg("EX").arg(ttl);
        }
        let mut conn = self.conn().await?;
        let () = set.query_async(&mut conn).await?;
        Ok(())
    }

    async fn restore_group(&self, group_id: &str) -> Result<Option<RawJson>> {
        let mut conn = self.conn().await?;
        let text: Option<String> = redis::cmd("GET")
            .arg(self.keys.group_meta(group_id))
            .query_async(&mut conn)
            .await?;
        let Some(text) = text else { return Ok(None) };
        let record = RawJson::from_text(&text)?.to_object().unwrap_or_default();
        Ok(record.get("result").cloned())
    }

    async fn forget_group(&self, group_id: &str) -> Result<()> {
        self.delete(&self.keys.group_meta(group_id)).await
    }

    async fn set_chord_size(&self, group_id: &str, size: usize) -> Result<()> {
        let keys = self.keys.chord(group_id);
        let ttl = self.ttl_secs().unwrap_or(DEFAULT_RESULT_EXPIRES.as_secs());
        let mut conn = self.conn().await?;
        // A claim left by an earlier chord under this id must not stop this one's body.
        let () = redis::pipe()
            .atomic()
            .del(&keys.claim)
            .ignore()
            .set_ex(&keys.size, size, ttl)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn chord_part_return(&self, part: &ChordPart) -> Result<ChordVote> {
        let keys = self.keys.chord(&part.group_id);
        let claim = chord::claim_token();
        let mut conn = self.conn().await?;
        let (counted, _extra, _size, claimed): (i64, i64, i64, i64) = self
            .scripts
            .chord_part_return
            .key(&keys.results)
            .key(&keys.extra_size)
            .key(&keys.size)
            .key(&keys.counted)
            .key(&keys.group)
            .key(&keys.claim)
            .arg(part.counted_as())
            .arg(part.member())
            .arg(part.score())
            .arg(self.ttl_secs().unwrap_or(0))
            .arg(chord::CLAIM_HOLDS.as_secs())
            .arg(&claim)
            .invoke_async(&mut conn)
            .await?;
        Ok(match (counted, claimed) {
            (-1, _) => ChordVote::Finished,
            (_, 1) => ChordVote::Complete { claim },
            _ => ChordVote::Pending,
        })
    }

    async fn chord_results(&self, group_id: &str) -> Result<Vec<ChordResult>> {
        let keys = self.keys.chord(group_id);
        let mut conn = self.conn().await?;
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.results)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        members.iter().map(|m| ChordResult::parse(m)).collect()
    }

    async fn finish_chord(&self, group_id: &str, claim: &str) -> Result<()> {
        let keys = self.keys.chord(group_id);
        let mut conn = self.conn().await?;
        let _ended: i64 = self
            .scripts
            .chord_finish
            .key(&keys.results)
            .key(&keys.extra_size)
            .key(&keys.size)
            .key(&keys.counted)
            .key(&keys.claim)
            .arg(claim)
            .arg(chord::DONE_KEPT.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    fn describe(&self) -> String {
        mask_url(&self.url)
    }
}
