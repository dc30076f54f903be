// A generic task is one error, at its generics: the task's handle is still generated, generic
// like the function, so the code that sends it type-checks and reports nothing more.

#[taskq::task]
pub async fn count<T: serde::Serialize>(items: Vec<T>) -> usize {
    items.len()
}

async fn send() -> taskq::Result<usize> {
    let pending = count.delay(vec![1, 2, 3]).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
