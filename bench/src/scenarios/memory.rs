//! The memory scenario: a worker in a process of its own (this executable in its
//! [`--worker-process`](taskq_bench::worker_process) mode), its resident
//! memory read from `/proc` when idle on an empty queue, and then at its peak while it works on
//! a queue of many tasks waiting in Redis. A worker reserves a bounded number of messages, so
//! the second figure should not grow with the depth of the queue.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use taskq_bench::worker_process;

use super::{send_noops, Bench, BROKER_DB, RESULTS_DB};
use crate::cli::Scenario;
use crate::procfs;
use crate::report::{Figure, Memory, Row, System};

/// How often the worker's memory is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Measures a worker of `concurrency` slots idle for `idle`, then busy for `busy` on a queue
/// of `queued` tasks.
pub async fn memory(
    bench: &mut Bench,
    queued: u64,
    concurrency: usize,
    idle: Duration,
    busy: Duration,
) -> anyhow::Result<Row> {
    bench.flush().await?;
    let idle_rss = {
        let worker = WorkerProcess::start(bench, concurrency)?;
        tokio::time::sleep(idle).await;
        worker.rss()?
    };

    let started = Instant::now();
    send_noops(&bench.client, queued, bench.batch).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    let queued_at_start = bench.queued().await?;

    let worker = WorkerProcess::start(bench, concurrency)?;
    let sampled = Instant::now();
    let mut peak = 0;
    while sampled.elapsed() < busy {
        tokio::time::sleep(SAMPLE_EVERY).await;
        peak = peak.max(worker.rss()?);
    }
    let queued_at_end = bench.queued().await?;
    drop(worker);
    bench.flush().await?;

    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Memory,
        label: format!("worker process memory, concurrency {concurrency}"),
        repeats: None,
        figure: Figure::Memory(Memory {
            concurrency,
            idle_rss_mib: mib(idle_rss),
            deep_queue_peak_rss_mib: mib(peak),
            queued_at_start,
            queued_at_end,
            sampled_secs: busy.as_secs_f64(),
            enqueue_secs,
        }),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A worker child process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(bench: &Bench, concurrency: usize) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?;
        let child = Command::new(&binary)
            .arg(worker_process::FLAG)
            .arg(bench.url(BROKER_DB))
            .arg(bench.url(RESULTS_DB))
            .arg(concurrency.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {binary:?}"))?;
        Ok(Self(child))
    }

    /// The worker's resident memory now, in bytes.
    fn rss(&self) -> anyhow::Result<u64> {
        procfs::rss_bytes(&self.0.id().to_string()).context("the worker process has exited")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
