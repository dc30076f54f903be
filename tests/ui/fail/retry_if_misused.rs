// `retry_if` judges an `Err(E)`: a task without `Result`, or without `max_retries`, has
// nothing for it to choose.

fn always(_: &std::io::Error) -> bool {
    true
}

#[taskq::task(name = "tasks.plain", max_retries = 3, retry_if = always)]
pub async fn plain(x: i64) -> i64 {
    x
}

#[taskq::task(name = "tasks.no_max", retry_if = always)]
pub async fn no_max(x: i64) -> std::io::Result<i64> {
    Ok(x)
}

fn main() {}
