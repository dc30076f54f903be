//! Real Python Celery for the interop tests.
//!
//! Each supported Celery line gets its own virtual environment, created on first use under
//! `<target dir>/taskq-interop/` with `python3 -m venv` and pinned packages from PyPI, and then
//! reused. Test binaries running at the same time share one creation through a file lock.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{wait_until, ChildGuard};

/// A Celery release line the interop tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeleryLine {
    /// Short name, used in the environment's directory name, e.g. `"5.6"`.
    pub name: &'static str,
    /// The pip requirements that install it.
    pub requirements: &'static [&'static str],
}

/// The newest Celery 5.x (with kombu's newest Redis transport).
pub const CELERY_LATEST: CeleryLine = CeleryLine {
    name: "5.6",
    requirements: &["celery[redis]==5.6.*"],
};

/// Celery 5.3, the first release with kombu's tagged JSON.
pub const CELERY_5_3: CeleryLine = CeleryLine {
    name: "5.3",
    requirements: &["celery==5.3.*", "kombu==5.3.*", "redis>=4.5.2,<5"],
};

/// The newest Celery with Flower 2 (the monitoring web UI and HTTP API) and the Prometheus
/// project's Python client (its OpenMetrics parser reads taskq's metrics), in an environment
/// of its own so the Celery-only lines stay minimal.
pub const FLOWER: CeleryLine = CeleryLine {
    name: "5.6-flower",
    requirements: &["celery[redis]==5.6.*", "flower==2.*", "prometheus-client"],
};

/// The newest Celery with OpenTelemetry's Celery instrumentation (and the SDK, for trace ids),
/// in its own environment: the trace tests read the W3C context it writes and reads.
pub const CELERY_OTEL: CeleryLine = CeleryLine {
    name: "5.6-otel",
    requirements: &[
        "celery[redis]==5.6.*",
        "opentelemetry-sdk==1.*",
        "opentelemetry-instrumentation-celery",
    ],
};

/// Every Celery line the interop tests cover.
pub const CELERY_LINES: [CeleryLine; 2] = [CELERY_LATEST, CELERY_5_3];

/// A virtual environment with one Celery line installed.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    dir: PathBuf,
    line: CeleryLine,
}

