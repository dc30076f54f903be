//! The flow-control scenario: what a unique call and a rate-limited task cost against plain
//! ones, side by side.
//!
//! * Sends, no worker running: `n` sequential `.delay()` calls of a plain task; of a unique
//!   task, each call new (every send takes its lock with the enqueue, in one script); of a
//!   unique task, every call the same (one is queued, the rest come back deduplicated).
//! * Drains, an in-process worker: `n` plain no-op tasks; `n` no-op tasks under a fleet-wide
//!   rate limit no worker here reaches (each run takes its turn in Redis first, and its unique
//!   lock is not involved).

use super::{drain, enqueue, patience, Bench};
use crate::cli::Scenario;
use crate::report::Row;
use crate::tasks::{limited_noop, noop, unique_noop};

/// The five rows: three sends of `sends` calls, two drains of `drains` tasks at `concurrency`.
pub async fn flow_control(
    bench: &mut Bench,
    sends: u64,
    drains: u64,
    concurrency: usize,
) -> anyhow::Result<Vec<Row>> {
    Ok(vec![
        sequential(bench, sends, "plain", sends, async |i| noop.delay(i).await).await?,
        sequential(bench, sends, "unique, each call new", sends, async |i| {
            unique_noop.delay(i).await
        })
        .await?,
        sequential(bench, sends, "unique, every call the same", 1, async |_| {
            unique_noop.delay(0).await
        })
        .await?,
        relabel(
            drain::drain(bench, drains, concurrency).await?,
            "drain, plain task",
        ),
        limited_drain(bench, drains, concurrency).await?,
    ])
}

/// `n` sequential sends with `send(i)`, which must queue `queued` messages.
async fn sequential<T>(
    bench: &mut Bench,
    n: u64,
    what: &str,
    queued: u64,
    send: impl AsyncFn(u64) -> taskq::Result<taskq::AsyncResult<T>> + Clone + Send + 'static,
) -> anyhow::Result<Row> {
    let label = format!("sequential .delay(), {what}");
    enqueue::timed_sends(
        bench,
        n,
        queued,
        Scenario::FlowControl,
        label,
        || async move {
            for i in 0..n {
                send(i).await?;
            }
            Ok(())
        },
    )
    .await
}

fn relabel(mut row: Row, what: &str) -> Row {
    row.scenario = Scenario::FlowControl;
    row.label = format!("{what}, {}", row.label.replace("drain with results, ", ""));
    row
}

/// `n` runs of the rate-limited no-op, drained.
async fn limited_drain(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Row> {
    bench.flush().await?;
    let batch = bench.batch as u64;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let calls = (start..end).map(|i| (i,));
        bench
            .stage
            .send_many(&limited_noop, calls, taskq::Options::new())
            .await?;
        start = end;
    }
    let figure = drain::timed(bench, concurrency, n, |bench| {
        Box::pin(bench.wait_drained(n, patience(n)))
    })
    .await?;
    Ok(Row {
        system: crate::report::System::Taskq,
        scenario: Scenario::FlowControl,
        label: format!("drain, rate-limited task (limit not reached), concurrency {concurrency}"),
        repeats: None,
        figure,
    })
}
