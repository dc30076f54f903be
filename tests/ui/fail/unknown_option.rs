// Only `name`, `queue`, `ignore_result`, `time_limit` and `crate` are options.

#[taskq::task(name = "tasks.add", max_retries = 3)]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
