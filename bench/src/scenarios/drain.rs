//! The drain scenario: an in-process taskq worker works through a full queue of no-op tasks,
//! storing every result and acknowledging every message, with its reliability machinery on
//! (messages tracked in `unacked` with leases, results stored before acks).
//!
//! The messages are queued beforehand in the staging database; the clock starts when the
//! whole list is moved into the broker's database, with the worker already running and
//! waiting, and stops when every result is stored and nothing is left unacknowledged.

use std::time::Instant;

use super::{patience, Bench, RunningWorker};
use crate::cli::Scenario;
use crate::report::{Figure, Row, System, Throughput};

/// Drains `n` tasks with a worker of `concurrency` execution slots.
pub async fn drain(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Row> {
    bench.flush().await?;
    bench.stage_noops(n).await?;
    let figure = timed(bench, concurrency, n, |bench| {
        Box::pin(bench.wait_drained(n, patience(n)))
    })
    .await?;
    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Drain,
        label: format!("drain with results, concurrency {concurrency}"),
        repeats: None,
        figure,
    })
}

/// What a drain waits for before its clock stops.
pub(super) type Wait<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Starts a worker of `concurrency` slots, releases the staged messages (`tasks` of them to
/// run) and times `wait`, with the cost per task.
pub(super) async fn timed(
    bench: &mut Bench,
    concurrency: usize,
    tasks: u64,
    wait: impl for<'a> FnOnce(&'a mut Bench) -> Wait<'a>,
) -> anyhow::Result<Figure> {
    let worker = RunningWorker::start(&bench.client, concurrency).await;
    let probe = bench.probe().await?;
    let started = Instant::now();
    bench.release_staged().await?;
    let done = wait(bench).await;
    let secs = started.elapsed().as_secs_f64();
    let cost = bench.cost(probe, tasks).await?;
    worker.stop().await?;
    done?;
    Ok(Figure::Throughput(Throughput::new(tasks, secs, Some(cost))))
}
