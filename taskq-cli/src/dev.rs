//! `taskq dev`: the development loop Celery users get from `watchmedo auto-restart`. It runs a
//! worker command, watches the sources, and on a change rebuilds first (while the old worker
//! keeps working), then restarts the worker: the old one gets a short grace to finish its
//! tasks, and what it did not finish goes back to the queue, where the new one takes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// Rebuild and restart a worker when its sources change.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  taskq dev -- cargo run --example worker")]
pub(crate) struct DevArgs {
    /// A file or directory to watch; repeat for more [default: the current directory].
    /// `target/` and hidden directories are skipped.
    #[arg(short, long = "watch", value_name = "PATH")]
    watch: Vec<PathBuf>,

    /// Extensions of the files whose change restarts the worker.
    #[arg(long, value_delimiter = ',', default_value = "rs,toml")]
    ext: Vec<String>,

    /// Seconds the stopped worker's running tasks get to finish (its TASKQ_SHUTDOWN_GRACE,
    /// unless set); the unfinished ones go back to their queue for the new worker.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    grace: f64,

    /// How often to look for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    poll_ms: u64,

    /// The worker command. For `cargo run ...`, the loop first runs the same `cargo build`, so a
    /// change that does not compile leaves the running worker alone.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the loop until Ctrl-C (or SIGTERM), which stops the worker as a restart does.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    check(&args)?;
    let roots = if args.watch.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.watch.clone()
    };
    let sources = Sources::new(roots, args.ext.clone());
    let build = build_command(&args.command);
    eprintln!(
        "taskq dev: watching {} ({}); worker: {}",
        sources.describe(),
        args.ext.join(", "),
        args.command.join(" ")
    );
    let mut seen = sources.scan();
    let mut worker = if build_ok(build.as_deref()).await? {
        Some(Worker::start(&args)?)
    } else {
        None
    };
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms.max(10)));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            status = wait_exit(&mut worker) => {
                eprintln!("taskq dev: the worker exited ({status}); waiting for a change to start it again");
                worker = None;
            }
            _ = tick.tick() => {
                let now = sources.scan();
                let Some(changed) = first_change(&seen, &now) else { continue };
                // Let a save that writes several files finish before building.
                tokio::time::sleep(Duration::from_millis(args.poll_ms.max(10))).await;
                seen = sources.scan();
                eprintln!("taskq dev: {} changed", changed.display());
                if !build_ok(build.as_deref()).await? {
                    eprintln!("taskq dev: the build failed; the running worker (if any) goes on");
                    continue;
                }
                if let Some(old) = worker.take() {
                    eprintln!("taskq dev: restarting the worker (running tasks get {}s, then go back to their queue)", args.grace);
                    old.stop(args.grace).await?;
                }
                worker = Some(Worker::start(&args)?);
            }
        }
    }
    if let Some(old) = worker.take() {
        old.stop(args.grace).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The worker process, in a process group of its own so that stopping it reaches whatever it
/// started (`cargo run` and the program it runs).
struct Worker(Child);

impl Worker {
    fn start(args: &DevArgs) -> anyhow::Result<Self> {
        let (program, rest) = args.command.split_first().expect("clap requires a command");
        let mut command = Command::new(program);
        command.args(rest).process_group(0).kill_on_drop(true);
        if std::env::var_os("TASKQ_SHUTDOWN_GRACE").is_none() {
            command.env("TASKQ_SHUTDOWN_GRACE", args.grace.to_string());
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", args.command.join(" ")))?;
        Ok(Self(child))
    }

    /// A warm shutdown (SIGTERM), then SIGKILL if the worker outlives its grace by far.
    async fn stop(mut self, grace: f64) -> anyhow::Result<()> {
        if let Some(pid) = self.0.id() {
            signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let patience = Duration::from_secs_f64(grace.max(0.0)) + Duration::from_secs(10);
        if tokio::time::timeout(patience, self.0.wait()).await.is_err() {
            eprintln!("taskq dev: the worker did not stop in {patience:?}; killing it");
            if let Some(pid) = self.0.id() {
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
            self.0.wait().await?;
        }
        Ok(())
    }
}

fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let group = nix::unistd::Pid::from_raw(pid as i32);
    // The group may be gone already, which is what we want anyway.
    let _ = nix::sys::signal::killpg(group, signal);
}

/// Waits for the worker to exit; never resolves when none runs.
async fn wait_exit(worker: &mut Option<Worker>) -> ExitStatus {
    match worker {
        Some(worker) => match worker.0.wait().await {
            Ok(status) => status,
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// For `cargo run ARGS [-- PROGRAM ARGS]`, the `cargo build ARGS` that builds the same program.
fn build_command(command: &[String]) -> Option<Vec<String>> {
    let (program, rest) = command.split_first()?;
    let is_cargo = Path::new(program).file_name().is_some_and(|n| n == "cargo");
    let run_at = rest.iter().position(|a| !a.starts_with('+'))?;
    if !is_cargo || rest[run_at] != "run" {
        return None;
    }
    let mut build = vec![program.clone()];
    build.extend(rest[..run_at].iter().cloned());
    build.push("build".to_owned());
    build.extend(
        rest[run_at + 1..]
            .iter()
            .take_while(|a| *a != "--")
            .cloned(),
    );
    Some(build)
}

/// Runs the build, if any; whether it succeeded.
async fn build_ok(build: Option<&[String]>) -> anyhow::Result<bool> {
    let Some((program, args)) = build.and_then(<[String]>::split_first) else {
        return Ok(true);
    };
    let status = Command::new(program)
        .args(args)
        .status()
        .await
        .with_context(|| format!("cannot run `{program}`"))?;
    Ok(status.success())
}

/// SIGINT (Ctrl-C), SIGTERM, or SIGHUP (the terminal closed): the worker, in a process group
/// of its own, gets none of them from the terminal, so the loop must stop it.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hangup.recv() => {}
    }
}

/// The watched files: a modification time and size per file, found by walking the roots.
/// Polling, not OS notifications: it behaves the same in containers, on network and mounted
/// file systems and on every OS, and a source tree is small enough to walk a few times a
/// second.
struct Sources {
    roots: Vec<PathBuf>,
    extensions: Vec<String>,
}

type Snapshot = BTreeMap<PathBuf, (SystemTime, u64)>;

impl Sources {
    fn new(roots: Vec<PathBuf>, extensions: Vec<String>) -> Self {
        Self { roots, extensions }
    }

    fn describe(&self) -> String {
        let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        roots.join(", ")
    }

    fn scan(&self) -> Snapshot {
        let mut files = Snapshot::new();
        for root in &self.roots {
            self.walk(root, &mut files);
        }
        files
    }

    fn walk(&self, path: &Path, files: &mut Snapshot) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_file() {
            if self.watches(path) {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.insert(path.to_owned(), (modified, meta.len()));
            }
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let child = entry.path();
            let skipped = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with('.') || (name == "target" && child.is_dir()));
            if !skipped {
                self.walk(&child, files);
            }
        }
    }

    fn watches(&self, file: &Path) -> bool {
        file.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| self.extensions.iter().any(|x| x == e))
    }
}

/// A file added, removed or changed between two scans.
fn first_change(before: &Snapshot, after: &Snapshot) -> Option<PathBuf> {
    let changed = after
        .iter()
        .find(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone());
    changed.or_else(|| before.keys().find(|p| !after.contains_key(*p)).cloned())
}

/// A command line that cannot run: the loop refuses it before it starts.
fn check(args: &DevArgs) -> anyhow::Result<()> {
    if args.grace < 0.0 || !args.grace.is_finite() {
        bail!("--grace must be a number of seconds, 0 or more");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn cargo_run_is_built_with_the_same_arguments_first() {
        let build = build_command(&strings(&[
            "cargo",
            "+stable",
            "run",
            "--example",
            "worker",
            "--",
            "-c",
            "8",
        ]));
        assert_eq!(
            build,
            Some(strings(&[
                "cargo",
                "+stable",
                "build",
                "--example",
                "worker"
            ]))
        );
        assert_eq!(build_command(&strings(&["./target/debug/worker"])), None);
        assert_eq!(build_command(&strings(&["cargo", "test"])), None);
    }

    #[test]
    fn changes_additions_and_removals_are_seen() {
        let dir = std::env::temp_dir().join(format!("taskq-dev-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join("a.rs"), "1").unwrap();
        std::fs::write(dir.join("target/b.rs"), "1").unwrap();
        std::fs::write(dir.join("notes.txt"), "1").unwrap();
        let sources = Sources::new(vec![dir.clone()], strings(&["rs"]));
        let first = sources.scan();
        assert_eq!(first.len(), 1, "only a.rs: {first:?}");
        std::fs::write(dir.join("a.rs"), "22").unwrap();
        assert_eq!(
            first_change(&first, &sources.scan()),
            Some(dir.join("a.rs"))
        );
        let second = sources.scan();
        std::fs::remove_file(dir.join("a.rs")).unwrap();
        assert_eq!(
            first_change(&second, &sources.scan()),
            Some(dir.join("a.rs"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
