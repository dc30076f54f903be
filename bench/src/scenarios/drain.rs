//! The drain scenario: an in-process taskq worker works through a full queue of no-op tasks,
//! storing every result and acknowledging every message, with its reliability machinery on
//! (messages tracked in `unacked` with leases, results stored before acks).
//!
//! The messages are queued beforehand in the staging database; the clock starts when the
//! whole list is moved into the broker's database, with the worker already running and
//! waiting, and stops when every result is stored and nothing is left unacknowledged.

use std::time::{Duration, Instant};

use taskq::Worker;

use super::{patience, Bench, QUEUE};
use crate::cli::Scenario;
use crate::report::{Figure, Row, System, Throughput};

/// Lets the worker connect and block on the empty queue before the clock starts.
const SETTLE: Duration = Duration::from_millis(300);

/// Drains `n` tasks with a worker of `concurrency` execution slots.
pub async fn drain(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Row> {
    bench.flush().await?;
    bench.stage_noops(n).await?;
    let worker = Worker::builder(bench.client.clone())
        .concurrency(concurrency)
        .queues([QUEUE])
        .banner(false)
        .build();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    tokio::time::sleep(SETTLE).await;

    let probe = bench.probe().await?;
    let started = Instant::now();
    bench.release_staged().await?;
    let drained = bench.wait_drained(n, patience(n)).await;
    let secs = started.elapsed().as_secs_f64();
    let cost = bench.cost(probe, n).await?;

    stop.shutdown();
    running.await??;
    drained?;
    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Drain,
        label: format!("drain with results, concurrency {concurrency}"),
        figure: Figure::Throughput(Throughput::new(n, secs, Some(cost))),
    })
}
