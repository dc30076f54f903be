//! Celery's worker flags for any worker binary (the `cli` feature, on by default).
//!
//! A worker binary that calls [`Worker::from_args`] takes what `celery worker` takes:
//!
//! ```text
//! my-worker -Q emails,reports -c 50 -n reports@%h -l debug -E
//! my-worker --help
//! ```
//!
//! Flags override the `TASKQ_*` variables and `.env` (see [`Config`](crate::Config)), which
//! still set everything the flags do not. An application with a command line of its own
//! flattens [`WorkerArgs`] into its parser and applies them to a [`WorkerBuilder`]:
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     /// Where the app writes its reports.
//!     #[arg(long)]
//!     out_dir: Option<std::path::PathBuf>,
//!     #[command(flatten)]
//!     worker: taskq::cli::WorkerArgs,
//! }
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let cli = Cli::parse();
//! let client = taskq::Client::from_env()?;
//! let worker = cli.worker.apply(taskq::Worker::builder(client))?.build();
//! worker.run().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use tracing::level_filters::LevelFilter;

use crate::{Client, Result, Worker, WorkerBuilder};

/// Celery's `celery worker` flags, as a clap [`Args`](clap::Args) to flatten into an
/// application's parser, or parsed from the process's arguments by [`Worker::from_args`].
/// Each flag given overrides its `TASKQ_*` variable.
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     worker: taskq::cli::WorkerArgs,
/// }
///
/// let cli = Cli::try_parse_from(["w", "-Q", "emails,reports", "-c", "8", "-n", "w1@%h"]).unwrap();
/// assert_eq!(cli.worker.queues, ["emails", "reports"]);
/// assert_eq!(cli.worker.concurrency, Some(8));
/// assert!(Cli::try_parse_from(["w", "--no-such-flag"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
#[non_exhaustive]
pub struct WorkerArgs {
    /// Queues to consume, comma-separated (default: TASKQ_QUEUES, else the default queue,
    /// `celery`).
    #[arg(
        short = 'Q',
        long = "queues",
        value_name = "QUEUES",
        value_delimiter = ',',
        value_parser = parse_queue
    )]
    pub queues: Vec<String>,

    /// Tasks run at once (default: TASKQ_CONCURRENCY, else 100; tasks are async, so this is
    /// not a number of processes: use the CPU count for CPU-bound tasks).
    #[arg(short = 'c', long, value_name = "N", value_parser = parse_positive)]
    pub concurrency: Option<usize>,

    /// Node name, with Celery's templates: %h host name with domain, %n host name without
    /// domain, %d domain, %% a % (default: TASKQ_HOSTNAME, else taskq-PID@%h).
    #[arg(short = 'n', long, value_name = "NAME", value_parser = parse_hostname)]
    pub hostname: Option<String>,

    /// Log level of the worker's own log subscriber: debug, info, warning, error, critical
    /// (default: RUST_LOG, else info). Does not change a subscriber the application installed.
    #[arg(short = 'l', long, value_name = "LEVEL", value_parser = parse_level)]
    pub loglevel: Option<LevelFilter>,

    /// Publish Celery task events, for Flower and `celery events` (default: TASKQ_SEND_EVENTS).
    #[arg(short = 'E', long = "task-events")]
    pub task_events: bool,

    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9808 (default:
    /// TASKQ_METRICS_ADDR, else none).
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Also run the periodic scheduler (Celery's embedded beat). Any number of workers may:
    /// one leads and sends each slot once.
    #[arg(short = 'B', long)]
    pub beat: bool,

    /// Messages reserved per running task (default: TASKQ_PREFETCH_MULTIPLIER, else 4).
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub prefetch_multiplier: Option<usize>,

    /// Seconds running tasks get to finish after SIGTERM or SIGINT before they are put back
    /// in their queues (default: TASKQ_SHUTDOWN_GRACE, else 30).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub shutdown_grace: Option<Duration>,

    /// Scale the slots between MIN and MAX with the work held, as Celery's autoscaler does
    /// (`10,3`; one number is MAX with MIN 0; the order does not matter). Replaces -c.
    #[arg(long, value_name = "MAX,MIN", value_parser = parse_autoscale)]
    pub autoscale: Option<(usize, usize)>,
}

impl WorkerArgs {
    /// Applies the flags given to `builder`; what was not given stays as the builder has it
    /// (its client's configuration, from `TASKQ_*` and `.env`).
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for flags that conflict.
    ///
    /// ```
    /// use clap::Parser;
    ///
    /// #[derive(Parser)]
    /// struct Cli {
    ///     #[command(flatten)]
    ///     worker: taskq::cli::WorkerArgs,
    /// }
    ///
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// let cli = Cli::parse_from(["w", "-c", "3"]);
    /// let worker = cli.worker.apply(taskq::Worker::builder(client.clone()))?.build();
    /// # let _ = worker;
    /// let beat = Cli::parse_from(["w", "-B"]);
    /// let worker = beat.worker.apply(taskq::Worker::builder(client))?.build(); // runs the scheduler too
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn apply(self, mut builder: WorkerBuilder) -> Result<WorkerBuilder> {
        if self.beat {
            builder = builder.beat(true);
        }
        if !self.queues.is_empty() {
            builder = builder.queues(self.queues);
        }
        if let Some(n) = self.concurrency {
            builder = builder.concurrency(n);
        }
        if let Some(name) = self.hostname {
            builder = builder.hostname(name);
        }
        if let Some(level) = self.loglevel {
            builder = builder.log_level(level);
        }
        if self.task_events {
            builder = builder.send_events(true);
        }
        if let Some(addr) = self.metrics_addr {
            builder = builder.metrics_addr(addr);
        }
        if let Some(n) = self.prefetch_multiplier {
            builder = builder.prefetch_multiplier(n);
        }
        if let Some(grace) = self.shutdown_grace {
            builder = builder.shutdown_grace(grace);
        }
        if let Some((max, min)) = self.autoscale {
            builder = builder.autoscale(max, min);
        }
        Ok(builder)
    }
}

/// The command line of a worker binary: [`WorkerArgs`] with `--help` and `--version`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "taskq-worker",
    version,
    about = "A taskq worker: runs the #[taskq::task]s linked into this binary, from Redis, \
             in Celery's format.",
    after_help = "Settings not given here come from TASKQ_* variables and .env \
                  (TASKQ_BROKER_URL, TASKQ_RESULT_BACKEND, ...); flags win over them."
)]
struct WorkerCommand {
    #[command(flatten)]
    worker: WorkerArgs,
}

