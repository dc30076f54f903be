// `-> T`: the value is the result; a run never fails.

use taskq::Task;

#[taskq::task]
pub async fn add(x: i64, mut y: i64) -> i64 {
    y += x;
    y
}

async fn _use() -> taskq::Result<()> {
    let sum: i64 = add.call(1, 2).await;
    let _: taskq::AsyncResult<i64> = add.delay(sum, 2).await?;
    let _: taskq::AsyncResult<i64> = add.apply_async((1, 2), taskq::Options::new()).await?;
    Ok(())
}

fn main() {
    assert_eq!(add::NAME, concat!(module_path!(), "::add"));
    assert_eq!(add::ARG_NAMES, ["x", "y"]);
    let _: fn((i64, i64)) -> _ = add::run;
}
