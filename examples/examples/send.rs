//! Run with: `cargo run --example send -- <task name> [JSON args] [--countdown SECS] [--queue Q] [--count N]`
//!
//! Sends a task by name from the command line, like `celery call`, and prints each task id:
//!
//! ```sh
//! cargo run --example send -- tasks.add '[2, 3]'
//! cargo run --example send -- tasks.send_push_notification '["my-phone"]' --countdown 10
//! ```
//!
//! The broker comes from `TASKQ_BROKER_URL` (or `.env`), as for the worker.

use std::time::Duration;

use anyhow::{bail, Context};
use taskq::protocol::{RawJson, RawObject};

/// What to send, from the command line.
struct Call {
    task: String,
    /// Each argument as the JSON text given (a Python big integer stays exact).
    args: Vec<RawJson>,
    options: taskq::Options,
    count: usize,
}

fn parse(mut argv: impl Iterator<Item = String>) -> anyhow::Result<Call> {
    let usage = "usage: send <task name> [JSON args] [--countdown SECS] [--queue Q] [--count N]";
    let task = argv.next().context(usage)?;
    let mut call = Call {
        task,
        args: Vec::new(),
        options: taskq::Options::new(),
        count: 1,
    };
    while let Some(arg) = argv.next() {
        let mut value = |flag: &str| argv.next().with_context(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--countdown" => {
                let secs: f64 = value("--countdown")?.parse().context("--countdown")?;
                call.options = call.options.countdown(Duration::from_secs_f64(secs));
            }
            "--queue" => call.options = call.options.queue(value("--queue")?),
            "--count" => call.count = value("--count")?.parse().context("--count")?,
            json if !json.starts_with("--") => match RawJson::from_text(json)?.to_items() {
                Some(args) => call.args = args,
                None => bail!("the arguments must be a JSON array, not {json}"),
            },
            other => bail!("unknown option {other}\n{usage}"),
        }
    }
    Ok(call)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq_examples::init_tracing();
    let call = parse(std::env::args().skip(1))?;
    let client = taskq::Client::from_env()?;
    for _ in 0..call.count {
        let sent = client
            .send_by_name_raw(
                &call.task,
                call.args.clone(),
                RawObject::new(),
                call.options.clone(),
            )
            .await?;
        println!("{}", sent.id());
    }
    Ok(())
}
