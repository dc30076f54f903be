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
    let trickle = trickle(bench, queued / 5, concurrency).await?;

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
            trickle_tasks: trickle.tasks,
            trickle_rss_quarter_mib: mib(trickle.quarter),
            trickle_rss_end_mib: mib(trickle.end),
            trickle_rss_idle_after_mib: mib(trickle.idle_after),
            trickle_growth_bytes_per_task: trickle.end.saturating_sub(trickle.quarter) as f64
                / (trickle.tasks - trickle.tasks / 4).max(1) as f64,
        }),
    })
}

/// Resident memory of a worker fed one task at a time, in bytes.
struct Trickle {
    tasks: u64,
    quarter: u64,
    end: u64,
    idle_after: u64,
}

/// Sends `tasks` no-op tasks one at a time to a fresh worker, which runs each as it comes and
/// mostly waits in between, and reads its memory along the way.
async fn trickle(bench: &mut Bench, tasks: u64, concurrency: usize) -> anyhow::Result<Trickle> {
    let worker = WorkerProcess::start(bench, concurrency)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut quarter = 0;
    for i in 0..tasks {
        if i == tasks / 4 {
            quarter = worker.rss()?;
        }
        bench
            .client
            .send(&crate::tasks::noop, (i,), taskq::Options::new())
            .await?;
    }
    // Let the worker finish what was sent, then read it busy-done and idle.
    while bench.queued().await? > 0 {
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let end = worker.rss()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_after = worker.rss()?;
    drop(worker);
    bench.flush().await?;
    Ok(Trickle {
        tasks,
        quarter,
        end,
        idle_after,
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
