//! Run with: `cargo run --example worker_without_tasks`
//!
//! The mistake a worker's start-up report catches: a worker binary that does not reference its
//! task crate, so the linker keeps none of its `#[taskq::task]`s and the registry is empty.
//! The worker warns "no tasks registered: ..." before "worker ready" (compare
//! `examples/worker.rs`, which names its tasks). The integration tests run it.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq::Worker::from_args()?.run().await?;
    Ok(())
}
