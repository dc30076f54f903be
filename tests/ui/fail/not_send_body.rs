// A task's body runs on a worker's thread pool: its future must be `Send`.

use std::rc::Rc;

#[taskq::task]
pub async fn count(n: u64) -> u64 {
    let shared = Rc::new(n);
    tokio_free_yield().await;
    *shared
}

async fn tokio_free_yield() {}

fn main() {}
