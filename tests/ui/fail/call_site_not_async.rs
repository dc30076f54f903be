// A missing `async` is one error, at `fn`: the task is generated as if `async` were written,
// so the code that sends it or calls it inline is checked against the fixed task and reports
// nothing more.

use taskq::Task;

#[taskq::task(name = "tasks.add")]
pub fn add(x: i64, y: i64) -> i64 {
    x + y
}

async fn send() -> taskq::Result<i64> {
    assert_eq!(add::NAME, "tasks.add");
    let inline: i64 = add.call(1, 2).await;
    let pending = add.delay(inline, 2).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
