// `rate_limit` is a Celery option taskq does not have.

#[taskq::task(name = "tasks.add", rate_limit = "10/m")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
