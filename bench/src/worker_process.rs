//! The worker of the memory scenario, alone in its process: the benchmark starts its own
//! executable again as `taskq-bench --worker-process BROKER_URL RESULT_BACKEND_URL CONCURRENCY`
//! and reads the child's resident memory from `/proc`, so the benchmark's own buffers are not
//! counted. (One executable, because `cargo run` builds only the binary it runs.)

use anyhow::Context;

use crate::tasks;

/// The argument that selects this mode; it must come first.
pub const FLAG: &str = "--worker-process";

/// Runs a worker on the given URLs until SIGTERM or SIGINT. `args` follow [`FLAG`].
pub async fn run(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let usage = "usage: taskq-bench --worker-process BROKER_URL RESULT_BACKEND_URL CONCURRENCY";
    let broker = args.next().context(usage)?;
    let backend = args.next().context(usage)?;
    let concurrency: usize = args.next().context(usage)?.parse().context(usage)?;
    // Naming the tasks links them in, which registers them.
    let _ = (&tasks::noop, &tasks::stamp);
    let mut config = taskq::Config::default();
    config.broker_url = broker;
    config.result_backend = backend;
    let client = taskq::Client::from_config(config)?;
    taskq::Worker::builder(client)
        .concurrency(concurrency)
        .banner(false)
        // Its memory is measured: no log subscriber (and no log line per task).
        .default_logging(false)
        .build()
        .run()
        .await?;
    Ok(())
}
