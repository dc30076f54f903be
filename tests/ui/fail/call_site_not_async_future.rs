// A function that returns a future instead of being `async` is one error, at `fn`: the task
// is generated as the `async fn` of the future's output, so the code that sends it type-checks
// against that output and reports nothing more.

use std::future::Future;

#[taskq::task]
pub fn double(x: u64) -> impl Future<Output = u64> + Send {
    async move { x * 2 }
}

async fn send() -> taskq::Result<u64> {
    let inline: u64 = double.call(2).await;
    let pending = double.delay(inline).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
