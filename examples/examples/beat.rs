//! Run with: `cargo run --example beat`
//!
//! The periodic scheduler on its own, as Celery's `celery -A tasks beat`: it sends the
//! example's `tasks.tick` every `TASKQ_EXAMPLE_TICK_MS` (10 s by default) and runs no task.
//! A worker (`cargo run --example worker`, no `-B` needed) runs the ticks, each appending its
//! slot to `beat.log`. Start as many schedulers as you like, alone or in workers with `-B`: one
//! leads and the others take over within about 3 s if it dies. Stop it with Ctrl-C, which
//! hands the lead over at once.

use taskq_examples::tasks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The entry registers itself at link time with its task; naming the task links it in.
    let _ = &tasks::tick;
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let client = taskq::Client::from_env()?;
    let beat = taskq::beat::Beat::start(client, taskq::beat::declared()?);
    taskq::worker::shutdown_signal().await;
    beat.shutdown().await;
    Ok(())
}
