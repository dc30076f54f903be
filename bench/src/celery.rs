//! Python Celery, run through the same scenarios on the same redis-server: a virtual
//! environment with Celery from PyPI under `target/taskq-bench/venv` (made on first use), and
//! `bench/celery/bench_celery.py`, which runs one scenario and prints its figures as JSON.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::{Args, Scenario, Sizes};
use crate::report::{Figure, Latency, Percentiles, Row, System, Throughput};

/// What the environment installs: the newest Celery 5.6 with its Redis extras.
const REQUIREMENT: &str = "celery[redis]==5.6.*";

/// The Python side of the benchmark.
const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/celery");

/// A virtual environment with Celery installed.
#[derive(Debug)]
pub struct CeleryEnv {
    dir: PathBuf,
}

impl CeleryEnv {
    /// The environment under `work_dir`, created with `python` when missing or stale.
    pub fn prepare(work_dir: &Path, python: &str) -> anyhow::Result<Self> {
        let dir = work_dir.join("venv");
        let marker = dir.join(".taskq-bench-ready");
        if fs::read_to_string(&marker).ok().as_deref() != Some(REQUIREMENT) {
            eprintln!("creating {dir:?} with {REQUIREMENT} (once)");
            let _ = fs::remove_dir_all(&dir);
            run(Command::new(python).args(["-m", "venv"]).arg(&dir))
                .context("python3 -m venv failed: install Python 3 with its venv module")?;
            run(Command::new(dir.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg(REQUIREMENT))
            .context("pip install failed")?;
            fs::write(&marker, REQUIREMENT)?;
        }
        Ok(Self { dir })
    }

    /// Runs one scenario; returns the script's JSON.
    fn scenario(&self, redis_base: &str, scenario: &[String]) -> anyhow::Result<Value> {
        let out = Command::new(self.dir.join("bin/python"))
            .current_dir(SCRIPT_DIR)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg("bench_celery.py")
            .args(["--redis", redis_base])
            .args(scenario)
            .output()
            .context("cannot run bench_celery.py")?;
        if !out.status.success() {
            bail!(
                "bench_celery.py {scenario:?} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).with_context(|| format!("bench_celery.py printed {stdout:?}"))
    }
}

/// Runs Celery through the sequential, drain and latency scenarios that `args` selects;
/// returns their rows and the raw JSON of each.
pub fn run_all(
    env: &CeleryEnv,
    redis_base: &str,
    args: &Args,
    sizes: &Sizes,
    cores: usize,
) -> anyhow::Result<(Vec<Row>, Value)> {
    let n = sizes.celery_tasks.to_string();
    let c = cores.to_string();
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let mut plan: Vec<(Scenario, Vec<String>)> = vec![
        (
            Scenario::Sequential,
            strings(&["sequential", "--tasks", &n]),
        ),
        (
            Scenario::Drain,
            strings(&["drain", "--tasks", &n, "--concurrency", &c]),
        ),
    ];
    for rate in &args.rates {
        let (rate, secs) = (rate.to_string(), sizes.latency_secs.to_string());
        plan.push((
            Scenario::Latency,
            strings(&[
                "latency",
                "--rate",
                &rate,
                "--secs",
                &secs,
                "--concurrency",
                &c,
            ]),
        ));
    }
    let times = args.repeat.max(1);
    for (scenario, argv) in plan.into_iter().filter(|(s, _)| args.runs(*s)) {
        eprintln!("Celery: {}", argv.join(" "));
        let mut runs = Vec::with_capacity(times);
        for run in 1..=times {
            let json = env.scenario(redis_base, &argv)?;
            runs.push(to_row(scenario, &json)?);
            let key = if times > 1 {
                format!("{} (run {run})", argv.join(" "))
            } else {
                argv.join(" ")
            };
            raw.insert(key, json);
        }
        let row = crate::report::median(runs).expect("at least one run");
        eprintln!("  {}", crate::report::render_row(&row));
        rows.push(row);
    }
    Ok((rows, Value::Object(raw)))
}

fn to_row(scenario: Scenario, json: &Value) -> anyhow::Result<Row> {
    let version = json["celery"].as_str().unwrap_or("?");
    let num = |v: &Value| v.as_f64().context("missing number in Celery's figures");
    let (label, figure) = match scenario {
        Scenario::Latency => {
            let pct = |key: &str| -> anyhow::Result<Percentiles> {
                let p = &json[key];
                Ok(Percentiles {
                    p50_ms: num(&p["p50_ms"])?,
                    p99_ms: num(&p["p99_ms"])?,
                    p999_ms: num(&p["p999_ms"])?,
                    max_ms: num(&p["max_ms"])?,
                })
            };
            let latency = Latency {
                target_rate: num(&json["target_rate"])?,
                rate_per_sec: num(&json["rate_per_sec"])?,
                secs: num(&json["secs"])?,
                samples: num(&json["samples"])? as u64,
                errors: num(&json["errors"])? as u64,
                send: pct("send")?,
                start: Some(pct("start")?),
                round_trip: pct("round_trip")?,
            };
            let label = format!(
                "{version} latency at {:.0}/s, prefork {}",
                latency.target_rate, json["concurrency"]
            );
            (label, Figure::Latency(latency))
        }
        _ => {
            let t = Throughput::new(num(&json["tasks"])? as u64, num(&json["secs"])?, None);
            let label = match scenario {
                Scenario::Drain => format!(
                    "{version} drain with results, prefork {}",
                    json["concurrency"]
                ),
                _ => format!("{version} sequential .delay()"),
            };
            (label, Figure::Throughput(t))
        }
    };
    Ok(Row {
        system: System::Celery,
        scenario,
        label,
        repeats: None,
        figure,
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
