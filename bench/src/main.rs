//! `taskq-bench`: measures taskq against a local Redis, and optionally Python Celery beside it.
//!
//! Run with: `cargo run --release -p taskq-bench -- [--quick] [--with-celery]`
//! (`--help` lists every option). It starts its own redis-server on a free loopback port with
//! persistence off, unless given `--redis-url`; prints a table; writes the figures as JSON and
//! a bar chart as SVG under `target/taskq-bench/`.

mod celery;
mod chart;
mod cli;
mod cluster;
mod machine;
mod probe;
mod redis_server;
mod report;
mod scenarios;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use taskq_bench::{procfs, tasks, worker_process};

use crate::cli::{Args, Scenario};
use crate::machine::Machine;
use crate::redis_server::RedisServer;
use crate::report::{Report, Row};
use crate::scenarios::{
    cluster as cluster_drain, drain, enqueue, floor, flow_control, latency, memory, metrics,
    workflow, Bench,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some(worker_process::FLAG) {
        return worker_process::run(argv.skip(1)).await;
    }
    let args = Args::parse();
    let work_dir = target_dir().join("taskq-bench");
    std::fs::create_dir_all(&work_dir)?;

    // Installing Celery is slow and busy: do it before anything is measured.
    let celery_env = if args.with_celery {
        Some(celery::CeleryEnv::prepare(&work_dir, &args.python)?)
    } else {
        None
    };
    let (_server, base_url) = redis(&args, &work_dir)?;
    let mut bench = Bench::connect(&base_url, args.batch).await?;
    let mut machine = Machine::describe(bench.redis_version().await?);
    let sizes = args.sizes();
    eprintln!(
        "{} cores, Redis {} at {base_url}, load average {:?}",
        machine.cores, machine.redis_version, machine.loadavg_start
    );

    let mut rows = run_taskq(&args, &mut bench).await?;
    rows.extend(run_cluster(&args, &work_dir).await?);
    let celery = match &celery_env {
        Some(env) => {
            let (celery_rows, raw) = celery::run_all(env, &base_url, &args, &sizes, machine.cores)?;
            rows.extend(celery_rows);
            Some(raw)
        }
        None => None,
    };
    machine.loadavg_end = Some(machine::loadavg());

    let report = Report {
        ratios: report::ratios(&rows),
        machine,
        sizes,
        quick: args.quick,
        rows,
        celery,
    };
    println!("\n{}", report::render(&report));
    write_outputs(&args, &work_dir, &report)
}

/// Runs the taskq scenarios `args` selects, printing each row as it is measured.
async fn run_taskq(args: &Args, bench: &mut Bench) -> anyhow::Result<Vec<Row>> {
    let sizes = args.sizes();
    let mut rows = Vec::new();
    let mut record = |row: Row| {
        eprintln!("  {}", report::render_row(&row));
        rows.push(row);
    };
    // Opens the producer connection, so that no scenario times it.
    bench.client.broker().ping().await?;
    let times = args.repeat.max(1);
    if args.runs(Scenario::Sequential) {
        let n = sizes.sequential;
        record(repeated(times, async || enqueue::sequential(bench, n).await).await?);
        record(repeated(times, async || floor::sequential_lpush(bench, n).await).await?);
    }
    if args.runs(Scenario::Concurrent) {
        for &producers in &args.producers {
            let n = sizes.concurrent;
            record(
                repeated(times, async || {
                    enqueue::concurrent(bench, n, producers).await
                })
                .await?,
            );
        }
    }
    if args.runs(Scenario::Bulk) {
        record(repeated(times, async || enqueue::bulk(bench, sizes.bulk).await).await?);
    }
    if args.runs(Scenario::Drain) {
        for &concurrency in &args.drain_concurrency {
            let n = sizes.drain;
            record(repeated(times, async || drain::drain(bench, n, concurrency).await).await?);
        }
    }
    if args.runs(Scenario::Latency) {
        let (c, secs) = (args.worker_concurrency, sizes.latency_secs);
        for &rate in &args.rates {
            record(repeated(times, async || latency::latency(bench, rate, secs, c).await).await?);
            record(repeated(times, async || floor::ping_at_rate(bench, rate, secs).await).await?);
        }
    }
    if args.runs(Scenario::Workflow) {
        let concurrency = args.drain_concurrency.iter().copied().max().unwrap_or(256);
        for row in workflow::workflow(bench, sizes.drain, concurrency).await? {
            record(row);
        }
    }
    if args.runs(Scenario::FlowControl) {
        let concurrency = args.drain_concurrency.iter().copied().max().unwrap_or(256);
        let (sends, drains) = (sizes.sequential, sizes.drain);
        for row in flow_control::flow_control(bench, sends, drains, concurrency).await? {
            record(row);
        }
    }
    if args.runs(Scenario::Metrics) {
        for &c in &args.drain_concurrency {
            let n = sizes.drain;
            for on in [false, true] {
                record(repeated(times, async || metrics::drain(bench, n, c, on).await).await?);
            }
        }
    }
    if args.runs(Scenario::Memory) {
        let (idle, busy) = if args.quick { (1, 3) } else { (3, 5) };
        let (idle, busy) = (Duration::from_secs(idle), Duration::from_secs(busy));
        let c = args.worker_concurrency;
        record(memory::memory(bench, sizes.memory_tasks, c, idle, busy).await?);
    }
    eprintln!(
        "benchmark process peak RSS: {:.1} MiB",
        procfs::peak_rss_bytes("self").unwrap_or(0) as f64 / 1048576.0
    );
    Ok(rows)
}

