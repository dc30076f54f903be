//! `taskq result ID`: a task's state and result, from the result backend.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use taskq::protocol::ResultMeta;
use taskq::Client;

use crate::output::Output;

/// How often `--wait` reads the record again.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// `taskq result` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task id.
    id: String,

    /// Wait up to this many seconds for the task to finish (SUCCESS, FAILURE or REVOKED);
    /// exits 1 if it has not by then.
    #[arg(short = 'w', long, value_name = "SECS")]
    wait: Option<f64>,
}

pub(crate) async fn run(client: &Client, out: &Output, args: Args) -> anyhow::Result<ExitCode> {
    let result = client.result::<serde_json::Value>(args.id.as_str());
    let wait = match args.wait {
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| anyhow::anyhow!("--wait must be seconds, not {secs}"))?,
        None => Duration::ZERO,
    };
    let started = Instant::now();
    let deadline = started + wait;
    let mut progress = Progress::new(&args.id);
    let meta = loop {
        let meta = result.meta().await?;
        if meta.status.is_ready() || Instant::now() >= deadline {
            break meta;
        }
        progress.show(&meta, started.elapsed());
        tokio::time::sleep(POLL_EVERY).await;
    };
    progress.clear();
    print(out, &meta)?;
    if args.wait.is_some() && !meta.status.is_ready() {
        eprintln!(
            "error: task {} is still {} after {}s",
            args.id,
            meta.status,
            wait.as_secs_f64()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// While `--wait` waits: the task's state and the time waited, on one line of stderr that is
/// rewritten in place. Only at a terminal, so that scripts and logs see none of it.
struct Progress<'a> {
    id: &'a str,
    shown: bool,
    enabled: bool,
}

impl<'a> Progress<'a> {
    fn new(id: &'a str) -> Self {
        let enabled = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Self {
            id,
            shown: false,
            enabled,
        }
    }

    fn show(&mut self, meta: &ResultMeta, waited: Duration) {
        if self.enabled {
            eprint!(
                "\rwaiting for {}: {} ({:.0}s)\x1b[K",
                self.id,
                meta.status,
                waited.as_secs_f64()
            );
            self.shown = true;
        }
    }

    fn clear(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

fn print(out: &Output, meta: &ResultMeta) -> anyhow::Result<()> {
    if out.json() {
        // Celery's own record, as stored under celery-task-meta-<id>.
        println!("{}", meta.to_json());
        return Ok(());
    }
    println!("id:     {}", meta.task_id);
    println!("state:  {}", meta.status);
    if !meta.result.is_null() {
        println!("result: {}", meta.result.as_str());
    }
    if let Some(done) = &meta.date_done {
        println!("done:   {done}");
    }
    if let Some(traceback) = meta.traceback.as_deref().filter(|t| !t.is_empty()) {
        println!("traceback:\n{traceback}");
    }
    Ok(())
}
