//! The figures of a run: what each scenario measured, the taskq/Celery ratios, and their
//! printing as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Scenario, Sizes};
use crate::machine::Machine;

/// Which queue a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Taskq,
    Celery,
    /// Redis alone, through the client library taskq uses: the floor under taskq's figures.
    Redis,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Taskq => "taskq",
            System::Celery => "Celery",
            System::Redis => "redis",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub system: System,
    pub scenario: Scenario,
    /// What was run, e.g. "drain, concurrency 64".
    pub label: String,
    /// Every run's figure when the scenario was repeated; the row is the median run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
    pub figure: Figure,
}

/// The runs of a repeated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Repeats {
    /// What `values` are: the figure the median run was chosen by.
    pub of: &'static str,
    /// Each run's value, lowest first.
    pub values: Vec<f64>,
}

/// The median of the runs of one scenario (the higher one of an even count), with every
/// run's value, so that a report shows both a typical run and the spread.
pub fn median(mut rows: Vec<Row>) -> Option<Row> {
    if rows.len() <= 1 {
        return rows.pop();
    }
    rows.sort_by(|a, b| a.figure.key().total_cmp(&b.figure.key()));
    let values = rows.iter().map(|r| r.figure.key()).collect();
    let of = rows[0].figure.key_name();
    let mut row = rows.swap_remove(rows.len() / 2);
    row.repeats = Some(Repeats { of, values });
    Some(row)
}

/// What a scenario measures.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Figure {
    Throughput(Throughput),
    Latency(Latency),
    Memory(Memory),
}

impl Figure {
    /// The one value a run is judged by.
    fn key(&self) -> f64 {
        match self {
            Figure::Throughput(t) => t.per_sec,
            Figure::Latency(l) => l.round_trip.p50_ms,
            Figure::Memory(m) => m.deep_queue_peak_rss_mib,
        }
    }

    fn key_name(&self) -> &'static str {
        match self {
            Figure::Throughput(_) => "tasks/s",
            Figure::Latency(_) => "round trip p50 ms",
            Figure::Memory(_) => "peak RSS MiB",
        }
    }
}

/// Tasks moved in a time.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub tasks: u64,
    pub secs: f64,
    pub per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::probe::Cost>,
}

impl Throughput {
    pub fn new(tasks: u64, secs: f64, cost: Option<crate::probe::Cost>) -> Self {
        Self {
            tasks,
            secs,
            per_sec: tasks as f64 / secs.max(1e-9),
            cost,
        }
    }
}

/// Latencies of calls sent at a steady rate.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// The rate calls were scheduled at.
    pub target_rate: f64,
    /// The rate they were sent at (lower when the sender could not keep up).
    pub rate_per_sec: f64,
    pub secs: f64,
    pub samples: u64,
    pub errors: u64,
    /// The `.delay()` call alone.
    pub send: Percentiles,
    /// From before `.delay()` to the task body starting on the worker (none for the Redis
    /// floor, which runs no task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Percentiles>,
    /// From before `.delay()` to `.get()` returning the result.
    pub round_trip: Percentiles,
}

/// Milliseconds at the usual percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// A worker process's resident memory.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub concurrency: usize,
    pub idle_rss_mib: f64,
    /// The highest resident memory seen while the worker worked on the deep queue.
    pub deep_queue_peak_rss_mib: f64,
    pub queued_at_start: u64,
    pub queued_at_end: u64,
    pub sampled_secs: f64,
    /// How long enqueueing the deep queue took with `delay_many` (for the record).
    pub enqueue_secs: f64,
    /// Tasks sent one at a time to a fresh worker that runs them as they come, waking for
    /// most of them: the shape in which per-task growth showed.
    pub trickle_tasks: u64,
    /// Resident memory after a quarter of them, after all, and after 2 s idle.
    pub trickle_rss_quarter_mib: f64,
    pub trickle_rss_end_mib: f64,
    pub trickle_rss_idle_after_mib: f64,
    /// Growth between the quarter and the end, per task: flat memory is about 0.
    pub trickle_growth_bytes_per_task: f64,
}

/// taskq's figure divided by Celery's, oriented so that above 1 means taskq is better.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub taskq: f64,
    pub celery: f64,
    pub unit: &'static str,
    /// How many times better taskq is.
    pub times_better: f64,
}

/// Everything a run measured, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub sizes: Sizes,
    pub quick: bool,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub celery: Option<serde_json::Value>,
}

/// The human-readable table of a report.
pub fn render(report: &Report) -> String {
    let m = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "machine: {} ({} cores, {:.1} GiB RAM), Linux {}, Redis {}, {}, taskq {}",
        m.cpu_model, m.cores, m.ram_gib, m.kernel, m.redis_version, m.rustc, m.taskq_commit
    );
    let end = m
        .loadavg_end
        .map_or_else(String::new, |l| format!(", at end {}", load(l)));
    let _ = writeln!(out, "load average at start {}{end}", load(m.loadavg_start));
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<7} {:<44} figure", "system", "scenario");
    for row in &report.rows {
        let _ = writeln!(out, "{}", render_row(row));
    }
    if !report.ratios.is_empty() {
        let _ = writeln!(out, "\ntaskq vs Celery (same redis-server, same run)");
        for r in &report.ratios {
            let _ = writeln!(
                out,
                "  {:<40} taskq {:>10.3} {u}  Celery {:>10.3} {u}  {:>7.1}x",
                r.what,
                r.taskq,
                r.celery,
                r.times_better,
                u = r.unit
            );
        }
    }
    out
}

