// The soft limit tells the task to wind down before the hard limit stops it, so it must be
// below `time_limit`.

#[taskq::task(name = "tasks.export", soft_time_limit = 60, time_limit = 30)]
pub async fn export(rows: u64) -> u64 {
    rows
}

fn main() {}
