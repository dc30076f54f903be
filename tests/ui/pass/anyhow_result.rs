// `anyhow::Result<T>` (any type whose last path segment is `Result`) is a `Result` too.

use anyhow::Context;

#[taskq::task(name = "tasks.parse")]
pub async fn parse(text: String) -> anyhow::Result<u32> {
    text.trim().parse().context("not a number")
}

#[taskq::task(name = "tasks.read")]
pub async fn read(path: std::path::PathBuf) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

async fn _use() -> taskq::Result<()> {
    let _: anyhow::Result<u32> = parse.call(" 42 ".into()).await;
    let _: taskq::AsyncResult<u32> = parse.delay("42".into()).await?;
    let _: taskq::AsyncResult<Vec<u8>> = read.delay("/etc/hostname".into()).await?;
    Ok(())
}

fn main() {}