impl Worker {
    /// A worker configured from the process's command line (Celery's worker flags, see
    /// [`WorkerArgs`]) over the environment and `.env`. `--help` and `--version` print and
    /// exit with status 0; an unknown or malformed flag prints clap's error and exits with
    /// status 2, as `celery worker` does for a bad flag.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a bad `TASKQ_*` setting.
    ///
    /// ```no_run
    /// #[tokio::main]
    /// async fn main() -> taskq::Result<()> {
    ///     taskq::Worker::from_args()?.run().await
    /// }
    /// ```
    pub fn from_args() -> Result<Self> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let bin = args
            .first()
            .map(std::path::Path::new)
            .and_then(std::path::Path::file_name)
            .map_or_else(
                || "taskq-worker".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
        let mut cli = WorkerCommand::command().bin_name(bin);
        let matches = cli
            .try_get_matches_from_mut(args)
            .unwrap_or_else(|e| e.exit());
        let command = WorkerCommand::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        Ok(command
            .worker
            .apply(Worker::builder(Client::from_env()?))?
            .build())
    }
}

fn parse_queue(queue: &str) -> std::result::Result<String, String> {
    let queue = queue.trim();
    if queue.is_empty() {
        return Err("a queue name is empty".to_owned());
    }
    Ok(queue.to_owned())
}

fn parse_positive(n: &str) -> std::result::Result<usize, String> {
    match n.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{n:?} is not a whole number")),
    }
}

/// Celery's `--autoscale`: `max,min` in either order, or `max` alone (min 0).
fn parse_autoscale(range: &str) -> std::result::Result<(usize, usize), String> {
    let numbers: Vec<&str> = range.split(',').collect();
    if numbers.len() > 2 {
        return Err(format!(
            "{range:?}: expected two comma-separated whole numbers (max,min) or one (max)"
        ));
    }
    let mut parsed = numbers
        .iter()
        .map(|n| n.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| format!("{range:?}: expected whole numbers, such as 10,3"))?;
    parsed.sort_unstable();
    match parsed[..] {
        [max] | [_, max] if max == 0 => Err(format!("{range:?}: the maximum must be at least 1")),
        [max] => Ok((max, 0)),
        [min, max] => Ok((max, min)),
        _ => Err(format!("{range:?}: expected max,min")),
    }
}

fn parse_secs(secs: &str) -> std::result::Result<Duration, String> {
    match secs.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{secs:?} is not a number of seconds")),
    }
}

