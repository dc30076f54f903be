//! `taskq dead-letters list|requeue`: messages that could not run, and replaying them once
//! their cause is fixed.

use std::process::ExitCode;

use serde_json::Value;
use taskq::broker::{DeadLetter, DeadLetterMatch};
use taskq::protocol::KombuMessage;
use taskq::Client;

use crate::output::Output;

/// The dead-letter commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// The dead letters, newest first.
    List {
        /// At most this many.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// Put dead-lettered messages back on their queues, oldest first.
    Requeue {
        /// At most this many (else all).
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<usize>,
        /// Only those whose reason contains this text (case-sensitive).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

pub(crate) async fn run(
    client: &Client,
    out: &Output,
    command: Command,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { limit } => list(client, out, limit).await,
        Command::Requeue { limit, reason } => {
            let max = limit.unwrap_or(u32::MAX as usize);
            let broker = client.broker();
            let moved = match reason.as_deref() {
                Some(reason) => {
                    let which = DeadLetterMatch::ReasonContains(reason.to_owned());
                    broker.requeue_dead_letters_matching(max, &which).await?
                }
                None => broker.requeue_dead_letters(max).await?,
            };
            if out.json() {
                out.print_json(&serde_json::json!({"requeued": moved}))?;
            } else {
                let noun = if moved == 1 { "message" } else { "messages" };
                println!("requeued {moved} {noun}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(client: &Client, out: &Output, limit: usize) -> anyhow::Result<ExitCode> {
    let dead = client.broker().dead_letters(limit).await?;
    if out.json() {
        let entries: Vec<Value> = dead.iter().map(entry_json).collect();
        out.print_json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    if dead.is_empty() {
        println!("no dead letters");
    }
    for entry in &dead {
        let (id, task) = task_of(entry);
        println!(
            "{}  {}  {} {}: {}",
            time_text(entry.time),
            display_or(&entry.queue, "-"),
            task.as_deref().unwrap_or("?"),
            id.as_deref().unwrap_or("?"),
            entry.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An entry as JSON: its stored fields, and the task id and name when the payload is a
/// task message.
fn entry_json(entry: &DeadLetter) -> Value {
    let (id, task) = task_of(entry);
    serde_json::json!({
        "time": entry.time,
        "queue": entry.queue,
        "reason": entry.reason,
        "task_id": id,
        "task": task,
        "payload": entry.payload,
    })
}

/// The task id and name in a dead letter's message, when it has them.
fn task_of(entry: &DeadLetter) -> (Option<String>, Option<String>) {
    let Ok(message) = KombuMessage::decode(&entry.payload) else {
        return (None, None);
    };
    let text = |name: &str| {
        message
            .headers
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (text("id"), text("task"))
}

fn display_or<'a>(text: &'a str, empty: &'a str) -> &'a str {
    if text.is_empty() {
        empty
    } else {
        text
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub(crate) fn time_text(secs: f64) -> String {
    let micros = (secs * 1e6) as i64;
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_in_utc() {
        assert_eq!(
            super::time_text(1_800_000_000.25),
            "2027-01-15T08:00:00.250Z"
        );
    }
}
