//! `taskq events`: a live tail of the `celeryev` exchange, one line per event as
//! `celery events --dump` prints them, or each event's JSON with `--json`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use taskq::protocol::KombuMessage;
use taskq::Client;

use crate::dead_letters::time_text;
use crate::output::{plain, Output};

/// Celery's event exchange.
const EXCHANGE: &str = "celeryev";

/// `taskq events` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Stop after this many events.
    #[arg(short = 'n', long, value_name = "N")]
    limit: Option<usize>,

    /// Stop after this many seconds.
    #[arg(short = 't', long, value_name = "SECS")]
    timeout: Option<f64>,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let timeout = match args.timeout {
        Some(secs) => Some(
            Duration::try_from_secs_f64(secs)
                .map_err(|_| anyhow::anyhow!("--timeout must be seconds, not {secs}"))?,
        ),
        None => None,
    };
    let mut subscription = client.broker().subscribe_broadcast(EXCHANGE).await?;
    if !out.json() {
        eprintln!(
            "-> taskq events: tailing {EXCHANGE} on {} (Ctrl-C to stop)",
            client.broker().describe()
        );
    }
    let tail = async {
        let mut seen = 0;
        while args.limit.is_none_or(|limit| seen < limit) {
            let Some(raw) = subscription.recv().await else {
                anyhow::bail!("the event subscription ended");
            };
            let Ok(message) = KombuMessage::decode(&raw) else {
                continue;
            };
            for event in message.into_events() {
                if args.limit.is_some_and(|limit| seen >= limit) {
                    break;
                }
                if out.json() {
                    out.print_json(&event)?;
                } else {
                    println!("{}", dump_line(&event));
                }
                std::io::stdout().flush()?;
                seen += 1;
            }
        }
        Ok(())
    };
    let stop = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        tailed = tail => tailed?,
        () = stop => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// An event as `celery events --dump` prints it: `hostname [time] type uuid: fields`.
fn dump_line(event: &Value) -> String {
    let field = |name: &str| event.get(name).map(plain).unwrap_or_default();
    let time = event
        .get("timestamp")
        .and_then(Value::as_f64)
        .map(time_text)
        .unwrap_or_default();
    let skip = [
        "hostname",
        "timestamp",
        "type",
        "uuid",
        "clock",
        "local_received",
        "utcoffset",
        "pid",
    ];
    let fields: Vec<String> = event
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !skip.contains(&name.as_str()))
        .map(|(name, value)| format!("{name}={}", plain(value)))
        .collect();
    let uuid = field("uuid");
    let mut line = format!("{} [{time}] {}", field("hostname"), field("type"));
    if !uuid.is_empty() {
        line.push(' ');
        line.push_str(&uuid);
    }
    if !fields.is_empty() {
        line.push_str(": ");
        line.push_str(&fields.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn events_dump_on_one_line() {
        let event = json!({"hostname": "taskq@h", "timestamp": 1_800_000_000.0, "type": "task-succeeded",
                           "uuid": "id-1", "result": "5", "runtime": 0.5, "clock": 3});
        assert_eq!(
            super::dump_line(&event),
            "taskq@h [2027-01-15T08:00:00.000Z] task-succeeded id-1: result=5, runtime=0.5"
        );
    }
}
