//! The worker: takes messages from the broker, runs the registered tasks, stores results.
//!
//! ```text
//!            ┌──────────┐ deliveries ┌──────────┐ completions ┌───────────┐
//!  broker ──►│ consumer │───────────►│   jobs   │────────────►│ completer │──► results, then acks
//!            └──────────┘            └──────────┘             └───────────┘
//!                 │ ETA not due: park in Redis        ▲
//!                 ▼                                    │
//!            ┌───────────┐  promotes due messages back to their queues
//!            │ scheduler │
//!            └───────────┘
//! ```
//!
//! Beside them, [`control`](self) answers Celery's remote control (`celery inspect`,
//! `celery control revoke`) on the `celery.pidbox` fanout exchange, and, when enabled, the
//! events loop publishes Celery events (`celeryev`) for monitors such as Flower. The revoked
//! ids are loaded from the broker before the consumer takes its first message and topped up
//! every second ([`crate::revoke`]).
//!
//! A message is acknowledged only after its result is stored. On SIGINT/SIGTERM the consumer
//! stops fetching, messages not yet started go back to their queues at once, running tasks get
//! the grace period to finish, and whatever is still running then is cancelled and put back.
//!
//! Each part (`part.rs`) is started by `start_parts` and stopped in the reverse order.

mod autoscale;
mod banner;
mod beat;
mod completer;
mod consumer;
mod control;
mod dead_letter_log;
mod dispatcher;
mod events;
mod executor;
mod health;
mod lease;
mod logging;
mod metrics;
mod node_name;
mod part;
mod pool;
mod queues;
mod rate_limits;
mod recovery;
mod requests;
mod revoked;
mod room;
mod running;
mod scheduler;
mod start_marks;
mod startup;
mod time_limit;
mod workflow;

pub use autoscale::DEFAULT_KEEPALIVE as DEFAULT_AUTOSCALE_KEEPALIVE;
pub use health::{Health, HealthHandle};

/// Installs the log subscriber a worker installs by default (stderr, `RUST_LOG` or INFO,
/// colours only at a terminal), unless the program installed one already: for a process
/// that sends tasks or runs a worker inside itself, to log the way a worker does.
///
/// ```
/// taskq::worker::init_logging();
/// tracing::info!("visible with RUST_LOG=info (the default)");
/// ```
#[cfg(feature = "logging")]
pub fn init_logging() {
    logging::install_default(None);
}

/// The default [`WorkerBuilder::stall_after`].
const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

/// How long "ready" waits for remote control to subscribe to its mailbox.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::RecoverAfter;
use crate::{Client, Config, Result};
use part::Parts;

/// What only a worker has. Everything else a worker runs with (concurrency, queues, timeouts,
/// ...) is its client's [`Config`], read once from the environment and changed by the builder:
/// the worker reads each setting from that one place.
#[derive(Debug, Clone)]
struct Settings {
    /// The node name (see [`WorkerBuilder::hostname`]), templates expanded.
    hostname: String,
    banner: bool,
    stall_after: Duration,
    /// Install a log subscriber at start when the application installed none.
    default_logging: bool,
    /// The level of that subscriber (`--loglevel`); `None`: `RUST_LOG`, else INFO.
    log_level: Option<tracing::level_filters::LevelFilter>,
    /// Run the periodic scheduler (Celery's `-B`).
    beat: bool,
    /// Periodic entries added with [`WorkerBuilder::periodic`], beside the declared ones.
    periodic: Vec<crate::beat::Entry>,
    /// Celery's `--autoscale=max,min`, as `(max, min)`.
    autoscale: Option<(usize, usize)>,
    /// How long the autoscaler keeps slots it added.
    autoscale_keepalive: Duration,
}

/// Runs registered tasks from one or more queues.
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// // Configured from TASKQ_* variables and .env; runs until SIGINT or SIGTERM.
/// taskq::Worker::from_env()?.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct Worker {
    client: Client,
    settings: Settings,
    shutdown: CancellationToken,
    health: HealthHandle,
}

