//! Command-line options, and the sizes of each scenario they resolve to.

use clap::Parser;
use serde::Serialize;

/// Measures taskq on a local Redis: enqueue rates, drain rate with results stored, round-trip
/// latency at a steady arrival rate, and worker memory; optionally Python Celery side by side.
#[derive(Debug, Parser)]
#[command(name = "taskq-bench", version)]
pub struct Args {
    /// Use this Redis instead of starting a private redis-server (it is FLUSHALLed: dbs 0-2).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,

    /// The redis-server binary to start when no --redis-url is given.
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    pub redis_server: String,

    /// A smaller run (a few seconds per scenario) for a first look or CI.
    #[arg(long)]
    pub quick: bool,

    /// Runs of each scenario but memory, Celery's too; the table shows the median run and the
    /// range of all runs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,

    /// Tasks per throughput scenario (sequential .delay() sends a fifth of it, bulk twice it).
    #[arg(long, value_name = "N")]
    pub tasks: Option<u64>,

    /// Scenarios to run, comma-separated: sequential, concurrent, bulk, drain, latency, memory,
    /// workflow, flow-control, metrics, and cluster (not run unless named).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sequential,concurrent,bulk,drain,latency,memory,workflow,flow-control,metrics"
    )]
    pub scenarios: Vec<Scenario>,

    /// Tokio tasks calling .delay() at once in the concurrent scenario, one run per value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,256",
        value_name = "LIST"
    )]
    pub producers: Vec<usize>,

    /// Calls per delay_many() batch in the bulk scenario.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch: usize,

    /// Worker concurrency settings for the drain scenario, one run per value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,8,64,256",
        value_name = "LIST"
    )]
    pub drain_concurrency: Vec<usize>,

    /// Arrival rates of the latency scenario, tasks per second, one run per value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000",
        value_name = "LIST"
    )]
    pub rates: Vec<u32>,

    /// How long the latency scenario sends (default 10, or 3 with --quick).
    #[arg(long, value_name = "SECS")]
    pub latency_secs: Option<u64>,

    /// Masters of the clusters the cluster scenario starts, one run per value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3",
        value_name = "LIST"
    )]
    pub cluster_masters: Vec<usize>,

    /// Shards the cluster scenario splits its queue into, whatever the masters.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub cluster_shards: usize,

    /// Worker concurrency in the latency and memory scenarios.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub worker_concurrency: usize,

    /// Tasks waiting in Redis for the memory scenario (default 1,000,000, or 100,000 with --quick).
    #[arg(long, value_name = "N")]
    pub memory_tasks: Option<u64>,

    /// Also run Python Celery 5.6 (prefork, one process per core) through the sequential,
    /// drain and latency scenarios on the same redis-server, and print taskq/Celery ratios.
    #[arg(long)]
    pub with_celery: bool,

    /// Tasks for Celery's sequential and drain scenarios (default 10,000, or 2,000 with --quick).
    #[arg(long, value_name = "N")]
    pub celery_tasks: Option<u64>,

    /// The Python used to create Celery's virtual environment.
    #[arg(long, default_value = "python3", value_name = "PATH")]
    pub python: String,

    /// Where to write the figures as JSON (default: target/taskq-bench/results.json).
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,

    /// Where to write the bar chart (default: target/taskq-bench/chart.svg).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

/// One scenario of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `.delay()` one after the other from one tokio task.
    Sequential,
    /// `.delay()` from many tokio tasks at once.
    Concurrent,
    /// `delay_many()` in batches.
    Bulk,
    /// A worker drains pre-enqueued tasks, storing results.
    Drain,
    /// `.delay()` → `.get()` at a steady arrival rate.
    Latency,
    /// A worker process's memory, idle and with a deep queue.
    Memory,
    /// Plain tasks, chain steps and chord parts drained, side by side.
    Workflow,
    /// Plain, unique and rate-limited calls, sent and drained, side by side.
    FlowControl,
    /// The drain with the worker's Prometheus metrics off and on.
    Metrics,
    /// The drain on a Redis Cluster of each of `--cluster-masters` masters (not run by
    /// default: it starts clusters of its own).
    Cluster,
}

/// The sizes a run uses, resolved from the options.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub sequential: u64,
    pub concurrent: u64,
    pub bulk: u64,
    pub drain: u64,
    pub latency_secs: u64,
    pub memory_tasks: u64,
    pub celery_tasks: u64,
}

impl Args {
    /// The number of tasks and seconds of each scenario.
    pub fn sizes(&self) -> Sizes {
        let base = self
            .tasks
            .unwrap_or(if self.quick { 20_000 } else { 100_000 });
        Sizes {
            sequential: (base / 5).max(1),
            concurrent: base,
            bulk: base * 2,
            drain: base,
            latency_secs: self.latency_secs.unwrap_or(if self.quick { 3 } else { 10 }),
            memory_tasks: self
                .memory_tasks
                .unwrap_or(if self.quick { 100_000 } else { 1_000_000 }),
            celery_tasks: self
                .celery_tasks
                .unwrap_or(if self.quick { 2_000 } else { 10_000 }),
        }
    }

    /// Whether `scenario` was asked for.
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}
