// Each option may be given once.

#[taskq::task(queue = "math", name = "tasks.add", queue = "fast")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
