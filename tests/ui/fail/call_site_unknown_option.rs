// A misspelt option is one error, at the option: the task is still generated without it, so
// the code that sends it type-checks and reports nothing more.

#[taskq::task(name = "tasks.add", qeue = "math")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

async fn send() -> taskq::Result<i64> {
    let pending = add.delay(1, 2).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
