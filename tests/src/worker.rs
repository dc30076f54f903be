//! A taskq [`Client`] and [`Worker`] running inside the test process, against a
//! [`RedisServer`], and the checks the worker tests make on what they leave in Redis.
//!
//! ```no_run
//! use std::time::Duration;
//! use taskq_tests::worker::{self, RunningWorker};
//! use taskq_tests::RedisServer;
//!
//! # async fn demo() {
//! let server = RedisServer::start();
//! // Broker in db 0, results in db 1; change anything else in the closure.
//! let client = worker::client(&server, |config| config.concurrency = 2);
//! // banner off, consuming `celery`; the closure adds this test's settings.
//! let running = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_secs(1)));
//!
//! // ... send tasks with `client` ...
//! let url = server.url();
//! worker::eventually(Duration::from_secs(10), "the queue to drain", || async {
//!     worker::query::<i64>(&url, &["LLEN", "celery"]) == 0
//! })
//! .await;
//!
//! running.stop().await; // shuts down, and checks it exits with Ok within 10 s
//! worker::assert_nothing_unacked(&server);
//! # }
//! ```
//!
//! [`RunningWorker::start`] spawns onto the current Tokio runtime, so the tests that use it
//! are `#[tokio::test(flavor = "multi_thread")]` tests.

use crate::keys;
use std::future::Future;
use std::time::{Duration, Instant};

use taskq::{Client, Config, ShutdownHandle, Worker, WorkerBuilder};
use tokio::task::JoinHandle;

use crate::{redis_cmd, wait_until, RedisServer};

/// How long [`RunningWorker::stop`] waits for the worker to exit after asking it to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A client on `server`: `broker_url` = [`server.url()`](RedisServer::url) (db 0),
/// `result_backend` = [`server.url_db(1)`](RedisServer::url_db), `concurrency` = 1,
/// `queues` = `["celery"]`, everything else [`Config::default`]. `configure` then changes
/// what the test needs (`|_| {}` for nothing).
///
/// A worker built on the client ([`RunningWorker::start`]) takes its defaults from this
/// configuration (concurrency, queues, prefetch, grace, STARTED tracking).
///
/// # Panics
///
/// If `taskq` rejects the resulting configuration.
pub fn client(server: &RedisServer, configure: impl FnOnce(&mut Config)) -> Client {
    let mut config = Config::default();
    config.broker_url = server.url();
    config.result_backend = server.url_db(1);
    config.concurrency = 1;
    config.queues = vec!["celery".to_owned()];
    configure(&mut config);
    Client::from_config(config).expect("client config is valid")
}

/// A client with broker and results at `url`, everything else [`Config::default`]: for URLs
/// other than a plain [`RedisServer`]'s (`rediss://`, `rediss+cluster://`, `sentinel://`).
///
/// # Panics
///
/// If `taskq` rejects the URL.
pub fn client_at(url: &str) -> Client {
    let mut config = Config::default();
    config.broker_url = url.to_owned();
    config.result_backend = url.to_owned();
    Client::from_config(config).expect("client config is valid")
}

/// A [`Worker`] running as a Tokio task of the test, until [`stop`](Self::stop).
///
/// Dropping it without `stop` leaves the worker running until the test's runtime ends.
#[derive(Debug)]
pub struct RunningWorker {
    stop: ShutdownHandle,
    handle: JoinHandle<taskq::Result<()>>,
}

impl RunningWorker {
    /// Builds a worker on (a clone of) `client` and spawns it. The builder starts from the
    /// client's configuration with the banner and the default log subscriber off and the
    /// queues `["celery"]`; `configure` adds the test's settings (`|b| b` for none), e.g.
    /// `|b| b.concurrency(2).queues(["reports"]).shutdown_grace(Duration::from_secs(1))`
    /// (a non-empty `queues` replaces `celery`).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(
        client: &Client,
        configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
    ) -> RunningWorker {
        let builder = Worker::builder(client.clone())
            .banner(false)
            .default_logging(false)
            .queues(["celery"]);
        let worker = configure(builder).build();
        let stop = worker.shutdown_handle();
        let handle = tokio::spawn(worker.run_until(std::future::pending()));
        RunningWorker { stop, handle }
    }

    /// A handle that asks the worker to shut down, without waiting for it.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// Whether the worker is still running (it has neither returned nor panicked).
    pub fn is_alive(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Asks the worker to shut down gracefully, waits for it, and returns how long it took
    /// from the request to the worker's exit.
    ///
    /// # Panics
    ///
    /// If the worker does not exit within [`STOP_TIMEOUT`] (10 s), if its task panicked,
    /// or if it returned an error.
    pub async fn stop(self) -> Duration {
        let asked = Instant::now();
        self.stop.shutdown();
        tokio::time::timeout(STOP_TIMEOUT, self.handle)
            .await
            .expect("the worker stops within 10 s of shutdown")
            .expect("the worker task does not panic")
            .expect("the worker returns Ok");
        asked.elapsed()
    }
}

