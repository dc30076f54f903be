//! `taskq purge`: deletes the messages waiting in queues, after confirmation.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use taskq::Client;

use crate::output::Output;

/// `taskq purge` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The queues (comma-separated); else the configured ones (TASKQ_QUEUES, default celery).
    #[arg(
        short = 'Q',
        long = "queues",
        value_name = "QUEUE",
        value_delimiter = ','
    )]
    queues: Vec<String>,

    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let queues = if args.queues.is_empty() {
        client.config().queues.clone()
    } else {
        args.queues
    };
    let names = queues.join(", ");
    if !args.force {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            eprintln!(
                "error: refusing to purge {names} without confirmation: stdin is not a \
                 terminal (pass -f to purge anyway)"
            );
            return Ok(ExitCode::FAILURE);
        }
        let waiting: usize = client
            .broker()
            .queue_stats(&queues)
            .await?
            .iter()
            .map(|s| s.waiting)
            .sum();
        eprint!("Purge {waiting} messages waiting in {names}? This cannot be undone [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            eprintln!("not purged");
            return Ok(ExitCode::FAILURE);
        }
    }
    let purged = client.broker().purge(&queues).await?;
    if out.json() {
        out.print_json(&serde_json::json!({"purged": purged, "queues": queues}))?;
    } else {
        let noun = if purged == 1 { "message" } else { "messages" };
        println!("purged {purged} {noun} from {names}");
    }
    Ok(ExitCode::SUCCESS)
}
