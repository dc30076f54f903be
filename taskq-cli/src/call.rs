//! `taskq call NAME`: sends a task by name, as `celery call` does; prints its id.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use taskq::protocol::{RawJson, RawObject};
use taskq::{Client, Options};

use crate::output::Output;

/// `taskq call` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task's registered name, e.g. tasks.add (Rust or Python).
    name: String,

    /// Positional arguments, a JSON list: '[2, 3]'.
    #[arg(short = 'a', long, value_name = "JSON")]
    args: Option<String>,

    /// Keyword arguments, a JSON object: '{"y": 3}'.
    #[arg(short = 'k', long, value_name = "JSON")]
    kwargs: Option<String>,

    /// Run no sooner than this many seconds from now (by the broker's clock).
    #[arg(long, value_name = "SECS", conflicts_with = "eta")]
    countdown: Option<f64>,

    /// Run no sooner than this time, RFC 3339: 2030-01-01T09:00:00Z.
    #[arg(long, value_name = "RFC3339")]
    eta: Option<String>,

    /// The queue (else the task's own, else the default queue).
    #[arg(short = 'Q', long, value_name = "QUEUE")]
    queue: Option<String>,

    /// Message priority, 0 (first) to 9.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let positional = match &args.args {
        Some(text) => {
            let raw = RawJson::from_text(text).context("--args is not JSON")?;
            match raw.to_items() {
                Some(items) => items,
                None => bail!("--args must be a JSON list, e.g. '[2, 3]'"),
            }
        }
        None => Vec::new(),
    };
    let keywords = match &args.kwargs {
        Some(text) => serde_json::from_str::<RawObject>(text)
            .context("--kwargs must be a JSON object, e.g. '{\"y\": 3}'")?,
        None => RawObject::new(),
    };
    let mut options = Options::new();
    if let Some(secs) = args.countdown {
        let delay = Duration::try_from_secs_f64(secs)
            .map_err(|_| anyhow::anyhow!("--countdown must be seconds, not {secs}"))?;
        options = options.countdown(delay);
    }
    if let Some(eta) = &args.eta {
        let when = chrono::DateTime::parse_from_rfc3339(eta)
            .with_context(|| format!("--eta {eta:?} is not an RFC 3339 time"))?;
        options = options.eta(SystemTime::from(when));
    }
    if let Some(queue) = &args.queue {
        options = options.queue(queue.as_str());
    }
    if let Some(priority) = args.priority {
        options = options.priority(priority);
    }
    let queue = options
        .get_queue()
        .unwrap_or(&client.config().default_queue)
        .to_owned();
    let sent = client
        .send_by_name_raw(&args.name, positional, keywords, options)
        .await
        .with_context(|| format!("cannot send {}", args.name))?;
    if out.json() {
        out.print_json(&serde_json::json!({
            "id": sent.id(),
            "task": args.name,
            "queue": queue,
        }))?;
    } else {
        println!("{}", sent.id());
    }
    Ok(ExitCode::SUCCESS)
}