/// Builds a [`Worker`].
///
/// ```
/// use std::time::Duration;
/// use taskq::{Client, Config, Worker};
///
/// let client = Client::from_config(Config::default()).unwrap();
/// let worker = Worker::builder(client)
///     .concurrency(8)
///     .queues(["celery", "reports"])
///     .shutdown_grace(Duration::from_secs(10))
///     .build();
/// ```
#[derive(Debug)]
pub struct WorkerBuilder {
    client: Client,
    /// The client's configuration, as the builder's methods change it.
    config: Config,
    settings: Settings,
}

impl WorkerBuilder {
    /// How many tasks run at once (Celery's `-c`; default: `TASKQ_CONCURRENCY`, else 100,
    /// [`DEFAULT_CONCURRENCY`](crate::config::DEFAULT_CONCURRENCY)).
    ///
    /// Tasks are `async fn`s sharing one tokio runtime, not processes: a slot costs a few
    /// kilobytes, and a task waiting on the network holds no thread. Celery's default of one
    /// slot per CPU is right for prefork processes but leaves an async worker idle while its
    /// tasks wait on I/O, hence 100, like other async workers. For CPU-bound tasks, use the
    /// CPU count (`-c $(nproc)`): more slots than CPUs only make each task slower. Each slot
    /// reserves up to [`prefetch_multiplier`](Self::prefetch_multiplier) messages.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).concurrency(32).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// The queues to consume, in order of preference among equal priorities.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).queues(["emails", "reports"]).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let queues: Vec<String> = queues.into_iter().map(Into::into).collect();
        if !queues.is_empty() {
            self.config.queues = queues;
        }
        self
    }

    /// Messages reserved per execution slot (default 4, as in Celery). Reserved messages stay
    /// in Redis's `unacked` set, never only in memory.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).prefetch_multiplier(1).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn prefetch_multiplier(mut self, n: usize) -> Self {
        self.config.prefetch_multiplier = n.max(1);
        self
    }

    /// How long running tasks get to finish after a shutdown signal before they are
    /// cancelled and put back in their queues.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).shutdown_grace(std::time::Duration::from_secs(5)).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Store a STARTED state when each task starts (Celery's `task_track_started`).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).track_started(true).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn track_started(mut self, track: bool) -> Self {
        self.config.track_started = track;
        self
    }

    /// Runs the periodic scheduler in this worker too (Celery's `worker -B`), for the entries
    /// declared with [`periodic!`](crate::periodic) and those added with
    /// [`periodic`](Self::periodic). Any number of workers may run it: one leads and sends each
    /// slot once (see [`crate::beat`]).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).beat(true).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn beat(mut self, run: bool) -> Self {
        self.settings.beat = run;
        self
    }

    /// Adds a periodic entry for this worker's scheduler (see [`beat`](Self::beat)), e.g. one
    /// whose schedule comes from the environment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskq::beat::{Entry, Schedule};
    ///
    /// #[taskq::task(name = "tasks.refresh")]
    /// async fn refresh() {}
    ///
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let every = Schedule::every(Duration::from_secs(10));
    /// let worker = taskq::Worker::builder(client)
    ///     .beat(true)
    ///     .periodic(Entry::new("refresh", every, |_slot| refresh.s()))
    ///     .build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn periodic(mut self, entry: crate::beat::Entry) -> Self {
        self.settings.periodic.push(entry);
        self
    }

    /// Store the task's name, arguments, worker, retries and queue in each result record
    /// (Celery's `result_extended`, see [`Config::result_extended`]).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).result_extended(true).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn result_extended(mut self, extended: bool) -> Self {
        self.config.result_extended = extended;
        self
    }

    /// How many times to put back a task this worker does not know, with backoff (1 s, 2 s,
    /// 4 s, ...), so that another worker that knows it can take it; after that it is stored as
    /// FAILURE (`NotRegistered`) and dead-lettered. `0` fails it at once.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).unknown_task_retries(0).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn unknown_task_retries(mut self, retries: u32) -> Self {
        self.config.unknown_task_retries = retries;
        self
    }

    /// How long a dead or frozen taskq worker's messages stay claimed before recovery returns
    /// them (see [`Config::visibility_timeout`]). This worker renews its own leases every
    /// quarter of it and runs recovery as often.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).visibility_timeout(std::time::Duration::from_secs(60)).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.config.visibility_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// Lets this worker's recovery return messages held by Python Celery workers after
    /// `timeout` (see [`Config::celery_visibility_timeout`]). By default it never does:
    /// kombu's restore in the Python workers does, with their own timeout.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client)
    ///     .celery_visibility_timeout(std::time::Duration::from_secs(7200))
    ///     .build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn celery_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.config.celery_visibility_timeout = Some(timeout);
        self
    }

    /// How long the consumer may go without a successful round trip to the broker (while
    /// not merely waiting for a free slot) before [`HealthHandle::check`] calls the worker
    /// unhealthy and remote control's `ping` answers with an error. 30 s by default.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).stall_after(std::time::Duration::from_secs(60)).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn stall_after(mut self, limit: Duration) -> Self {
        self.settings.stall_after = limit;
        self
    }

    /// Refuse to start unless Redis's `maxmemory-policy` is `noeviction` (by default a
    /// worker only warns): with any other policy, Redis may evict queued messages.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).require_noeviction(true).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn require_noeviction(mut self, require: bool) -> Self {
        self.config.require_noeviction = require;
        self
    }

    /// The node name shown in logs, STARTED records, events and `celery inspect` (default
    /// `TASKQ_HOSTNAME`, else `taskq-<pid>@<host name>`, unique per worker). Takes Celery's
    /// `-n` templates: `%h` (host name), `%n` (host name without its domain), `%d` (domain).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).hostname("reports@host-7").build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.settings.hostname = node_name::expand(&name.into(), &crate::hostname());
        self
    }

    /// Whether to print the start-up banner (default: yes).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).banner(false).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn banner(mut self, show: bool) -> Self {
        self.settings.banner = show;
        self
    }

    /// Whether the worker installs a log subscriber when it starts and the application has
    /// installed none (default: yes, with the `logging` feature): `fmt` lines on stderr at
    /// INFO, or what `RUST_LOG` or [`log_level`](Self::log_level) says. Without a subscriber
    /// tracing drops every event, and a worker would run without a word. An application
    /// that installs its own subscriber before the worker starts keeps it.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).default_logging(false).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn default_logging(mut self, install: bool) -> Self {
        self.settings.default_logging = install;
        self
    }

    /// The level of the subscriber installed by [`default_logging`](Self::default_logging)
    /// (Celery's `--loglevel`), instead of `RUST_LOG` (else INFO). It does not change a
    /// subscriber the application installed.
    ///
    /// ```
    /// use tracing::level_filters::LevelFilter;
    ///
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).log_level(LevelFilter::DEBUG).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn log_level(mut self, level: tracing::level_filters::LevelFilter) -> Self {
        self.settings.log_level = Some(level);
        self
    }

    /// Publish Celery task events for monitors such as Flower and `celery events` (Celery's
    /// `-E`; default: `TASKQ_SEND_EVENTS`, else off). Worker heartbeats are sent while events
    /// are on; the `enable_events` / `disable_events` remote-control commands switch them too.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).send_events(true).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn send_events(mut self, send: bool) -> Self {
        self.config.send_events = send;
        self
    }

    /// Serves Prometheus metrics on `addr` (`GET /metrics`): tasks received, succeeded,
    /// failed, retried, revoked and dead-lettered by task name, run and wait times, running
    /// and prefetched tasks, slots, lease renewals, recoveries and broker errors. Off unless
    /// set (here, with `--metrics-addr` or `TASKQ_METRICS_ADDR`); the worker fails to start if
    /// it cannot listen there. See the README's Metrics section for every name.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client)
    ///     .metrics_addr("127.0.0.1:9808".parse().unwrap())
    ///     .build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.config.metrics_addr = Some(addr);
        self
    }

    /// Scales the execution slots between `min` and `max` with the work held (Celery's
    /// `--autoscale=max,min`): the worker starts with `min` slots, adds slots up to `max`
    /// while more tasks wait than it has slots, and removes them back toward `min` once it
    /// holds fewer, not sooner than [`autoscale_keepalive`](Self::autoscale_keepalive) after it
    /// last grew. It reserves messages for `max` slots. Replaces
    /// [`concurrency`](Self::concurrency); remote control's `autoscale` changes the range, and
    /// `pool_grow` / `pool_shrink` are refused, as in Celery. A `min` above `max` is lowered
    /// to it, and `max` is at least 1.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).autoscale(10, 2).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn autoscale(mut self, max: usize, min: usize) -> Self {
        let max = max.max(1);
        self.settings.autoscale = Some((max, min.min(max)));
        self
    }

    /// How long the autoscaler keeps slots it added before it may remove them again
    /// (Celery's `AUTOSCALE_KEEPALIVE`, default
    /// [`crate::worker::DEFAULT_AUTOSCALE_KEEPALIVE`], 30 s).
    /// Only matters with [`autoscale`](Self::autoscale).
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client)
    ///     .autoscale(10, 2)
    ///     .autoscale_keepalive(std::time::Duration::from_secs(5))
    ///     .build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn autoscale_keepalive(mut self, keepalive: Duration) -> Self {
        self.settings.autoscale_keepalive = keepalive;
        self
    }

    /// The worker.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker: taskq::Worker = taskq::Worker::builder(client).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn build(self) -> Worker {
        let health = HealthHandle::new(self.settings.stall_after);
        // The same broker and result store, with the configuration as built.
        let client = Client::with_parts(
            self.client.broker().clone(),
            self.client.backend().clone(),
            self.config,
        );
        Worker {
            client,
            settings: self.settings,
            shutdown: CancellationToken::new(),
            health,
        }
    }
}

