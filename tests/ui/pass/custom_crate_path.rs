// `crate = "..."`: the runtime reached through another path (a re-export here).

mod runtime {
    pub use taskq as reexported;
}

#[taskq::task(crate = "crate::runtime::reexported")]
pub async fn double(x: u64) -> u64 {
    x * 2
}

async fn _use() -> taskq::Result<()> {
    let _: u64 = double.call(2).await;
    let _: runtime::reexported::AsyncResult<u64> = double.delay(2).await?;
    Ok(())
}

fn main() {
    use runtime::reexported::Task;
    assert_eq!(double::ARG_NAMES, ["x"]);
}
