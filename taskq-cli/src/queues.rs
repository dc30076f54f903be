//! `taskq queues`: per queue, messages waiting, held by workers (unacked), parked until
//! their ETA (scheduled) and dead-lettered.

use std::process::ExitCode;

use taskq::Client;

use crate::output::Output;

/// `taskq queues` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only these queues (comma-separated); else every queue the broker knows.
    #[arg(
        short = 'Q',
        long = "queues",
        value_name = "QUEUE",
        value_delimiter = ','
    )]
    queues: Vec<String>,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let stats = client.broker().queue_stats(&args.queues).await?;
    if out.json() {
        out.print_json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    if stats.is_empty() {
        println!("no queues");
        return Ok(ExitCode::SUCCESS);
    }
    let width = stats
        .iter()
        .map(|s| s.queue.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    println!(
        "{:<width$}  {:>8}  {:>8}  {:>9}  {:>12}",
        "QUEUE", "WAITING", "UNACKED", "SCHEDULED", "DEAD LETTERS"
    );
    for s in &stats {
        println!(
            "{:<width$}  {:>8}  {:>8}  {:>9}  {:>12}",
            s.queue, s.waiting, s.unacked, s.scheduled, s.dead_letters
        );
    }
    Ok(ExitCode::SUCCESS)
}
