//! Run with: `cargo run --example worker`
//!
//! A worker for the seeds' tasks (`tasks.send_push_notification`, `tasks.generate_report`,
//! `tasks.add`), configured from `TASKQ_*` variables and `.env`. Stop it with Ctrl-C: running
//! tasks get the grace period to finish; unfinished ones go back to their queue.

use taskq_examples::tasks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq_examples::init_tracing();
    // The tasks register themselves at link time; naming the module links it in.
    let _ = (
        &tasks::add,
        &tasks::generate_report,
        &tasks::send_push_notification,
    );
    taskq::Worker::from_env()?.run().await?;
    Ok(())
}
