// An `unsafe` task is one error, at `unsafe`: the task's handle is still generated, with an
// `unsafe` `call`, so the body's unsafe call and the code that sends the task report nothing
// more.

unsafe fn read_register(x: u8) -> u8 {
    x
}

#[taskq::task]
pub async unsafe fn poke(x: u8) -> u8 {
    read_register(x)
}

async fn send() -> taskq::Result<u8> {
    let pending = poke.delay(1).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
