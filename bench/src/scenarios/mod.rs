//! The scenarios, and the state they share: a client on the benchmark's Redis, a second one
//! that stages messages in another database, and admin connections that watch progress.
//!
//! Databases: 0 is the broker, 1 the result store, 2 the staging area where drain scenarios
//! queue their messages before moving the whole list into db 0 at once (`MOVE`), so that the
//! clock starts with a worker already running and a full queue.

pub mod cluster;
pub mod drain;
pub mod enqueue;
pub mod floor;
pub mod flow_control;
pub mod latency;
pub mod memory;
pub mod metrics;
pub mod workflow;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use taskq::{Client, Config, Options};

use crate::probe::Probe;
use crate::tasks::noop;

/// The queue every scenario uses: Celery's default, so Python's side needs no routing.
pub const QUEUE: &str = "celery";

/// Database numbers on the benchmark's Redis.
pub const BROKER_DB: u8 = 0;
pub const RESULTS_DB: u8 = 1;
pub const STAGE_DB: u8 = 2;

/// What the scenarios share.
#[derive(Debug)]
pub struct Bench {
    /// `redis://host:port` without a database.
    pub base_url: String,
    /// Sends to db 0, stores results in db 1; also the global client `.delay()` uses.
    pub client: Client,
    /// Sends to the staging db 2.
    pub stage: Client,
    broker: MultiplexedConnection,
    results: MultiplexedConnection,
    staging: MultiplexedConnection,
    /// Calls per batch when a scenario pre-fills a queue.
    pub batch: usize,
}

impl Bench {
    /// Connects to the Redis at `base_url` (no trailing database).
    pub async fn connect(base_url: &str, batch: usize) -> anyhow::Result<Self> {
        let client = client(base_url, BROKER_DB)?;
        client.set_global();
        let admin = |db| async move {
            redis::Client::open(format!("{base_url}/{db}"))?
                .get_multiplexed_async_connection()
                .await
        };
        Ok(Self {
            base_url: base_url.to_owned(),
            client,
            stage: self::client(base_url, STAGE_DB)?,
            broker: admin(BROKER_DB).await?,
            results: admin(RESULTS_DB).await?,
            staging: admin(STAGE_DB).await?,
            batch: batch.max(1),
        })
    }

    /// A connection to the broker database, of the kind taskq uses (multiplexed).
    pub fn connection(&self) -> MultiplexedConnection {
        self.broker.clone()
    }

    /// `redis://host:port/db`.
    pub fn url(&self, db: u8) -> String {
        format!("{}/{db}", self.base_url)
    }

