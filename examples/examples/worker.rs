//! Run with: `cargo run --example worker` (`-- --help` for the flags)
//!
//! A worker for the seeds' tasks (`tasks.send_push_notification`, `tasks.generate_report`,
//! `tasks.add`, `tasks.summarise_campaign`, `tasks.tick`), configured from Celery's worker
//! flags (`-Q`, `-c`, `-n`, `-l`, `-E`, `-B`, ...) over `TASKQ_*` variables and `.env`. With
//! `-B` it also runs the periodic scheduler, which sends `tasks.tick` every
//! `TASKQ_EXAMPLE_TICK_MS` (10 s by default); each run appends its slot to `beat.log`. Stop it
//! with Ctrl-C: running tasks get the grace period to finish; unfinished ones go back to their
//! queue.

use taskq_examples::tasks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The tasks register themselves at link time; naming the module links it in.
    let _ = (
        &tasks::add,
        &tasks::generate_report,
        &tasks::send_push_notification,
        &tasks::tick,
    );
    // `--help` and `--version` print and exit here; the worker installs its log subscriber
    // (INFO, or `RUST_LOG`, or `--loglevel`) when it starts.
    taskq::Worker::from_args()?.run().await?;
    Ok(())
}
