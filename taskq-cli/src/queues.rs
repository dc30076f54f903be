//! `taskq queues`: per queue, messages waiting, held by workers (unacked), parked until
//! their ETA (scheduled) and dead-lettered, and whether it is paused; `taskq queues pause
//! <queue>` / `resume <queue>` pause and resume a queue for every taskq worker.

use std::process::ExitCode;

use taskq::control::NodeReply;
use taskq::Client;

use crate::output::{replies_object, ControlFlags, Output};

/// `taskq queues` flags.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    /// Only these queues (comma-separated); else every queue the broker knows.
    #[arg(
        short = 'Q',
        long = "queues",
        value_name = "QUEUE",
        value_delimiter = ','
    )]
    queues: Vec<String>,

    #[command(subcommand)]
    action: Option<Action>,
}

/// Pausing and resuming.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Stop every taskq worker fetching from QUEUE (within a second; workers started later
    /// too) until it is resumed. Its messages stay queued. Python Celery workers are not
    /// affected.
    Pause {
        /// The queue.
        queue: String,
        #[command(flatten)]
        flags: ControlFlags,
    },
    /// Let taskq workers fetch from a paused QUEUE again.
    Resume {
        /// The queue.
        queue: String,
        #[command(flatten)]
        flags: ControlFlags,
    },
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        None => counts(client, out, &args.queues).await,
        Some(Action::Pause { queue, flags }) => {
            let replies = client
                .control()
                .pause_queue(&queue, &flags.options()?)
                .await?;
            confirm(out, &queue, "paused", &replies)
        }
        Some(Action::Resume { queue, flags }) => {
            let replies = client
                .control()
                .resume_queue(&queue, &flags.options()?)
                .await?;
            confirm(out, &queue, "resumed", &replies)
        }
    }
}

/// Says what was done and which workers confirmed it; no reply is no failure: the change is
/// in the broker, and workers read it when they start.
fn confirm(
    out: &Output,
    queue: &str,
    done: &str,
    replies: &[NodeReply],
) -> anyhow::Result<ExitCode> {
    if out.json() {
        out.print_json(&replies_object(replies))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "queue {queue} {done} (recorded in the broker; {} taskq worker(s) confirmed)",
        replies.len()
    );
    for reply in replies {
        println!("-> {}: {}", reply.node, reply.reply);
    }
    Ok(ExitCode::SUCCESS)
}

/// The counts per queue, with a PAUSED column.
async fn counts(client: &Client, out: &Output, queues: &[String]) -> anyhow::Result<ExitCode> {
    let stats = client.broker().queue_stats(queues).await?;
    let paused = client.control().paused_queues().await?;
    let is_paused = |queue: &str| paused.iter().any(|p| p == queue);
    if out.json() {
        let rows: Vec<serde_json::Value> = stats
            .iter()
            .map(|s| {
                let mut row = serde_json::to_value(s).expect("queue stats serialize");
                row["paused"] = is_paused(&s.queue).into();
                row
            })
            .collect();
        out.print_json(&rows)?;
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
        "{:<width$}  {:>8}  {:>8}  {:>9}  {:>12}  {:>6}",
        "QUEUE", "WAITING", "UNACKED", "SCHEDULED", "DEAD LETTERS", "PAUSED"
    );
    for s in &stats {
        let paused = if is_paused(&s.queue) { "yes" } else { "no" };
        println!(
            "{:<width$}  {:>8}  {:>8}  {:>9}  {:>12}  {:>6}",
            s.queue, s.waiting, s.unacked, s.scheduled, s.dead_letters, paused
        );
    }
    Ok(ExitCode::SUCCESS)
}
