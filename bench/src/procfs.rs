//! What Linux's `/proc` says about a process: resident memory and CPU time. Read from files
//! rather than system calls because the workspace forbids `unsafe`, and these are cheap.

use std::fs;

/// Resident set size of process `pid` (`self` for this one), in bytes, from `VmRSS`.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// The peak resident set size of process `pid` so far, in bytes, from `VmHWM`.
pub fn peak_rss_bytes(pid: &str) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) this process has used, in seconds. The kernel counts it in clock
/// ticks of 1/100 s on Linux, so it is good to about 10 ms.
pub fn own_cpu_secs() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time the whole machine has spent busy and in total (all cores), in clock ticks, from
/// the first line of `/proc/stat`. Busy time beyond the benchmark's and Redis's own is other
/// work on the machine competing for the cores.
pub fn machine_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        assert!(rss_bytes("self").is_some_and(|b| b > 0));
        assert!(peak_rss_bytes("self") >= rss_bytes("self"));
        assert!(own_cpu_secs() >= 0.0);
        let (busy, total) = machine_ticks();
        assert!(total > 0 && busy <= total);
    }
}