/// Stops a running worker from elsewhere (another task, a test, an admin endpoint).
///
/// ```
/// # let client = taskq::Client::from_config(taskq::Config::default()).unwrap();
/// let worker = taskq::Worker::builder(client).build();
/// let handle = worker.shutdown_handle();
/// handle.shutdown(); // the worker stops as on SIGTERM
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Asks the worker to shut down gracefully.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).build();
    /// worker.shutdown_handle().shutdown();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

impl Worker {
    /// A builder for a worker on `client`, with settings from the client's configuration.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).concurrency(4).build();
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn builder(client: Client) -> WorkerBuilder {
        let config = client.config().clone();
        let settings = Settings {
            hostname: node_name::for_new_worker(config.worker_name.as_deref(), &crate::hostname()),
            banner: true,
            stall_after: DEFAULT_STALL_AFTER,
            default_logging: true,
            log_level: None,
            beat: false,
            periodic: Vec::new(),
            autoscale: None,
            autoscale_keepalive: autoscale::DEFAULT_KEEPALIVE,
        };
        WorkerBuilder {
            client,
            config,
            settings,
        }
    }

    /// A worker configured from the environment and `.env` (see [`Config`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a bad setting.
    ///
    /// ```no_run
    /// let worker = taskq::Worker::from_env()?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Ok(Self::builder(Client::from_env()?).build())
    }

    /// A handle that stops this worker.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let worker = taskq::Worker::builder(client).build();
    /// let handle = worker.shutdown_handle();
    /// std::thread::spawn(move || handle.shutdown());
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// A handle that tells whether this worker consumes: for a liveness probe. See
    /// [`HealthHandle`] and [`WorkerBuilder::stall_after`].
    pub fn health(&self) -> HealthHandle {
        self.health.clone()
    }

    /// Runs until SIGINT or SIGTERM (or a [`ShutdownHandle`]), then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// As [`Worker::run_until`]: Redis refusing the credentials or not reachable at start.
    ///
    /// ```no_run
    /// # async fn demo() -> taskq::Result<()> {
    /// taskq::Worker::from_env()?.run().await
    /// # }
    /// ```
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `stop` completes (or a [`ShutdownHandle`] fires), then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) when Redis refuses the worker's credentials,
    /// when it cannot be reached at start (after Celery's 100 tries, 2 s to 30 s apart, each
    /// logged; `stop` ends the wait), or when
    /// `require_noeviction` is set and Redis may evict keys; each names the address with its
    /// password masked. "worker ready" is logged only after Redis answered. Outages after the
    /// start are logged and retried, not returned.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://run-until-doc".into();
    /// config.result_backend = "memory://run-until-doc".into();
    /// let worker = taskq::Worker::builder(taskq::Client::from_config(config)?).banner(false).build();
    /// // Stops after 100 ms, as it would on SIGTERM.
    /// worker.run_until(tokio::time::sleep(std::time::Duration::from_millis(100))).await
    /// # }
    /// ```
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<()> {
        if self.settings.default_logging {
            logging::install_default(self.settings.log_level);
        }
        // Waiting for Redis at start can take long (as Celery's retry does); a stop request
        // ends it, with nothing started yet.
        tokio::pin!(stop);
        tokio::select! {
            checked = startup::check_redis(&self.client) => checked?,
            () = &mut stop => return Ok(()),
            () = self.shutdown.cancelled() => return Ok(()),
        }
        check_eviction_policy(&self.client).await?;
        if self.settings.banner {
            println!("{}", banner::render(&self.client, &self.settings));
        }
        for warning in startup::registry_warnings(self.client.config()) {
            tracing::warn!("{warning}");
        }
        let periodic = self.beat_entries()?;
        let metrics_listener = metrics::listen(self.client.config()).await?;
        let (shared, event_queue) = Shared::new(
            self.client,
            self.settings,
            self.shutdown.clone(),
            self.health.clone(),
        );
        shared.health.set_running(true);
        let (control_subscribed, subscribed) = oneshot::channel();
        let mut parts = start_parts(&shared, event_queue, control_subscribed, metrics_listener);
        if let Some(entries) = periodic {
            parts.push(beat::BeatPart::start(shared.client.clone(), entries));
        }
        // "ready" means `celery inspect ping` (and a web app asking whether a worker runs)
        // gets an answer. Bounded: a Redis that stalls right now must not keep the worker
        // from its tasks; control subscribes on its own when it can.
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, subscribed).await;
        tracing::info!(node = %shared.settings.hostname, "worker ready");

        tokio::select! {
            () = &mut stop => {}
            () = self.shutdown.cancelled() => {}
        }
        tracing::info!("worker shutting down: no new tasks are taken");
        parts.shutdown().await;
        shared.dead_letter_log.report();
        shared.health.set_running(false);
        tracing::info!("worker stopped");
        Ok(())
    }
}

