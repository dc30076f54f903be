// A `queue` of the wrong type is one error, at the value: the task is still generated without
// it, so the code that sends it type-checks and reports nothing more.

#[taskq::task(queue = 5)]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

async fn send() -> taskq::Result<i64> {
    let pending = add
        .apply_async((1, 2), taskq::Options::new().queue("math"))
        .await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
