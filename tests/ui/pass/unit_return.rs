// No return type: the result is `()`.

use taskq::Task;

#[taskq::task(name = "tasks.ping")]
async fn ping() {}

#[taskq::task(name = "tasks.log")]
pub(crate) async fn log(line: String) -> () {
    let _ = line;
}

async fn _use() -> taskq::Result<()> {
    let () = ping.call().await;
    let () = log.call("hi".into()).await;
    let _: taskq::AsyncResult<()> = ping.delay().await?;
    let _: taskq::AsyncResult<()> = log.delay("hi".to_owned()).await?;
    let _: taskq::AsyncResult<()> = ping.apply_async((), taskq::Options::new()).await?;
    Ok(())
}

fn main() {
    let _: <ping as Task>::Args = ();
    let _: <log as Task>::Args = (String::new(),);
    assert!(ping::ARG_NAMES.is_empty());
}
