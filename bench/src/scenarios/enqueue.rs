//! Producer scenarios: how fast tasks get onto the queue with `.delay()` one at a time, with
//! `.delay()` from many tokio tasks at once (a busy web app), and with `delay_many()`.
//! No worker runs; each scenario checks that every message arrived.

use std::future::Future;
use std::time::Instant;

use anyhow::bail;
use tokio::task::JoinSet;

use super::Bench;
use crate::cli::Scenario;
use crate::report::{Figure, Row, System, Throughput};
use crate::tasks::noop;

/// `n` calls of `noop.delay(i)`, each awaited before the next, from one tokio task.
pub async fn sequential(bench: &mut Bench, n: u64) -> anyhow::Result<Row> {
    let label = "sequential .delay(), 1 tokio task".to_owned();
    timed_enqueue(bench, n, Scenario::Sequential, label, || async move {
        // On a runtime worker thread, as a web handler runs, not on the thread blocked in main.
        tokio::spawn(async move {
            for i in 0..n {
                noop.delay(i).await?;
            }
            Ok::<(), taskq::Error>(())
        })
        .await??;
        Ok(())
    })
    .await
}

/// `n` calls of `noop.delay(i)` shared among `producers` tokio tasks running at once.
pub async fn concurrent(bench: &mut Bench, n: u64, producers: usize) -> anyhow::Result<Row> {
    let producers = producers.max(1) as u64;
    let label = format!("concurrent .delay(), {producers} tokio tasks");
    timed_enqueue(bench, n, Scenario::Concurrent, label, || async move {
        let mut running: JoinSet<taskq::Result<()>> = JoinSet::new();
        for p in 0..producers {
            // Producer p sends i = p, p + producers, p + 2 * producers, ...
            running.spawn(async move {
                for i in (p..n).step_by(producers as usize) {
                    noop.delay(i).await?;
                }
                Ok(())
            });
        }
        while let Some(done) = running.join_next().await {
            done??;
        }
        Ok(())
    })
    .await
}

/// `n` calls sent with `noop.delay_many(..)`, `batch` per call.
pub async fn bulk(bench: &mut Bench, n: u64) -> anyhow::Result<Row> {
    let batch = bench.batch as u64;
    let label = format!("bulk delay_many(), {batch} per batch");
    timed_enqueue(bench, n, Scenario::Bulk, label, || async move {
        let mut start = 0;
        while start < n {
            let end = (start + batch).min(n);
            noop.delay_many((start..end).map(|i| (i,))).await?;
            start = end;
        }
        Ok(())
    })
    .await
}

/// Times `send`, which must queue `n` tasks, from an empty Redis, with its CPU costs, and
/// checks that all `n` arrived.
async fn timed_enqueue<F, Fut>(
    bench: &mut Bench,
    n: u64,
    scenario: Scenario,
    label: String,
    send: F,
) -> anyhow::Result<Row>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    timed_sends(bench, n, n, scenario, label, send).await
}

/// Times `send`, which makes `n` sends that must queue `queued` tasks (fewer when sends are
/// deduplicated), from an empty Redis, with its CPU costs per send.
pub(super) async fn timed_sends<F, Fut>(
    bench: &mut Bench,
    n: u64,
    queued: u64,
    scenario: Scenario,
    label: String,
    send: F,
) -> anyhow::Result<Row>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    bench.flush().await?;
    let probe = bench.probe().await?;
    let started = Instant::now();
    send().await?;
    let secs = started.elapsed().as_secs_f64();
    let cost = bench.cost(probe, n).await?;
    expect_queued(bench, queued).await?;
    Ok(Row {
        system: System::Taskq,
        scenario,
        label,
        repeats: None,
        figure: Figure::Throughput(Throughput::new(n, secs, Some(cost))),
    })
}

async fn expect_queued(bench: &mut Bench, n: u64) -> anyhow::Result<()> {
    let queued = bench.queued().await?;
    if queued != n {
        bail!("{queued} messages queued instead of {n}");
    }
    Ok(())
}
