//! `taskq`: operations against any Celery-compatible Redis, for taskq and Python Celery
//! workers alike: call a task, read a result, inspect and control workers, see and purge
//! queues, replay dead letters, tail events.
//!
//! The binary (`src/main.rs`) only calls [`main`]. One module per subcommand; this file holds
//! the global flags and the dispatch, `connect.rs` opens the client, `output.rs` prints for
//! people or, with `--json`, for machines. A new subcommand is a module with an `Args` (or a
//! `Command` enum) and a `run`, and one variant of `Command` here.
//!
//! ```text
//! taskq [-b URL] [--result-backend URL] [--json] <call|result|inspect|control|status|queues|purge|dead-letters|events|dev> …
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod call;
mod connect;
mod control;
mod dashboard;
mod dead_letters;
#[cfg(unix)]
mod dev;
mod events;
mod inspect;
mod metrics;
mod output;
mod purge;
mod queues;
mod result;
mod status;

/// Operations on a taskq / Celery broker (Redis): call tasks, read results, inspect and
/// control workers, queues and dead letters.
#[derive(Debug, Parser)]
#[command(name = "taskq", version, about, long_about = None)]
struct Cli {
    /// Broker URL (redis://, rediss://, sentinel://, redis+cluster://); else TASKQ_BROKER_URL,
    /// CELERY_BROKER_URL or .env.
    #[arg(short = 'b', long = "broker", global = true, value_name = "URL")]
    broker: Option<String>,

    /// Result backend URL; else TASKQ_RESULT_BACKEND, CELERY_RESULT_BACKEND, or the broker.
    #[arg(long = "result-backend", global = true, value_name = "URL")]
    result_backend: Option<String>,

    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a task by name; prints its id.
    Call(call::Args),
    /// Show a task's state and result.
    Result(result::Args),
    /// Ask workers about themselves (Celery's `celery inspect`).
    Inspect(inspect::Args),
    /// Tell workers to do something (Celery's `celery control`).
    #[command(subcommand)]
    Control(control::Command),
    /// The workers online (Celery's `celery status`).
    Status(status::Args),
    /// Messages per queue: waiting, unacked, scheduled, dead letters.
    Queues(queues::Args),
    /// Delete the messages waiting in queues.
    Purge(purge::Args),
    /// The fleet's queue depths for Prometheus: printed, or served with --listen.
    Metrics(metrics::Args),
    /// The web dashboard: workers, queues, tasks, dead letters, and actions on them.
    Dashboard(dashboard::Args),
    /// List or replay dead-lettered messages.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(dead_letters::Command),
    /// Tail the events workers send (Celery's `celery events --dump`).
    Events(events::Args),
    /// Run a worker and restart it when its sources change (Celery users' `watchmedo
    /// auto-restart`): `taskq dev -- cargo run --example worker`.
    #[cfg(unix)]
    Dev(dev::DevArgs),
}

/// Runs the command line: parses the process's arguments (printing help or a usage error
/// and exiting 2 as clap does), runs the subcommand, and returns its exit code; an error is
/// printed as `error: …` and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The dev loop runs a worker command; it talks to no broker itself.
    #[cfg(unix)]
    if let Command::Dev(args) = cli.command {
        return dev::run(args).await;
    }
    let client = connect::client(cli.broker.as_deref(), cli.result_backend.as_deref()).await?;
    let out = output::Output::new(cli.json);
    match cli.command {
        Command::Call(args) => call::run(&client, &out, args).await,
        Command::Result(args) => result::run(&client, &out, args).await,
        Command::Inspect(args) => inspect::run(&client, &out, args).await,
        Command::Control(command) => control::run(&client, &out, command).await,
        Command::Status(args) => status::run(&client, &out, args).await,
        Command::Queues(args) => queues::run(&client, &out, args).await,
        Command::Purge(args) => purge::run(&client, &out, args).await,
        Command::Metrics(args) => metrics::run(&client, args).await,
        Command::Dashboard(args) => dashboard::run(&client, args).await,
        Command::DeadLetters(command) => dead_letters::run(&client, &out, command).await,
        Command::Events(args) => events::run(&client, &out, args).await,
        #[cfg(unix)]
        Command::Dev(_) => unreachable!("handled before connecting"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
