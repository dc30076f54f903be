//! What the figures were measured on: the machine, its load, and the Redis server.

use std::fs;
use std::process::Command;

use serde::Serialize;

/// The machine and software a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub redis_version: String,
    pub rustc: String,
    pub taskq_commit: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when the run started: other work on the
    /// machine depresses the figures.
    pub loadavg_start: [f64; 3],
    pub loadavg_end: Option<[f64; 3]>,
}

impl Machine {
    /// Reads everything but the Redis version, which the caller asks the server for.
    pub fn describe(redis_version: String) -> Self {
        Self {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_gib: mem_total_kib() as f64 / (1024.0 * 1024.0),
            kernel: first_line("/proc/sys/kernel/osrelease"),
            redis_version,
            rustc: command_output("rustc", &["--version"]),
            taskq_commit: command_output("git", &["rev-parse", "--short", "HEAD"]),
            loadavg_start: loadavg(),
            loadavg_end: None,
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = first_line("/proc/loadavg");
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(f64::NAN));
    [(); 3].map(|()| fields.next().unwrap_or(f64::NAN))
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn mem_total_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn first_line(path: &str) -> String {
    fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or_default().trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
