//! The workflow scenario: what a chain step and a chord part cost against a plain task. The
//! same number of no-op tasks is drained three ways by an in-process worker:
//!
//! * plain: `n` independent tasks (the drain scenario);
//! * chain steps: `n / 2` chains of two steps, so each first step sends its next step (with
//!   the chain in its embed) before its result is stored;
//! * chord parts: one chord of `n` parts, each counted in the result store
//!   (`CHORD_PART_RETURN`) after its result is stored, and the body sent by the last.
//!
//! Messages are staged in db 2 and released at once, as in the drain scenario; the clock
//! stops when every step's result (or the chord's body's) is stored and nothing is
//! unacknowledged.

use taskq::protocol::Signature;

use super::{drain, patience, Bench};
use crate::cli::Scenario;
use crate::report::{Row, System};

/// Staging sends this many workflows at once.
const STAGE_AT_ONCE: usize = 256;

/// The three rows: plain tasks, chain steps, chord parts, each `n` tasks at `concurrency`.
pub async fn workflow(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Vec<Row>> {
    let plain = drain::drain(bench, n, concurrency).await?;
    let chains = chain_steps(bench, n, concurrency).await?;
    let chord = chord_parts(bench, n, concurrency).await?;
    Ok(vec![relabel(plain, "plain tasks"), chains, chord])
}

fn relabel(mut row: Row, what: &str) -> Row {
    row.scenario = Scenario::Workflow;
    row.label = format!("{what}, {}", row.label.replace("drain with results, ", ""));
    row
}

/// `n / 2` chains of two no-op steps.
async fn chain_steps(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Row> {
    let chains = n / 2;
    bench.flush().await?;
    let all: Vec<Signature> = (0..chains).map(chain_of_two).collect();
    for batch in all.chunks(STAGE_AT_ONCE) {
        let sends = batch.iter().map(|sig| bench.stage.apply(sig.clone()));
        futures_util::future::try_join_all(sends).await?;
    }
    let tasks = chains * 2;
    timed(
        bench,
        concurrency,
        tasks,
        "chain steps (chains of 2)",
        |bench| Box::pin(bench.wait_drained(tasks, patience(tasks))),
    )
    .await
}

/// One chord of `n` no-op parts with a no-op body.
async fn chord_parts(bench: &mut Bench, n: u64, concurrency: usize) -> anyhow::Result<Row> {
    bench.flush().await?;
    let sent = bench.stage.apply(chord_of(n)).await?;
    let body_key = format!("celery-task-meta-{}", sent.id());
    timed(
        bench,
        concurrency,
        n,
        &format!("chord parts (one chord of {n})"),
        move |bench| Box::pin(async move { bench.wait_stored(&body_key, patience(n)).await }),
    )
    .await
}

/// The row of a workflow drain: `tasks` run, timed until `wait` is over.
async fn timed(
    bench: &mut Bench,
    concurrency: usize,
    tasks: u64,
    what: &str,
    wait: impl for<'a> FnOnce(&'a mut Bench) -> drain::Wait<'a>,
) -> anyhow::Result<Row> {
    let figure = drain::timed(bench, concurrency, tasks, wait).await?;
    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Workflow,
        label: format!("{what}, concurrency {concurrency}"),
        repeats: None,
        figure,
    })
}

fn chain_of_two(i: u64) -> Signature {
    let step = |arg: Option<u64>| match arg {
        Some(i) => serde_json::json!({"task": "bench.noop", "args": [i]}),
        None => serde_json::json!({"task": "bench.noop"}),
    };
    let chain = serde_json::json!({
        "task": "celery.chain", "subtask_type": "chain",
        "kwargs": {"tasks": [step(Some(i)), step(None)]},
    });
    serde_json::from_value(chain).expect("a chain signature")
}

fn chord_of(n: u64) -> Signature {
    let header: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"task": "bench.noop", "args": [i]}))
        .collect();
    let chord = serde_json::json!({
        "task": "celery.chord", "subtask_type": "chord",
        "kwargs": {"header": header, "body": {"task": "bench.count"}, "kwargs": {}},
    });
    serde_json::from_value(chord).expect("a chord signature")
}