/// Polls the async `condition` every 20 ms until it returns `true`: the async counterpart
/// of [`wait_until`], which sleeps on the Tokio timer instead of blocking the thread.
///
/// # Panics
///
/// If `condition` is still `false` after `timeout`; the message says
/// "timed out after … waiting for {what}".
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`redis_cmd`], with the reply converted to `T`, e.g.
/// `query::<i64>(&server.url(), &["LLEN", "celery"])`.
///
/// # Panics
///
/// As [`redis_cmd`]; also if the reply does not convert to `T`.
pub fn query<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    redis::from_redis_value(redis_cmd(url, args))
        .unwrap_or_else(|e| panic!("unexpected reply to {args:?}: {e}"))
}

/// Counts runs per key: a test task calls it with a key unique to its test, so tests
/// running at once in one process do not share counts. Returns the run's number, from 1.
pub fn count_run(key: &str) -> u32 {
    static RUNS: std::sync::Mutex<Option<std::collections::HashMap<String, u32>>> =
        std::sync::Mutex::new(None);
    let mut runs = RUNS.lock().expect("runs lock");
    let n = runs
        .get_or_insert_with(Default::default)
        .entry(key.to_owned())
        .or_insert(0);
    *n += 1;
    *n
}

/// Sends the example app's `tasks.send_push_notification` for `token`.
///
/// # Panics
///
/// If the broker refuses it.
pub async fn send_push(client: &Client, token: &str) -> taskq::AsyncResult<serde_json::Value> {
    send_push_with(client, token, taskq::Options::new()).await
}

/// [`send_push`] with per-call options (a countdown, a queue...).
///
/// # Panics
///
/// If the broker refuses the message.
pub async fn send_push_with(
    client: &Client,
    token: &str,
    options: taskq::Options,
) -> taskq::AsyncResult<serde_json::Value> {
    client
        .send_by_name(
            "tasks.send_push_notification",
            vec![serde_json::json!(token)],
            serde_json::Map::new(),
            options,
        )
        .await
        .expect("the broker accepts the task")
}

/// The execution ledger the example push task keeps in `dir/notification.log`: how many
/// times each token's task completed.
pub fn ledger_runs(dir: &std::path::Path) -> std::collections::HashMap<String, usize> {
    let ledger = std::fs::read_to_string(dir.join("notification.log")).unwrap_or_default();
    let mut runs = std::collections::HashMap::new();
    for line in ledger.lines() {
        let token = line.rsplit(' ').next().unwrap_or_default().to_owned();
        *runs.entry(token).or_insert(0) += 1;
    }
    runs
}

/// Waits until a worker has taken the only message sent: it is in `unacked` and the
/// `celery` list is empty.
pub fn wait_until_taken(server: &RedisServer, timeout: Duration) {
    let url = server.url();
    wait_until(timeout, "a worker to take the task", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 1
            && query::<i64>(&url, &["LLEN", "celery"]) == 0
    });
}

/// The key (and pub/sub channel) of task `id`'s result record: [`keys::result_meta`].
pub fn meta_key(id: &str) -> String {
    keys::result_meta(id)
}

/// Asserts that nothing is left in kombu's `unacked` hash, its `unacked_index` or taskq's
/// leases on `server`'s db 0.
///
/// # Panics
///
/// If either holds anything.
pub fn assert_nothing_unacked(server: &RedisServer) {
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        0
    );
    assert_eq!(
        query::<i64>(&server.url(), &["ZCARD", &keys::broker().unacked_index()]),
        0
    );
    assert_eq!(
        query::<i64>(&server.url(), &["ZCARD", &keys::broker().leases()]),
        0
    );
}

/// Waits (blocking, with [`wait_until`]) until `unacked` is empty, then
/// [`assert_nothing_unacked`].
///
/// # Panics
///
/// After `timeout`, or as [`assert_nothing_unacked`].
pub fn wait_nothing_unacked(server: &RedisServer, timeout: Duration) {
    let url = server.url();
    wait_until(timeout, "unacked to be empty", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
    assert_nothing_unacked(server);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker;

    #[tokio::test]
    async fn eventually_returns_when_true() {
        let mut n = 0;
        worker::eventually(Duration::from_secs(1), "n to reach 3", || {
            n += 1;
            let done = n >= 3;
            async move { done }
        })
        .await;
        assert_eq!(n, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for never")]
    async fn eventually_panics_on_timeout() {
        worker::eventually(Duration::from_millis(50), "never", || async { false }).await;
    }

    #[test]
    fn query_converts_and_meta_key_is_celerys() {
        let server = RedisServer::start();
        let pushed: i64 = worker::query(&server.url(), &["RPUSH", "celery", "a", "b"]);
        assert_eq!(pushed, 2);
        let items: Vec<String> = worker::query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
        assert_eq!(items, ["a", "b"]);
        assert_eq!(worker::meta_key("abc"), "celery-task-meta-abc");
        worker::assert_nothing_unacked(&server);
    }
}
