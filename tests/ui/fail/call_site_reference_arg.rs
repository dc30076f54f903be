// A borrowed argument is one error, at its type: the task's handle is still generated, with
// the argument as written, so every way of sending the task type-checks and reports nothing
// more.

#[taskq::task]
pub async fn greet(name: &str) -> String {
    format!("hello {name}")
}

async fn send() -> taskq::Result<String> {
    let _: String = greet.call("ann").await;
    let _ = greet.delay_many([("bob",), ("cy",)]).await?;
    let _ = greet.apply_async(("dee",), taskq::Options::new()).await?;
    let pending = greet.delay("eve").await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