impl Worker {
    /// The periodic entries to schedule, when this worker runs the scheduler: the declared
    /// ones and the builder's.
    fn beat_entries(&self) -> Result<Option<Vec<crate::beat::Entry>>> {
        if !self.settings.beat {
            return Ok(None);
        }
        let mut entries = crate::beat::declared()?;
        for entry in &self.settings.periodic {
            if entries.iter().any(|e| e.name() == entry.name()) {
                return Err(crate::Error::Config(format!(
                    "two periodic entries are named {:?}",
                    entry.name()
                )));
            }
            entries.push(entry.clone());
        }
        if entries.is_empty() {
            tracing::warn!(
                "-B/--beat: no periodic entries (declare them with taskq::periodic! or add them \
                 with WorkerBuilder::periodic); the scheduler has nothing to send"
            );
        }
        Ok(Some(entries))
    }
}

/// Starts the worker's parts in the order they depend on each other; shutdown stops them in
/// reverse: the consumer stops taking messages, the dispatcher puts back what never started
/// and drains the running tasks, revoke sync, recovery and the scheduler stop, the completer
/// settles the last results, then lease renewal stops (nothing is held any more), remote
/// control, and last the event publisher, so the events of tasks that finished in the drain
/// go out before `worker-offline`.
fn start_parts(
    shared: &Arc<Shared>,
    event_queue: mpsc::UnboundedReceiver<crate::protocol::RawObject>,
    control_subscribed: oneshot::Sender<()>,
    metrics_listener: Option<metrics::Listener>,
) -> Parts {
    let config = shared.config();
    let broker = shared.client.broker();
    let (completions, completed) = mpsc::unbounded_channel();
    let (ready, to_start) = mpsc::unbounded_channel();
    let (revokes_loaded, revokes_ready) = oneshot::channel();
    let mut recover_after = RecoverAfter::new(config.visibility_timeout);
    if let Some(unleased) = config.celery_visibility_timeout {
        recover_after = recover_after.unleased_after(unleased);
    }

    let mut parts = Parts::default();
    if let Some(listener) = metrics_listener {
        metrics::serve(&mut parts, shared.clone(), listener);
    }
    parts.push(events::EventPublisher::start(shared.clone(), event_queue));
    parts.push(control::Control::start(shared.clone(), control_subscribed));
    parts.push(lease::LeaseRenewer::start(
        broker,
        shared.held.clone(),
        config.visibility_timeout,
        shared.metrics.clone(),
    ));
    parts.push(completer::Completer::start(shared.clone(), completed));
    parts.push(scheduler::Scheduler::start(
        shared.client.clone(),
        shared.parked.clone(),
    ));
    parts.push(recovery::Recovery::start(
        broker.clone(),
        shared.held.clone(),
        recover_after,
        shared.metrics.clone(),
    ));
    parts.push(revoked::RevokeSync::start(
        broker.clone(),
        shared.revoked.clone(),
        revokes_loaded,
    ));
    if shared.autoscaler.is_some() {
        parts.push(autoscale::AutoscalePart::start(shared.clone()));
    }
    parts.push(dispatcher::Dispatcher::start(shared.clone(), to_start));
    parts.push(consumer::Consumer::start(
        shared.clone(),
        revokes_ready,
        completions,
        ready,
    ));
    parts
}

