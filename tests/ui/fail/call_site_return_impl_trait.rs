// An `impl Trait` result is one error, at the return type: the task's handle is still
// generated, its result read untyped since its type has no name, so the code that sends it
// type-checks and reports nothing more.

#[taskq::task]
pub async fn status() -> impl serde::Serialize {
    "ok"
}

async fn send() -> taskq::Result<()> {
    let pending = status.delay().await?;
    println!("{}", pending.id());
    Ok(())
}

fn main() {
    let _ = send();
}