/// Celery's `--loglevel` names, in any case; `critical` and `fatal` are `error` (tracing has
/// no level above it).
fn parse_level(level: &str) -> std::result::Result<LevelFilter, String> {
    match level.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warning" | "warn" => Ok(LevelFilter::WARN),
        "error" | "critical" | "fatal" => Ok(LevelFilter::ERROR),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(format!(
            "{level:?} is not a log level: use debug, info, warning, error or critical"
        )),
    }
}

/// Checks Celery's `-n` templates: `%h`, `%n`, `%d` and `%%`. Celery refuses any other (for
/// `-n`; `%p`, the full node name, and `%i`/`%I`, the pool process index, exist only in its
/// `--logfile`/`--pidfile` names), and so does taskq, rather than keep a stray `%p` in a
/// node name.
fn parse_metrics_addr(addr: &str) -> std::result::Result<std::net::SocketAddr, String> {
    crate::config::parse_socket_addr("--metrics-addr", addr).map_err(|e| e.to_string())
}

fn parse_hostname(template: &str) -> std::result::Result<String, String> {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some('h' | 'n' | 'd' | '%') => {}
            Some(other) => {
                return Err(format!(
                    "unknown template %{other}: -n takes %h (host name with domain), %n (host \
                     name without domain), %d (domain) and %% (Celery's %p and %i exist only \
                     in file names)"
                ))
            }
            None => return Err("a lone % at the end: write %% for a %".to_owned()),
        }
    }
    if template.trim().is_empty() {
        return Err("the node name is empty".to_owned());
    }
    Ok(template.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<WorkerArgs, clap::Error> {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        WorkerCommand::try_parse_from(all).map(|c| c.worker)
    }

    #[test]
    fn celery_flags_parse() {
        let args = parse(&[
            "-Q",
            "a,b",
            "-c",
            "7",
            "-n",
            "w1@%h",
            "-l",
            "DEBUG",
            "-E",
            "--prefetch-multiplier",
            "2",
            "--shutdown-grace",
            "1.5",
        ])
        .unwrap();
        assert_eq!(args.queues, ["a", "b"]);
        assert_eq!(args.concurrency, Some(7));
        assert_eq!(args.hostname.as_deref(), Some("w1@%h"));
        assert_eq!(args.loglevel, Some(LevelFilter::DEBUG));
        assert!(args.task_events && !args.beat);
        assert_eq!(args.prefetch_multiplier, Some(2));
        assert_eq!(args.shutdown_grace, Some(Duration::from_millis(1500)));
        let long = parse(&["--queues=a", "--concurrency=3", "--loglevel=warning"]).unwrap();
        assert_eq!(
            (long.queues, long.concurrency, long.loglevel),
            (vec!["a".to_owned()], Some(3), Some(LevelFilter::WARN))
        );
    }

    #[test]
    fn bad_values_and_unknown_flags_are_clap_errors() {
        use clap::error::ErrorKind;
        assert_eq!(
            parse(&["--frobnicate"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        for bad in [
            &["-c", "0"][..],
            &["-c", "many"],
            &["-l", "loud"],
            &["-n", "w@%p"],
            &["-n", "w%"],
            &["-Q", "a,,b"],
            &["--shutdown-grace=-1"],
            &["--shutdown-grace", "soon"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        let err = parse(&["-n", "w@%p"]).unwrap_err().to_string();
        assert!(err.contains("unknown template %p"), "{err}");
    }

    #[test]
    fn autoscale_takes_celerys_forms() {
        assert_eq!(
            parse(&["--autoscale=10,3"]).unwrap().autoscale,
            Some((10, 3))
        );
        assert_eq!(
            parse(&["--autoscale", "3,10"]).unwrap().autoscale,
            Some((10, 3))
        );
        assert_eq!(parse(&["--autoscale=4"]).unwrap().autoscale, Some((4, 0)));
        for bad in ["1,2,3", "x", "0", "4,"] {
            let err = parse(&["--autoscale", bad]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
        let client = Client::from_config(crate::Config::default()).unwrap();
        let worker = parse(&["--autoscale=6,2"])
            .unwrap()
            .apply(Worker::builder(client))
            .unwrap()
            .build();
        assert!(format!("{worker:?}").contains("autoscale: Some((6, 2))"));
    }

    #[test]
    fn beat_turns_the_scheduler_on() {
        let client = Client::from_config(crate::Config::default()).unwrap();
        let args = parse(&["-B"]).unwrap();
        assert!(args.beat);
        let worker = args.apply(Worker::builder(client)).unwrap().build();
        assert!(format!("{worker:?}").contains("beat: true"));
    }
}