    /// Empties every database, so a scenario starts from nothing.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        let () = redis::cmd("FLUSHALL").query_async(&mut self.broker).await?;
        Ok(())
    }

    /// Starts measuring Redis's and this process's cost.
    pub async fn probe(&mut self) -> anyhow::Result<Probe> {
        Ok(Probe::start(&mut self.broker).await?)
    }

    /// Ends a measurement begun by [`probe`](Self::probe).
    pub async fn cost(&mut self, probe: Probe, tasks: u64) -> anyhow::Result<crate::probe::Cost> {
        Ok(probe.finish(&mut self.broker, tasks).await?)
    }

    /// The server's version, from `INFO server`.
    pub async fn redis_version(&mut self) -> anyhow::Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.broker)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// Messages waiting in the benchmark queue of db 0.
    pub async fn queued(&mut self) -> anyhow::Result<u64> {
        Ok(redis::cmd("LLEN")
            .arg(QUEUE)
            .query_async(&mut self.broker)
            .await?)
    }

    /// Queues `n` no-op calls in the staging database, in batches.
    pub async fn stage_noops(&mut self, n: u64) -> anyhow::Result<()> {
        send_noops(&self.stage, n, self.batch).await?;
        let staged: u64 = redis::cmd("LLEN")
            .arg(QUEUE)
            .query_async(&mut self.staging)
            .await?;
        if staged != n {
            bail!("staged {staged} messages instead of {n}");
        }
        Ok(())
    }

    /// Moves the staged queue into the broker's database in one step; a worker blocked on
    /// the queue wakes at once.
    pub async fn release_staged(&mut self) -> anyhow::Result<()> {
        let moved: i64 = redis::cmd("MOVE")
            .arg(QUEUE)
            .arg(BROKER_DB)
            .query_async(&mut self.staging)
            .await?;
        if moved != 1 {
            bail!("the staged queue could not be moved into db {BROKER_DB}");
        }
        Ok(())
    }

    /// Waits until `n` results are stored and no message is left unacknowledged: every task
    /// has run, stored its result, and been acknowledged.
    pub async fn wait_drained(&mut self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        self.wait_settled(Stored::Results(n), timeout).await
    }

    /// Waits until the result `key` (e.g. a chord body's) is stored and no message is left
    /// unacknowledged.
    pub async fn wait_stored(&mut self, key: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_settled(Stored::Key(key), timeout).await
    }

    async fn wait_settled(&mut self, stored: Stored<'_>, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (done, seen) = match stored {
                Stored::Results(n) => {
                    let count: u64 = redis::cmd("DBSIZE").query_async(&mut self.results).await?;
                    (count >= n, format!("only {count} of {n} results stored"))
                }
                Stored::Key(key) => {
                    let exists: bool = redis::cmd("EXISTS")
                        .arg(key)
                        .query_async(&mut self.results)
                        .await?;
                    (exists, format!("{key} not stored"))
                }
            };
            if done {
                let unacked: u64 = redis::cmd("HLEN")
                    .arg("unacked")
                    .query_async(&mut self.broker)
                    .await?;
                if unacked == 0 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{seen} after {timeout:?}");
            }
            // Short enough not to blur a drain of a few hundred milliseconds, cheap for Redis.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// What a scenario waits to see stored before its clock stops.
#[derive(Clone, Copy)]
enum Stored<'a> {
    /// This many keys in the result database.
    Results(u64),
    /// This result key.
    Key(&'a str),
}

/// A taskq client sending to database `broker_db`, results in [`RESULTS_DB`].
fn client(base_url: &str, broker_db: u8) -> anyhow::Result<Client> {
    let mut config = Config::default();
    config.broker_url = format!("{base_url}/{broker_db}");
    config.result_backend = format!("{base_url}/{RESULTS_DB}");
    config.queues = vec![QUEUE.to_owned()];
    Client::from_config(config).context("taskq client configuration")
}

/// Sends `n` no-op calls through `client` with `send_many`, `batch` at a time.
pub async fn send_noops(client: &Client, n: u64, batch: usize) -> taskq::Result<()> {
    let batch = batch as u64;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        client
            .send_many(&noop, (start..end).map(|i| (i,)), Options::new())
            .await?;
        start = end;
    }
    Ok(())
}

/// An in-process worker on the benchmark's queue, running until [`stop`](Self::stop).
pub struct RunningWorker {
    stop: taskq::ShutdownHandle,
    running: tokio::task::JoinHandle<taskq::Result<()>>,
}

impl RunningWorker {
    /// Lets the worker connect and block on the empty queue before a clock starts.
    const SETTLE: Duration = Duration::from_millis(300);

    /// Starts a worker of `concurrency` execution slots on [`QUEUE`] and waits for it to
    /// settle.
    pub async fn start(client: &Client, concurrency: usize) -> Self {
        let worker = taskq::Worker::builder(client.clone())
            .concurrency(concurrency)
            .queues([QUEUE])
            .banner(false)
            // The figures are the worker's, not a terminal's: no log line per task.
            .default_logging(false)
            .build();
        let stop = worker.shutdown_handle();
        let running = tokio::spawn(worker.run_until(std::future::pending()));
        tokio::time::sleep(Self::SETTLE).await;
        Self { stop, running }
    }

    /// Shuts the worker down and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.shutdown();
        self.running.await??;
        Ok(())
    }
}

/// How long to wait for `n` tasks before giving up: generous, since a slow machine must still
/// finish, but bounded.
pub fn patience(n: u64) -> Duration {
    Duration::from_secs(60 + n / 500)
}
