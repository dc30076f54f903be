// A rate limit is Celery's text: a number of runs per second, minute or hour.

#[taskq::task(name = "tasks.add", rate_limit = "10/d")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