/// One row of the table.
pub fn render_row(row: &Row) -> String {
    let spread = row.repeats.as_ref().map_or_else(String::new, |r| {
        let (low, high) = (r.values[0], r.values[r.values.len() - 1]);
        let digits = if r.of == "tasks/s" { 0 } else { 3 };
        format!(
            "  [median of {} runs; {} {low:.digits$}–{high:.digits$}]",
            r.values.len(),
            r.of,
        )
    });
    format!(
        "{:<7} {:<44} {}{spread}",
        row.system.name(),
        row.label,
        summary(&row.figure)
    )
}

fn load(l: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

fn summary(figure: &Figure) -> String {
    match figure {
        Figure::Throughput(t) => {
            let mut s = format!(
                "{:>10.0} tasks/s  ({} tasks in {:.3} s)",
                t.per_sec, t.tasks, t.secs
            );
            if let Some(c) = &t.cost {
                let _ = write!(
                    s,
                    "  CPU: bench {:.0}%, redis {:.0}%, machine {:.0}% of {:.0}%; {:.1} redis cmds/task",
                    100.0 * c.client_cpu_secs / t.secs,
                    100.0 * c.redis_cpu_secs / t.secs,
                    100.0 * c.machine_cpu_secs / t.secs,
                    100.0 * c.machine_capacity_secs / t.secs,
                    c.redis_commands_per_task
                );
            }
            s
        }
        Figure::Latency(l) => {
            let start = l.start.map_or_else(String::new, |start| {
                format!(
                    " | start p50 {:.3} ms p99 {:.3} ms",
                    start.p50_ms, start.p99_ms
                )
            });
            format!(
                "round trip p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms{start} | send p50 {:.3} ms  ({} samples sent at {:.0}/s, {} errors)",
                l.round_trip.p50_ms,
                l.round_trip.p99_ms,
                l.round_trip.p999_ms,
                l.round_trip.max_ms,
                l.send.p50_ms,
                l.samples,
                l.rate_per_sec,
                l.errors
            )
        }
        Figure::Memory(m) => format!(
            "RSS idle {:.1} MiB, with {} tasks queued: peak {:.1} MiB over {:.0} s ({} still \
             queued); {} tasks sent one at a time: {:.1} MiB after a quarter, {:.1} MiB after \
             all, {:.1} MiB idle after ({:.1} bytes per task)",
            m.idle_rss_mib,
            m.queued_at_start,
            m.deep_queue_peak_rss_mib,
            m.sampled_secs,
            m.queued_at_end,
            m.trickle_tasks,
            m.trickle_rss_quarter_mib,
            m.trickle_rss_end_mib,
            m.trickle_rss_idle_after_mib,
            m.trickle_growth_bytes_per_task
        ),
    }
}

/// taskq/Celery ratios for the scenarios both ran.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for scenario in [Scenario::Sequential, Scenario::Drain] {
        let best = |system| {
            rows.iter()
                .filter(|r| r.system == system && r.scenario == scenario)
                .filter_map(|r| match &r.figure {
                    Figure::Throughput(t) => Some((t.per_sec, r.label.clone())),
                    _ => None,
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
        };
        if let (Some((t, tl)), Some((c, cl))) = (best(System::Taskq), best(System::Celery)) {
            out.push(Ratio {
                what: format!("{tl} vs {cl}"),
                taskq: t,
                celery: c,
                unit: "tasks/s",
                times_better: t / c,
            });
        }
    }
    let latency = |system, rate| {
        rows.iter().find_map(|r| match &r.figure {
            Figure::Latency(l) if r.system == system && l.target_rate == rate => Some(l.round_trip),
            _ => None,
        })
    };
    let rates = rows.iter().filter_map(|r| match &r.figure {
        Figure::Latency(l) if r.system == System::Taskq => Some(l.target_rate),
        _ => None,
    });
    for rate in rates {
        let (Some(t), Some(c)) = (latency(System::Taskq, rate), latency(System::Celery, rate))
        else {
            continue;
        };
        for (what, tv, cv) in [
            ("p50", t.p50_ms, c.p50_ms),
            ("p99", t.p99_ms, c.p99_ms),
            ("p99.9", t.p999_ms, c.p999_ms),
        ] {
            out.push(Ratio {
                what: format!("round trip {what} at {rate:.0}/s"),
                taskq: tv,
                celery: cv,
                unit: "ms",
                times_better: cv / tv,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(per_sec: f64) -> Row {
        Row {
            system: System::Taskq,
            scenario: Scenario::Drain,
            label: format!("drain at {per_sec}"),
            repeats: None,
            figure: Figure::Throughput(Throughput::new(per_sec as u64, 1.0, None)),
        }
    }

    #[test]
    fn the_median_run_is_kept_with_every_value() {
        let row = median(vec![drained(300.0), drained(100.0), drained(200.0)]).unwrap();
        assert_eq!(row.label, "drain at 200");
        let repeats = row.repeats.as_ref().expect("the runs");
        assert_eq!(repeats.values, [100.0, 200.0, 300.0]);
        assert_eq!(repeats.of, "tasks/s");
        assert!(render_row(&row).contains("[median of 3 runs; tasks/s 100–300]"));
    }

    #[test]
    fn a_single_run_is_not_a_repeat() {
        let row = median(vec![drained(100.0)]).unwrap();
        assert!(row.repeats.is_none());
        assert!(median(Vec::new()).is_none());
    }
}
