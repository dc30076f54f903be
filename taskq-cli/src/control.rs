//! `taskq control …`: tells workers to do something, as `celery control` does.

use std::process::ExitCode;

use taskq::Client;

use crate::output::{print_replies, ControlFlags, Output};

/// The control commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Revoke tasks: no worker starts them (recorded in the broker for 3 hours, so workers
    /// not running now honour it too); with --terminate, running ones are stopped.
    Revoke {
        /// Task ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Also stop the tasks where they run.
        #[arg(long)]
        terminate: bool,
        #[command(flatten)]
        flags: ControlFlags,
    },
    /// Workers start sending task events.
    #[command(name = "enable_events", alias = "enable-events")]
    EnableEvents {
        #[command(flatten)]
        flags: ControlFlags,
    },
    /// Workers stop sending task events.
    #[command(name = "disable_events", alias = "disable-events")]
    DisableEvents {
        #[command(flatten)]
        flags: ControlFlags,
    },
    /// Any other remote-control command, as Celery's app.control.broadcast sends it (e.g.
    /// clock, time_limit, pool_grow, autoscale, add_consumer, shutdown; Python workers also
    /// take rate_limit, …).
    Broadcast {
        /// The command's method name.
        method: String,
        /// Its arguments, a JSON object: '{"task_name": "tasks.add", "rate_limit": "10/m"}'.
        #[arg(short = 'a', long, value_name = "JSON")]
        arguments: Option<String>,
        #[command(flatten)]
        flags: ControlFlags,
    },
}

pub(crate) async fn run(
    client: &Client,
    out: &Output,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let control = client.control();
    match command {
        Command::Revoke {
            ids,
            terminate,
            flags,
        } => {
            let replies = control.revoke(&ids, terminate, &flags.options()?).await?;
            if replies.is_empty() {
                // Not a failure: the revoke is in the broker, workers honour it when they
                // take the task.
                if out.json() {
                    out.print_json(&serde_json::json!({}))?;
                } else {
                    println!(
                        "revoked {} (recorded in the broker; no node replied)",
                        ids.join(", ")
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            print_replies(out, &replies)
        }
        Command::EnableEvents { flags } => {
            print_replies(out, &control.enable_events(&flags.options()?).await?)
        }
        Command::DisableEvents { flags } => {
            print_replies(out, &control.disable_events(&flags.options()?).await?)
        }
        Command::Broadcast {
            method,
            arguments,
            flags,
        } => {
            let arguments: serde_json::Value = match arguments.as_deref() {
                Some(text) => serde_json::from_str(text)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .ok_or_else(|| {
                        anyhow::anyhow!("--arguments must be a JSON object, e.g. '{{\"n\": 1}}'")
                    })?,
                None => serde_json::json!({}),
            };
            let replies = control
                .broadcast(&method, arguments, &flags.options()?)
                .await?;
            print_replies(out, &replies)
        }
    }
}
