//! `taskq inspect METHOD`: asks workers about themselves, as `celery inspect` does.

use std::process::ExitCode;

use taskq::Client;

use crate::output::{print_replies, ControlFlags, Output};

/// What to ask.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
enum Method {
    /// Which workers answer.
    Ping,
    /// The tasks running now.
    Active,
    /// The task names each worker runs.
    Registered,
    /// Counters, pool and broker settings.
    Stats,
    /// Tasks taken but not started.
    Reserved,
    /// Tasks waiting for their ETA in the worker.
    Scheduled,
    /// The revoked task ids the worker honours.
    Revoked,
    /// The queues each worker consumes.
    ActiveQueues,
    /// The worker's non-default settings.
    Conf,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Active => "active",
            Self::Registered => "registered",
            Self::Stats => "stats",
            Self::Reserved => "reserved",
            Self::Scheduled => "scheduled",
            Self::Revoked => "revoked",
            Self::ActiveQueues => "active_queues",
            Self::Conf => "conf",
        }
    }
}

/// `taskq inspect` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to ask.
    method: Method,

    #[command(flatten)]
    flags: ControlFlags,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let options = args.flags.options()?;
    let replies = client
        .control()
        .inspect(args.method.name(), &options)
        .await?;
    print_replies(out, &replies)
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    #[test]
    fn every_method_is_one_taskq_knows() {
        for method in super::Method::value_variants() {
            assert!(taskq::control::INSPECT_METHODS.contains(&method.name()));
            let value = method.to_possible_value().unwrap();
            assert_eq!(value.get_name(), method.name());
        }
    }
}
