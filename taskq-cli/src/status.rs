//! `taskq status`: the nodes online, as `celery status` shows them.

use std::process::ExitCode;

use taskq::Client;

use crate::output::{nodes_online, ControlFlags, Output, NO_REPLIES};

/// `taskq status` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    flags: ControlFlags,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let replies = client.control().ping(&args.flags.options()?).await?;
    if replies.is_empty() {
        eprintln!("Error: {NO_REPLIES}");
        return Ok(ExitCode::FAILURE);
    }
    if out.json() {
        let nodes: Vec<serde_json::Value> = replies
            .iter()
            .map(|r| serde_json::json!({"node": r.node, "reply": r.reply}))
            .collect();
        out.print_json(&serde_json::json!({"online": replies.len(), "nodes": nodes}))?;
    } else {
        for reply in &replies {
            let word = if reply.reply.get("ok").is_some() {
                "OK"
            } else {
                "ERROR"
            };
            println!("->  {}: {word}", reply.node);
        }
        println!();
        println!("{}", nodes_online(replies.len()));
    }
    Ok(ExitCode::SUCCESS)
}