/// Warns (or, when required, refuses to start) when Redis may evict messages under memory
/// pressure. Not being able to read the policy is not an error.
async fn check_eviction_policy(client: &Client) -> Result<()> {
    match client.broker().eviction_policy().await {
        Ok(Some(policy)) if policy != "noeviction" => {
            let problem = format!(
                "Redis maxmemory-policy is {policy}: under memory pressure Redis may evict \
                 queued messages and results; set it to noeviction"
            );
            if client.config().require_noeviction {
                return Err(crate::Error::Config(problem));
            }
            tracing::warn!("{problem}");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read Redis's maxmemory-policy"),
    }
    Ok(())
}

/// State shared by the worker's parts.
#[derive(Debug)]
struct Shared {
    client: Client,
    settings: Settings,
    /// Execution slots: at most `concurrency` tasks run at once.
    execution_slots: Arc<Semaphore>,
    /// Reservation slots: at most `concurrency × prefetch` messages held unfinished.
    reservation_slots: Arc<Semaphore>,
    /// Stop fetching and starting tasks.
    stopping: CancellationToken,
    /// Cancel running tasks (after the grace period).
    hard_stop: CancellationToken,
    /// Every job, so shutdown can wait for them.
    jobs: TaskTracker,
    /// Wakes the scheduler when a message was parked.
    parked: Arc<Notify>,
    /// Tasks running now, and counts of finished ones.
    running_tasks: running::Running,
    /// Revoked ids: the broker's set, kept here, plus those just revoked by remote control.
    revoked: Arc<revoked::RevokedSet>,
    /// Celery events switch and queue.
    events: events::Events,
    /// Lamport clock shared with Celery nodes through events and remote control.
    lamport_clock: AtomicU64,
    /// When the worker started, for `stats`' uptime.
    started: Instant,
    /// The messages this worker holds in `unacked`, whose leases it renews, and how long each
    /// lease is known to last.
    held: Arc<lease::Held>,
    /// Whether the consumer consumes.
    health: HealthHandle,
    /// Closed while Redis refuses this worker's writes for lack of memory.
    room: room::Room,
    /// Log lines for dead letters, limited.
    dead_letter_log: Arc<dead_letter_log::DeadLetterLog>,
    /// Marks messages started in Redis before their tasks run.
    start_marks: start_marks::StartMarks,
    /// Rate limits by task name (the turns are the broker's).
    rate_limits: rate_limits::RateLimits,
    /// Prometheus metrics, when the worker serves them.
    metrics: metrics::Recorder,
    /// The execution and reservation slots' sizes, changed by remote control and the
    /// autoscaler.
    pool: pool::Pool,
    /// The autoscaler, when the worker autoscales.
    autoscaler: Option<autoscale::Autoscaler>,
    /// Tasks fetched and waiting for a slot, and ETA tasks parked here.
    requests: requests::Requests,
    /// The queues consumed, and those paused.
    queues: queues::Queues,
    /// Time limits changed by remote control.
    time_limits: time_limit::Overrides,
}

impl Shared {
    fn new(
        client: Client,
        settings: Settings,
        stopping: CancellationToken,
        health: HealthHandle,
    ) -> (
        Arc<Self>,
        mpsc::UnboundedReceiver<crate::protocol::RawObject>,
    ) {
        let config = client.config();
        // An autoscaling worker starts with its minimum and reserves for its maximum.
        let (slots, most) = settings
            .autoscale
            .map_or((config.concurrency, config.concurrency), |(max, min)| {
                (min, max)
            });
        let prefetch = config.prefetch_multiplier;
        let execution_slots = Arc::new(Semaphore::new(slots));
        let reservation_slots = Arc::new(Semaphore::new((most * prefetch).max(1)));
        let pool = pool::Pool::new(
            execution_slots.clone(),
            reservation_slots.clone(),
            prefetch,
            stopping.clone(),
        );
        let autoscaler = settings.autoscale.map(|(max, min)| {
            autoscale::Autoscaler::new(autoscale::Range {
                max,
                min,
                keepalive: settings.autoscale_keepalive,
            })
        });
        let queues = queues::Queues::new(config.queues.clone());
        let (events, event_queue) = events::Events::new(config.send_events);
        let held = Arc::new(lease::Held::new(config.visibility_timeout));
        let metrics = metrics::Recorder::new(config.metrics_addr.is_some());
        let start_marks = start_marks::StartMarks::start(client.broker().clone());
        let shared = Arc::new(Self {
            client,
            execution_slots,
            reservation_slots,
            pool,
            autoscaler,
            requests: requests::Requests::default(),
            queues,
            time_limits: time_limit::Overrides::default(),
            settings,
            stopping,
            hard_stop: CancellationToken::new(),
            jobs: TaskTracker::new(),
            parked: Arc::new(Notify::new()),
            running_tasks: running::Running::default(),
            held,
            revoked: Arc::default(),
            events,
            lamport_clock: AtomicU64::new(0),
            started: Instant::now(),
            health,
            room: room::Room::new(),
            dead_letter_log: dead_letter_log::DeadLetterLog::new(),
            start_marks,
            rate_limits: rate_limits::RateLimits::declared(),
            metrics,
        });
        (shared, event_queue)
    }

    /// The configuration the worker runs with (its client's, as the builder left it).
    fn config(&self) -> &Config {
        self.client.config()
    }

    /// How many tasks this worker holds: running, and waiting for a slot (the autoscaler's
    /// measure, Celery's `len(reserved_requests)`).
    fn tasks_held(&self) -> usize {
        self.running_tasks.active_count() + self.requests.reserved_count()
    }

    /// Advances the Lamport clock for an event or reply and returns the new value.
    fn tick(&self) -> u64 {
        self.lamport_clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Moves the Lamport clock past a value another node sent.
    fn adjust_clock(&self, other: u64) {
        self.lamport_clock.fetch_max(other + 1, Ordering::Relaxed);
    }

    /// The broker's clock now, estimated from the last fetch (the client's clock, which a
    /// task sending with a countdown uses too).
    fn broker_now(&self) -> f64 {
        self.client.clock().estimate()
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: what [`Worker::run`] waits for. Useful to stop
/// a web server and an embedded worker on the same signal.
///
/// ```no_run
/// # async fn demo(worker: taskq::Worker) -> taskq::Result<()> {
/// let stop = worker.shutdown_handle();
/// let running = tokio::spawn(worker.run_until(std::future::pending()));
/// taskq::worker::shutdown_signal().await; // e.g. as axum's graceful shutdown
/// stop.shutdown();
/// running.await.expect("worker task")?;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
