//! The `taskq` command line (package `taskq-cli`): built once per test process with the
//! cargo that runs the tests (so it is never stale), and run against a test's own Redis.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::RedisServer;

/// How long one run of the command may take before the test fails.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of the `taskq` binary, built first (`cargo build -p taskq-cli`, same profile
/// and target directory as the running test; a no-op when it is up to date).
///
/// # Panics
///
/// When the build fails, with cargo's output.
pub fn taskq_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the running test binary");
            let mut profile_dir = exe.parent().expect("a parent dir").to_path_buf();
            if profile_dir.file_name().is_some_and(|n| n == "deps") {
                profile_dir.pop();
            }
            let target_dir = profile_dir.parent().expect("a target dir").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut build = std::process::Command::new(cargo);
            // Cargo gives the running test variables of its own (CARGO_PKG_*, CARGO_MANIFEST_DIR,
            // …); seen by the inner build, they change fingerprints, and the inner and the
            // outer build would rebuild each other every run. The user's settings
            // (CARGO_HOME, CARGO_INCREMENTAL, CARGO_PROFILE_*, …) stay.
            const SET_FOR_TESTS: [&str; 9] = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "CARGO_SBOM_PATH",
                "OUT_DIR",
            ];
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if SET_FOR_TESTS.iter().any(|set| key.starts_with(set)) {
                    build.env_remove(key.as_ref());
                }
            }
            build
                .current_dir(&workspace)
                .args(["build", "--quiet", "-p", "taskq-cli", "--bin", "taskq"])
                .arg("--target-dir")
                .arg(&target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let built = build.output().expect("cannot run cargo build");
            assert!(
                built.status.success(),
                "cargo build -p taskq-cli failed:\n{}",
                String::from_utf8_lossy(&built.stderr)
            );
            let path = profile_dir.join(format!("taskq{}", std::env::consts::EXE_SUFFIX));
            assert!(path.is_file(), "{} was not built", path.display());
            path
        })
        .clone()
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct CliRun {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    /// Panics (with both outputs) unless the run exited 0.
    pub fn success(self) -> Self {
        assert!(self.status.success(), "taskq failed: {self}");
        self
    }

    /// Panics (with both outputs) unless the run exited with `code`.
    pub fn exit_code(self, code: i32) -> Self {
        assert_eq!(self.status.code(), Some(code), "{self}");
        self
    }

    /// Standard output as one JSON document.
    ///
    /// # Panics
    ///
    /// When it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// Each line of standard output as JSON.
    ///
    /// # Panics
    ///
    /// When a line is not JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("line {line:?} is not JSON ({e}): {self}"))
            })
            .collect()
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `taskq <args>` against `server` (`-b` its db 0, `--result-backend` its db 1, as
/// [`crate::worker::client`] sets them), with no `TASKQ_*` / `CELERY_*` variable of the
/// test's own, stdin closed, in a fresh directory (no `.env` is read).
///
/// # Panics
///
/// When it cannot run or takes longer than [`CLI_TIMEOUT`].
pub async fn taskq(server: &RedisServer, args: &[&str]) -> CliRun {
    let mut all = vec![
        "-b".to_owned(),
        server.url(),
        "--result-backend".to_owned(),
        server.url_db(1),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    taskq_raw(&all, &[]).await
}

/// Runs `taskq <args>` as [`taskq()`] does, without adding the broker flags, with `envs` set.
///
/// # Panics
///
/// As [`taskq()`].
pub async fn taskq_raw(args: &[String], envs: &[(&str, &str)]) -> CliRun {
    let dir = tempfile::tempdir().expect("a temp dir");
    taskq_in(dir.path(), args, envs).await
}

/// Runs `taskq <args>` as [`taskq_raw`] does, in `dir` (where it reads a `.env`).
///
/// # Panics
///
/// As [`taskq()`].
pub async fn taskq_in(dir: &std::path::Path, args: &[String], envs: &[(&str, &str)]) -> CliRun {
    let mut cmd = tokio::process::Command::new(taskq_binary());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("TASKQ_") || key.starts_with("CELERY_") {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.current_dir(dir)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("taskq {args:?} took longer than {CLI_TIMEOUT:?}"))
        .expect("cannot run taskq");
    CliRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