impl PythonEnv {
    /// The environment for `line`, created (once, under a file lock) if it does not exist yet.
    ///
    /// # Panics
    ///
    /// With a clear message when `python3` (with its `venv` module) is missing or pip fails.
    pub fn get(line: CeleryLine) -> PythonEnv {
        let root = interop_dir();
        fs::create_dir_all(&root).expect("cannot create the interop directory");
        let dir = root.join(format!("celery-{}", line.name));
        let lock = File::create(root.join(format!("celery-{}.lock", line.name)))
            .expect("cannot create the venv lock");
        lock.lock().expect("cannot lock the venv lock");
        let marker = dir.join(".taskq-ready");
        let wanted = line.requirements.join(" ");
        if fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
            create_venv(&dir, line.requirements);
            fs::write(&marker, &wanted).expect("cannot write the venv marker");
        }
        PythonEnv { dir, line }
    }

    /// [`get`](Self::get) from async code: the first call installs Celery, which blocks.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    pub async fn load(line: CeleryLine) -> PythonEnv {
        tokio::task::spawn_blocking(move || PythonEnv::get(line))
            .await
            .expect("installing the Python environment panicked")
    }

    /// The environment's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// The Celery line installed here.
    pub fn line(&self) -> CeleryLine {
        self.line
    }

    /// The installed Celery version, e.g. `"5.6.3"`.
    pub fn celery_version(&self) -> String {
        let out = Command::new(self.python())
            .args(["-c", "import celery; print(celery.__version__)"])
            .output()
            .expect("cannot run the venv's python");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs Celery's command line on the interop app, `python -m celery -A celery_app <args>`,
    /// off the async threads; its output, whatever its exit status.
    ///
    /// # Panics
    ///
    /// When the interpreter cannot be run.
    pub async fn celery_cli(&self, broker: &str, backend: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(broker, backend);
        cmd.args(["-m", "celery", "-A", "celery_app"]).args(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("cannot run celery"))
            .await
            .expect("the celery command's thread")
    }

    /// A command running this environment's Python in the interop app's directory, with
    /// `BROKER_URL` and `RESULT_BACKEND` set.
    pub fn command(&self, broker: &str, backend: &str) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.current_dir(app_dir())
            .env("BROKER_URL", broker)
            .env("RESULT_BACKEND", backend)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }

    /// Sends `calls` (a JSON list of `{"task", "args", "kwargs", "options", "timeout"}`) with
    /// real Celery and waits for each result with Celery's `AsyncResult.get()`; returns one
    /// JSON object per call (see `tests/python/drive.py`).
    ///
    /// # Panics
    ///
    /// When the driver fails, with its output.
    pub fn drive(&self, broker: &str, backend: &str, calls: &Value) -> Vec<Value> {
        self.drive_with_env(broker, backend, &[], calls)
    }

    /// Like [`drive`](Self::drive), with extra environment variables for the Celery app
    /// (e.g. `BROKER_TRANSPORT_OPTIONS`, see `tests/python/celery_app.py`).
    ///
    /// # Panics
    ///
    /// When the driver fails, with its output.
    pub fn drive_with_env(
        &self,
        broker: &str,
        backend: &str,
        env: &[(&str, &str)],
        calls: &Value,
    ) -> Vec<Value> {
        self.run_script(broker, backend, env, "drive.py", calls)
    }

    /// Runs `canvas.py`, which builds each scenario's canvas with real Celery, its steps on
    /// Python or taskq as `langs` says, and prints what Celery reads back (see
    /// `tests/python/canvas.py`).
    ///
    /// # Panics
    ///
    /// When the script fails, with its output.
    pub fn canvas(&self, broker: &str, backend: &str, jobs: &Value) -> Vec<Value> {
        self.run_script(broker, backend, &[], "canvas.py", jobs)
    }

    /// Sends `call` (`{"task", "args", "queue"}`) with Celery instrumented by OpenTelemetry,
    /// inside a span of its own, and waits for the result; returns `{"id", "trace_id",
    /// "result"}` (see `tests/python/traced_send.py`). Needs [`CELERY_OTEL`].
    ///
    /// # Panics
    ///
    /// When the script fails, with its output.
    pub fn traced_send(&self, broker: &str, backend: &str, call: &Value) -> Value {
        let mut lines = self.run_script(broker, backend, &[], "traced_send.py", call);
        assert_eq!(lines.len(), 1, "one line from traced_send.py: {lines:?}");
        lines.remove(0)
    }

    /// Runs `script` from `tests/python` with `input` on its stdin; one JSON value per line of
    /// its output.
    fn run_script(
        &self,
        broker: &str,
        backend: &str,
        env: &[(&str, &str)],
        script: &str,
        input: &Value,
    ) -> Vec<Value> {
        let mut child = self
            .command(broker, backend)
            .envs(env.iter().copied())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("cannot write to {script}: {e}"));
        let out = child.wait_with_output().expect("the script did not finish");
        assert!(
            out.status.success(),
            "{script} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad {script} line {l:?}: {e}"))
            })
            .collect()
    }

    /// Starts `celery worker` (prefork pool, 2 processes, so time limits apply) on `queues`,
    /// logging to `log`, and waits until it
    /// is ready.
    ///
    /// # Panics
    ///
    /// When the worker does not get ready within 30 s, with its log.
    pub fn start_worker(
        &self,
        broker: &str,
        backend: &str,
        queues: &[&str],
        log: &Path,
    ) -> ChildGuard {
        self.start_worker_with(broker, backend, queues, log, &[])
    }

    /// [`start_worker`](Self::start_worker) with extra environment variables for the app in
    /// `tests/python/celery_app.py` (e.g. `VISIBILITY_TIMEOUT`).
    ///
    /// # Panics
    ///
    /// As [`start_worker`](Self::start_worker).
    pub fn start_worker_with(
        &self,
        broker: &str,
        backend: &str,
        queues: &[&str],
        log: &Path,
        envs: &[(&str, &str)],
    ) -> ChildGuard {
        self.spawn_worker(broker, backend, queues, log, &["--without-mingle"], envs)
    }

    /// Like [`start_worker`](Self::start_worker), with Celery's mingle on: at start-up the
    /// worker asks the nodes already running for their revoked ids (the `hello` command).
    ///
    /// # Panics
    ///
    /// As [`start_worker`](Self::start_worker).
    pub fn start_mingling_worker(
        &self,
        broker: &str,
        backend: &str,
        queues: &[&str],
        log: &Path,
    ) -> ChildGuard {
        self.spawn_worker(broker, backend, queues, log, &[], &[])
    }

    fn spawn_worker(
        &self,
        broker: &str,
        backend: &str,
        queues: &[&str],
        log: &Path,
        mingle: &[&str],
        envs: &[(&str, &str)],
    ) -> ChildGuard {
        let log_file = File::create(log).expect("cannot create the worker log");
        let worker = ChildGuard::spawn(
            self.command(broker, backend)
                .envs(envs.iter().copied())
                .args([
                    "-m",
                    "celery",
                    "-A",
                    "celery_app",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    "2",
                    "-l",
                    "INFO",
                ])
                .args(mingle)
                .args(["--without-gossip", "-n", "py@%h", "-Q"])
                .arg(queues.join(","))
                .stdout(log_file.try_clone().expect("log handle"))
                .stderr(log_file),
        );
        wait_until(
            Duration::from_secs(30),
            "the Python celery worker to be ready",
            || fs::read_to_string(log).is_ok_and(|text| text.contains(" ready.")),
        );
        worker
    }
}

/// `tests/python`: the Celery app and the driver script.
pub fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// `<target dir>/taskq-interop`, beside the test binaries' profile directory.
fn interop_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("taskq-interop")
}

fn create_venv(dir: &Path, requirements: &[&str]) {
    let _ = fs::remove_dir_all(dir);
    let venv = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .output();
    match venv {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 -m venv failed: {}\ninstall Python's venv module (e.g. `apt-get install -y python3-venv`)",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 not found ({e}): the interop tests need Python 3 with venv and pip"),
    }
    let out = Command::new(dir.join("bin").join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirements)
        .output()
        .expect("cannot run pip");
    assert!(
        out.status.success(),
        "pip install {requirements:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