/// Runs the cluster scenario when asked: the drain on a cluster of each size, side by side.
async fn run_cluster(args: &Args, work_dir: &Path) -> anyhow::Result<Vec<Row>> {
    if !args.runs(Scenario::Cluster) {
        return Ok(Vec::new());
    }
    let n = args.sizes().drain;
    let concurrency = args.drain_concurrency.iter().copied().max().unwrap_or(256);
    let mut rows = Vec::new();
    for &masters in &args.cluster_masters {
        let run = async || {
            let shape = (masters, args.cluster_shards);
            let work = (n, args.batch, concurrency);
            cluster_drain::drain(&args.redis_server, work_dir, shape, work).await
        };
        let row = repeated(args.repeat.max(1), run).await?;
        eprintln!("  {}", report::render_row(&row));
        rows.push(row);
    }
    Ok(rows)
}

/// Runs a scenario `times` times and keeps the median run, with every run's figure.
async fn repeated(
    times: usize,
    mut run: impl AsyncFnMut() -> anyhow::Result<Row>,
) -> anyhow::Result<Row> {
    let mut rows = Vec::with_capacity(times);
    for _ in 0..times.max(1) {
        rows.push(run().await?);
    }
    Ok(report::median(rows).expect("at least one run"))
}

/// The Redis to use: `--redis-url` (never the system one on port 6379), else a private
/// redis-server, kept alive by the returned handle. The URL has no database number.
fn redis(args: &Args, work_dir: &Path) -> anyhow::Result<(Option<RedisServer>, String)> {
    if let Some(url) = &args.redis_url {
        let info = redis::Client::open(url.as_str())?
            .get_connection_info()
            .clone();
        let addr = info.addr().to_string();
        if addr.ends_with(":6379") && (addr.contains("127.0.0.1") || addr.contains("localhost")) {
            bail!("refusing the Redis on port 6379 (it may hold real data): give another port");
        }
        return Ok((None, without_path(url).to_owned()));
    }
    let server = RedisServer::start(&args.redis_server, work_dir)?;
    eprintln!("started redis-server (pid {})", server.pid());
    let base = server.url(0).trim_end_matches("/0").to_owned();
    Ok((Some(server), base))
}

/// The URL up to its path: the scenarios add the database number themselves.
fn without_path(url: &str) -> &str {
    let authority = url.find("://").map_or(0, |i| i + 3);
    match url[authority..].find('/') {
        Some(slash) => &url[..authority + slash],
        None => url,
    }
}

/// Writes the JSON figures and the SVG chart.
fn write_outputs(args: &Args, work_dir: &Path, report: &Report) -> anyhow::Result<()> {
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| work_dir.join("results.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("cannot write {json_path:?}"))?;
    let svg_path = args
        .svg
        .clone()
        .unwrap_or_else(|| work_dir.join("chart.svg"));
    std::fs::write(&svg_path, chart::render(report))
        .with_context(|| format!("cannot write {svg_path:?}"))?;
    println!(
        "figures: {}\nchart:   {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(())
}

/// Cargo's target directory: this binary is `<target>/<profile>/taskq-bench`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

#[cfg(test)]
mod tests {
    use super::without_path;

    #[test]
    fn a_given_url_loses_its_database_only() {
        assert_eq!(
            without_path("redis://127.0.0.1:7001"),
            "redis://127.0.0.1:7001"
        );
        assert_eq!(
            without_path("redis://127.0.0.1:7001/"),
            "redis://127.0.0.1:7001"
        );
        assert_eq!(
            without_path("redis://127.0.0.1:7001/3"),
            "redis://127.0.0.1:7001"
        );
        assert_eq!(
            without_path("redis://:pw@host:7001/0"),
            "redis://:pw@host:7001"
        );
    }
}
