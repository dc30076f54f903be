//! What a scenario cost, beside its wall time: CPU seconds of this process and of Redis, and
//! the commands Redis ran per task (from `INFO commandstats`, which also counts the commands
//! Lua scripts run). These show which side bounds a figure.
//!
//! To profile exactly the measured windows, run the benchmark under
//! `perf record -D -1 --control fifo:CTL` with `TASKQ_BENCH_PERF_CTL=CTL` in its environment:
//! each probe enables perf's recording when it starts and disables it when it finishes, so set-up
//! work (filling queues, starting workers) stays out of the profile.

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::procfs;

/// Commands the benchmark itself sends to watch progress; not counted as the queue's work.
const OWN_COMMANDS: [&str; 7] = [
    "dbsize",
    "hlen",
    "llen",
    "info",
    "config|resetstat",
    "move",
    "flushall",
];

/// How many of Redis's most expensive commands a cost lists.
const TOP: usize = 6;

/// The resources one scenario used.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// CPU time of the benchmark process (producers, or the in-process worker).
    pub client_cpu_secs: f64,
    /// CPU time of redis-server.
    pub redis_cpu_secs: f64,
    /// CPU time the whole machine was busy (every process, every core), so that
    /// `machine - client - redis` is what other work took meanwhile.
    pub machine_cpu_secs: f64,
    /// The machine's cores × the wall time: what was available.
    pub machine_capacity_secs: f64,
    pub redis_commands_per_task: f64,
    /// Redis's most expensive commands in the scenario: name, calls, microseconds inside Redis.
    pub redis_top_commands: Vec<(String, u64, u64)>,
}

impl Cost {
    /// The costs of several Redis servers measured over one window (a cluster's masters): their
    /// CPU and commands added up, this process's and the machine's taken once.
    pub fn summed(costs: Vec<Cost>) -> Cost {
        let mut costs = costs.into_iter();
        let Some(mut total) = costs.next() else {
            return Cost {
                client_cpu_secs: 0.0,
                redis_cpu_secs: 0.0,
                machine_cpu_secs: 0.0,
                machine_capacity_secs: 0.0,
                redis_commands_per_task: 0.0,
                redis_top_commands: Vec::new(),
            };
        };
        for cost in costs {
            total.redis_cpu_secs += cost.redis_cpu_secs;
            total.redis_commands_per_task += cost.redis_commands_per_task;
            for (name, calls, usec) in cost.redis_top_commands {
                match total
                    .redis_top_commands
                    .iter_mut()
                    .find(|(n, _, _)| *n == name)
                {
                    Some(entry) => {
                        entry.1 += calls;
                        entry.2 += usec;
                    }
                    None => total.redis_top_commands.push((name, calls, usec)),
                }
            }
        }
        total
            .redis_top_commands
            .sort_by_key(|(_, _, usec)| std::cmp::Reverse(*usec));
        total.redis_top_commands.truncate(TOP);
        total
    }
}

/// A measurement in progress.
#[derive(Debug)]
pub struct Probe {
    client_cpu: f64,
    redis_cpu: f64,
    machine: (u64, u64),
}

impl Probe {
    /// Resets Redis's command counters and notes both processes' CPU time.
    pub async fn start(admin: &mut MultiplexedConnection) -> redis::RedisResult<Self> {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(admin)
            .await?;
        perf_control("enable");
        Ok(Self {
            client_cpu: procfs::own_cpu_secs(),
            redis_cpu: redis_cpu_secs(admin).await?,
            machine: procfs::machine_ticks(),
        })
    }

    /// The cost since [`start`](Self::start), for `tasks` tasks.
    pub async fn finish(
        self,
        admin: &mut MultiplexedConnection,
        tasks: u64,
    ) -> redis::RedisResult<Cost> {
        perf_control("disable");
        let redis_cpu = redis_cpu_secs(admin).await? - self.redis_cpu;
        let client_cpu = procfs::own_cpu_secs() - self.client_cpu;
        let (busy, total) = procfs::machine_ticks();
        let mut stats = command_stats(admin).await?;
        stats.retain(|(name, _, _)| !OWN_COMMANDS.contains(&name.as_str()));
        let calls: u64 = stats.iter().map(|(_, calls, _)| calls).sum();
        stats.sort_by_key(|(_, _, usec)| std::cmp::Reverse(*usec));
        stats.truncate(TOP);
        Ok(Cost {
            client_cpu_secs: client_cpu,
            redis_cpu_secs: redis_cpu,
            // Ticks of 1/100 s, summed over all cores.
            machine_cpu_secs: busy.saturating_sub(self.machine.0) as f64 / 100.0,
            machine_capacity_secs: total.saturating_sub(self.machine.1) as f64 / 100.0,
            redis_commands_per_task: calls as f64 / tasks.max(1) as f64,
            redis_top_commands: stats,
        })
    }
}

/// Sends `command` to perf's control FIFO, when `TASKQ_BENCH_PERF_CTL` names one.
fn perf_control(command: &str) {
    let Some(path) = std::env::var_os("TASKQ_BENCH_PERF_CTL") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut fifo| {
            std::io::Write::write_all(&mut fifo, format!("{command}\n").as_bytes())
        });
    if let Err(e) = written {
        eprintln!("cannot {command} perf through {path:?}: {e}");
    }
}

async fn info(admin: &mut MultiplexedConnection, section: &str) -> redis::RedisResult<String> {
    redis::cmd("INFO").arg(section).query_async(admin).await
}

/// Redis's CPU time, user plus system, in seconds.
async fn redis_cpu_secs(admin: &mut MultiplexedConnection) -> redis::RedisResult<f64> {
    let text = info(admin, "cpu").await?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_sys" || *k == "used_cpu_user")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum())
}

/// `(command, calls, usec)` for every command Redis ran since the last reset.
async fn command_stats(
    admin: &mut MultiplexedConnection,
) -> redis::RedisResult<Vec<(String, u64, u64)>> {
    let text = info(admin, "commandstats").await?;
    Ok(text.lines().filter_map(parse_command_stat).collect())
}

/// Parses `cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...`.
fn parse_command_stat(line: &str) -> Option<(String, u64, u64)> {
    let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
    let field = |key: &str| {
        fields
            .split(',')
            .filter_map(|f| f.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    Some((name.to_owned(), field("calls")?, field("usec")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_stats_lines_parse() {
        let line = "cmdstat_evalsha:calls=120,usec=5400,usec_per_call=45.00,rejected_calls=0,failed_calls=0";
        assert_eq!(
            parse_command_stat(line),
            Some(("evalsha".to_owned(), 120, 5400))
        );
        assert_eq!(parse_command_stat("# Commandstats"), None);
    }
}
