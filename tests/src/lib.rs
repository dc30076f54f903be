//! Support code for taskq's integration tests (`tests/tests/*.rs`).
//!
//! The ground rule: **every test starts its own `redis-server`** on a free
//! loopback port, with its data directory in a fresh temporary directory, and
//! that server is killed when the test ends (when its [`RedisServer`] is
//! dropped). Tests never talk to a Redis they did not start, in particular
//! never to a system Redis on port 6379, and all traffic stays on
//! `127.0.0.1`.
//!
//! ```no_run
//! use taskq_tests::RedisServer;
//!
//! let server = RedisServer::start();
//! let mut con = server.connection();
//! let pong: String = redis::cmd("PING").query(&mut con).unwrap();
//! assert_eq!(pong, "PONG");
//! // `server` is killed (SIGKILL) and its temp dir removed when dropped.
//! ```
//!
//! Besides [`RedisServer`] the crate offers [`ChildGuard`] (kill a spawned
//! process on drop), [`free_port`], [`example_binary`] (the path of a compiled
//! example of the `taskq-examples` package), and small waiting helpers
//! ([`wait_until`], [`wait_for_port`]). Module [`worker`] runs a taskq client and
//! worker inside the test process against a [`RedisServer`]
//! ([`worker::client`], [`worker::RunningWorker`]) and checks what they leave in
//! Redis ([`worker::query`], [`worker::assert_nothing_unacked`], …).

#![warn(missing_docs)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long [`RedisServer::start`] waits for a fresh server to answer.
pub const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many fresh ports [`RedisServer::start_with`] tries when
/// `redis-server` cannot bind the one it was given (another process took it
/// between [`free_port`] and the server's own `bind`).
const START_ATTEMPTS: usize = 5;

/// The port of a system Redis; never handed out by [`free_port`].
const SYSTEM_REDIS_PORT: u16 = 6379;

const NOT_ON_PATH: &str = "redis-server not found on PATH: install it (e.g. `apt-get install -y \
     redis-server`); the tests start their own servers on free loopback ports";

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// Ports already handed out by [`free_port`] in this process, so that two
/// tests running in parallel threads never get the same one.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a TCP port on `127.0.0.1` that was free a moment ago.
///
/// The OS picks it (bind `127.0.0.1:0`, read the port, close the socket).
/// Within one test process a port is never returned twice, so parallel test
/// threads don't collide with each other; another process may still grab the
/// port before the caller binds it, so callers should be ready to retry
/// ([`RedisServer::start`] does). Port 6379 is never returned.
///
/// # Panics
///
/// If no loopback port can be bound.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a free port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the local address of a listener: {e}"))
            .port();
        drop(listener);
        if port == SYSTEM_REDIS_PORT {
            continue;
        }
        let mut ports = handed_out().lock().unwrap_or_else(|p| p.into_inner());
        if ports.insert(port) {
            return port;
        }
    }
    panic!("could not find a free loopback port that was not handed out before");
}

/// The socket address `127.0.0.1:port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections on `127.0.0.1:port` right now.
pub fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

/// Waits until something listens on `127.0.0.1:port`.
///
/// # Panics
///
/// After `timeout`, naming `port` in the message.
pub fn wait_for_port(port: u16, timeout: Duration) {
    wait_until(
        timeout,
        &format!("something listening on 127.0.0.1:{port}"),
        || port_is_open(port),
    );
}

/// Polls `condition` every 20 ms until it returns `true`.
///
/// # Panics
///
/// If `condition` is still `false` after `timeout`; the message says
/// "timed out after … waiting for {what}".
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Log files
// ---------------------------------------------------------------------------

/// The last `lines` lines of the file at `path` (at most its last 64 KiB),
/// or a note saying why it could not be read.
pub fn file_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

/// A `redis-server` process owned by one test.
///
/// It listens on `127.0.0.1` on a free port, keeps nothing on disk
/// (`--save "" --appendonly no`), runs with its working directory in a fresh
/// temporary directory, and writes its output to a log file there
/// ([`log_path`](Self::log_path)). Dropping it kills the process (SIGKILL),
/// waits for it, and removes the directory.
///
/// Safe to use from many test threads at once: every instance has its own
/// port, process and directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    extra_args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

/// Why one attempt at starting `redis-server` failed in a retryable way.
enum StartError {
    /// The server could not bind its port.
    AddrInUse,
}

impl RedisServer {
    /// Starts a server with the default configuration and waits until it
    /// answers.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH`, if it exits before answering, or
    /// if it doesn't answer within 10 s; the message includes the tail of
    /// its log.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra command-line configuration
    /// appended after the defaults, e.g.
    /// `&["--maxmemory", "10mb", "--maxmemory-policy", "noeviction"]`.
    ///
    /// The extra arguments are kept and used again by
    /// [`restart`](Self::restart).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start); also if no free port could be bound after
    /// a few attempts.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("taskq-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        let mut server = RedisServer {
            port: 0,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            dir,
            child: None,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(child) => {
                    server.child = Some(child);
                    return server;
                }
                Err(StartError::AddrInUse) => continue,
            }
        }
        panic!(
            "redis-server could not bind a free loopback port in {START_ATTEMPTS} attempts; last log:\n{}",
            server.log_tail(20)
        );
    }

    /// The TCP port the server listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of database 0: `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// The connection URL of database `db`: `redis://127.0.0.1:PORT/DB`.
    pub fn url_db(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// A client for database 0 (opening it makes no connection yet).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("invalid redis URL {}: {e}", self.url()))
    }

    /// A new synchronous connection to database 0.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached (e.g. after [`stop`](Self::stop)).
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to the test redis at {}: {e}", self.url()))
    }

    /// The process id of the running server, or `None` after
    /// [`stop`](Self::stop).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still alive (it may have been stopped,
    /// or have died on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's temporary working directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file that receives the server's stdout and stderr. It is started
    /// afresh by every start or restart.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path(), lines)
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Clients see their
    /// connections reset and new connections refused. Doing it twice is
    /// harmless.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it is running and starts a new one on the same
    /// port, with the same configuration, and waits until it answers. The
    /// new server starts empty (nothing is persisted).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start); also if the port stays taken by another
    /// process for 10 s.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(StartError::AddrInUse) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::AddrInUse) => panic!(
                    "redis-server could not be restarted: port {} stayed in use for {:?}; log:\n{}",
                    self.port,
                    REDIS_START_TIMEOUT,
                    self.log_tail(20)
                ),
            }
        }
    }

    /// Spawns `redis-server` on `self.port` and waits until it answers.
    fn spawn_and_wait(&self) -> Result<Child, StartError> {
        let log_path = self.log_path();
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the handle of {}: {e}", log_path.display()));
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "yes"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_ON_PATH}"),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };

        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let tail = self.log_tail(20);
                    if tail.contains("Address already in use") {
                        return Err(StartError::AddrInUse);
                    }
                    panic!(
                        "redis-server on port {} exited before answering ({status}); log {}:\n{tail}",
                        self.port,
                        log_path.display()
                    );
                }
                Ok(None) => {}
                Err(e) => panic!("cannot poll the redis-server process: {e}"),
            }
            if answers_as(self.port, child.id()) {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING within {:?}; log {}:\n{}",
                    self.port,
                    REDIS_START_TIMEOUT,
                    log_path.display(),
                    self.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether the Redis on `127.0.0.1:port` answers PING and is the process
/// `pid` (so that a server someone else started on the same port is never
/// mistaken for ours).
fn answers_as(port: u16, pid: u32) -> bool {
    let probe = || -> redis::RedisResult<bool> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?;
        let mut con = client.get_connection_with_timeout(Duration::from_millis(500))?;
        con.set_read_timeout(Some(Duration::from_millis(500)))?;
        con.set_write_timeout(Some(Duration::from_millis(500)))?;
        let pong: String = redis::cmd("PING").query(&mut con)?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut con)?;
        let ours = info
            .lines()
            .any(|line| line.trim() == format!("process_id:{pid}"));
        Ok(pong == "PONG" && ours)
    };
    probe().unwrap_or(false)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one command on the Redis at `url` over a new synchronous connection
/// and returns its reply, e.g. `redis_cmd(&server.url(), &["LLEN", "celery"])`.
///
/// # Panics
///
/// If `args` is empty, the server cannot be reached, or it answers with an
/// error; the message names the command.
pub fn redis_cmd(url: &str, args: &[&str]) -> redis::Value {
    let (name, rest) = args
        .split_first()
        .expect("redis_cmd needs at least the command name");
    let client =
        redis::Client::open(url).unwrap_or_else(|e| panic!("invalid redis URL {url}: {e}"));
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    cmd.query(&mut con)
        .unwrap_or_else(|e| panic!("redis command {args:?} on {url} failed: {e}"))
}

// ---------------------------------------------------------------------------
// ChildGuard
// ---------------------------------------------------------------------------

/// Owns a spawned child process and kills it (SIGKILL) and waits for it when
/// dropped, so a failing test leaves no stray worker or server behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards an already spawned child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Spawns `cmd` and guards the child.
    ///
    /// # Panics
    ///
    /// If the process cannot be spawned; the message names the program.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        match cmd.spawn() {
            Ok(child) => ChildGuard::new(child),
            Err(e) => panic!("cannot spawn {:?}: {e}", cmd.get_program()),
        }
    }

    fn inner(&self) -> &Child {
        self.child
            .as_ref()
            .expect("the child was taken out of its guard")
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner().id()
    }

    /// The child itself, e.g. to take its `stdout` pipe.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child was taken out of its guard")
    }

    /// The exit status if the child has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child_mut()
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot poll child process: {e}"))
    }

    /// Waits up to `timeout` for the child to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the signal named `signal` ("TERM", "INT", "QUIT", "KILL", …) to
    /// the child, through the shell's `kill` builtin.
    ///
    /// # Panics
    ///
    /// If `kill` fails (e.g. an unknown signal name, or a process that has
    /// already been reaped).
    pub fn signal(&self, signal: &str) {
        let pid = self.id().to_string();
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal, &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run sh to send SIG{signal}: {e}"));
        assert!(status.success(), "kill -s {signal} {pid} failed: {status}");
    }

    /// Sends SIGTERM (ask for a graceful shutdown).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT (as Ctrl-C would).
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Kills the child (SIGKILL) and waits for it. Harmless if it has
    /// already exited.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the child out of the guard; it is no longer killed on drop.
    pub fn into_inner(mut self) -> Child {
        self.child
            .take()
            .expect("the child was taken out of its guard")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Example binaries
// ---------------------------------------------------------------------------

/// The path of the compiled example `name` (e.g. `"worker"`) of the
/// `taskq-examples` package: `<target>/<profile>/examples/<name>`, found from
/// the running test binary (`<target>/<profile>/deps/<test>`).
///
/// `cargo test --workspace` builds the examples before running the tests.
///
/// # Panics
///
/// If the binary does not exist, saying how to build it.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the running test binary: {e}"));
    let mut dir = exe
        .parent()
        .unwrap_or_else(|| panic!("test binary {} has no parent dir", exe.display()))
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "example binary {} not found: run `cargo test --workspace` (which builds the \
             examples) or `cargo build -p taskq-examples --examples` first",
            path.display()
        );
    }
    path
}

/// Starts the compiled `worker` example against `server`, in `dir` (where its
/// `notification.log` lands), with `envs` set, appending its output to `dir/<log>`.
pub fn spawn_example_worker(
    server: &RedisServer,
    dir: &Path,
    log: &str,
    envs: &[(&str, &str)],
) -> ChildGuard {
    ChildGuard::spawn(&mut example_command("worker", server, dir, log, envs))
}

/// A command that runs the compiled example `name` against `server` (broker and results), in
/// `dir`, with `envs` set and its output appended to `dir/<log>`.
pub fn example_command(
    name: &str,
    server: &RedisServer,
    dir: &Path,
    log: &str,
    envs: &[(&str, &str)],
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .expect("cannot open the example's log");
    let mut cmd = Command::new(example_binary(name));
    cmd.current_dir(dir)
        .env("TASKQ_BROKER_URL", server.url())
        .env("TASKQ_RESULT_BACKEND", server.url())
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    cmd
}

// ---------------------------------------------------------------------------
// In-process clients and workers
// ---------------------------------------------------------------------------

pub mod python;

pub mod worker {
    //! A taskq [`Client`] and [`Worker`] running inside the test process, against a
    //! [`RedisServer`], and the checks the worker tests make on what they leave in Redis.
    //!
    //! ```no_run
    //! use std::time::Duration;
    //! use taskq_tests::worker::{self, RunningWorker};
    //! use taskq_tests::RedisServer;
    //!
    //! # async fn demo() {
    //! let server = RedisServer::start();
    //! // Broker in db 0, results in db 1; change anything else in the closure.
    //! let client = worker::client(&server, |config| config.concurrency = 2);
    //! // banner off, consuming `celery`; the closure adds this test's settings.
    //! let running = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_secs(1)));
    //!
    //! // ... send tasks with `client` ...
    //! let url = server.url();
    //! worker::eventually(Duration::from_secs(10), "the queue to drain", || async {
    //!     worker::query::<i64>(&url, &["LLEN", "celery"]) == 0
    //! })
    //! .await;
    //!
    //! running.stop().await; // shuts down, and checks it exits with Ok within 10 s
    //! worker::assert_nothing_unacked(&server);
    //! # }
    //! ```
    //!
    //! [`RunningWorker::start`] spawns onto the current Tokio runtime, so the tests that use it
    //! are `#[tokio::test(flavor = "multi_thread")]` tests.

    use std::future::Future;
    use std::time::{Duration, Instant};

    use taskq::{Client, Config, ShutdownHandle, Worker, WorkerBuilder};
    use tokio::task::JoinHandle;

    use crate::{redis_cmd, wait_until, RedisServer};

    /// How long [`RunningWorker::stop`] waits for the worker to exit after asking it to.
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

    /// A client on `server`: `broker_url` = [`server.url()`](RedisServer::url) (db 0),
    /// `result_backend` = [`server.url_db(1)`](RedisServer::url_db), `concurrency` = 1,
    /// `queues` = `["celery"]`, everything else [`Config::default`]. `configure` then changes
    /// what the test needs (`|_| {}` for nothing).
    ///
    /// A worker built on the client ([`RunningWorker::start`]) takes its defaults from this
    /// configuration (concurrency, queues, prefetch, grace, STARTED tracking).
    ///
    /// # Panics
    ///
    /// If `taskq` rejects the resulting configuration.
    pub fn client(server: &RedisServer, configure: impl FnOnce(&mut Config)) -> Client {
        let mut config = Config::default();
        config.broker_url = server.url();
        config.result_backend = server.url_db(1);
        config.concurrency = 1;
        config.queues = vec!["celery".to_owned()];
        configure(&mut config);
        Client::from_config(config).expect("client config is valid")
    }

    /// A [`Worker`] running as a Tokio task of the test, until [`stop`](Self::stop).
    ///
    /// Dropping it without `stop` leaves the worker running until the test's runtime ends.
    #[derive(Debug)]
    pub struct RunningWorker {
        stop: ShutdownHandle,
        handle: JoinHandle<taskq::Result<()>>,
    }

    impl RunningWorker {
        /// Builds a worker on (a clone of) `client` and spawns it. The builder starts from the
        /// client's configuration with the banner off and the queues `["celery"]`; `configure`
        /// adds the test's settings (`|b| b` for none), e.g.
        /// `|b| b.concurrency(2).queues(["reports"]).shutdown_grace(Duration::from_secs(1))`
        /// (a non-empty `queues` replaces `celery`).
        ///
        /// # Panics
        ///
        /// Outside a Tokio runtime.
        pub fn start(
            client: &Client,
            configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
        ) -> RunningWorker {
            let builder = Worker::builder(client.clone())
                .banner(false)
                .queues(["celery"]);
            let worker = configure(builder).build();
            let stop = worker.shutdown_handle();
            let handle = tokio::spawn(worker.run_until(std::future::pending()));
            RunningWorker { stop, handle }
        }

        /// A handle that asks the worker to shut down, without waiting for it.
        pub fn shutdown_handle(&self) -> ShutdownHandle {
            self.stop.clone()
        }

        /// Whether the worker is still running (it has neither returned nor panicked).
        pub fn is_alive(&self) -> bool {
            !self.handle.is_finished()
        }

        /// Asks the worker to shut down gracefully, waits for it, and returns how long it took
        /// from the request to the worker's exit.
        ///
        /// # Panics
        ///
        /// If the worker does not exit within [`STOP_TIMEOUT`] (10 s), if its task panicked,
        /// or if it returned an error.
        pub async fn stop(self) -> Duration {
            let asked = Instant::now();
            self.stop.shutdown();
            tokio::time::timeout(STOP_TIMEOUT, self.handle)
                .await
                .expect("the worker stops within 10 s of shutdown")
                .expect("the worker task does not panic")
                .expect("the worker returns Ok");
            asked.elapsed()
        }
    }

    /// Polls the async `condition` every 20 ms until it returns `true`: the async counterpart
    /// of [`wait_until`], which sleeps on the Tokio timer instead of blocking the thread.
    ///
    /// # Panics
    ///
    /// If `condition` is still `false` after `timeout`; the message says
    /// "timed out after … waiting for {what}".
    pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if condition().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`redis_cmd`], with the reply converted to `T`, e.g.
    /// `query::<i64>(&server.url(), &["LLEN", "celery"])`.
    ///
    /// # Panics
    ///
    /// As [`redis_cmd`]; also if the reply does not convert to `T`.
    pub fn query<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
        redis::from_redis_value(redis_cmd(url, args))
            .unwrap_or_else(|e| panic!("unexpected reply to {args:?}: {e}"))
    }

    /// Counts runs per key: a test task calls it with a key unique to its test, so tests
    /// running at once in one process do not share counts. Returns the run's number, from 1.
    pub fn count_run(key: &str) -> u32 {
        static RUNS: std::sync::Mutex<Option<std::collections::HashMap<String, u32>>> =
            std::sync::Mutex::new(None);
        let mut runs = RUNS.lock().expect("runs lock");
        let n = runs
            .get_or_insert_with(Default::default)
            .entry(key.to_owned())
            .or_insert(0);
        *n += 1;
        *n
    }

    /// Sends the example app's `tasks.send_push_notification` for `token`.
    ///
    /// # Panics
    ///
    /// If the broker refuses it.
    pub async fn send_push(client: &Client, token: &str) -> taskq::AsyncResult<serde_json::Value> {
        send_push_with(client, token, taskq::Options::new()).await
    }

    /// [`send_push`] with per-call options (a countdown, a queue...).
    ///
    /// # Panics
    ///
    /// If the broker refuses the message.
    pub async fn send_push_with(
        client: &Client,
        token: &str,
        options: taskq::Options,
    ) -> taskq::AsyncResult<serde_json::Value> {
        client
            .send_by_name(
                "tasks.send_push_notification",
                vec![serde_json::json!(token)],
                serde_json::Map::new(),
                options,
            )
            .await
            .expect("the broker accepts the task")
    }

    /// The execution ledger the example push task keeps in `dir/notification.log`: how many
    /// times each token's task completed.
    pub fn ledger_runs(dir: &std::path::Path) -> std::collections::HashMap<String, usize> {
        let ledger = std::fs::read_to_string(dir.join("notification.log")).unwrap_or_default();
        let mut runs = std::collections::HashMap::new();
        for line in ledger.lines() {
            let token = line.rsplit(' ').next().unwrap_or_default().to_owned();
            *runs.entry(token).or_insert(0) += 1;
        }
        runs
    }

    /// Waits until a worker has taken the only message sent: it is in `unacked` and the
    /// `celery` list is empty.
    pub fn wait_until_taken(server: &RedisServer, timeout: Duration) {
        let url = server.url();
        wait_until(timeout, "a worker to take the task", || {
            query::<i64>(&url, &["HLEN", "unacked"]) == 1
                && query::<i64>(&url, &["LLEN", "celery"]) == 0
        });
    }

    /// The key (and pub/sub channel) of task `id`'s result record:
    /// `celery-task-meta-{id}`.
    pub fn meta_key(id: &str) -> String {
        format!("celery-task-meta-{id}")
    }

    /// Asserts that nothing is left in kombu's `unacked` hash, its `unacked_index` or taskq's
    /// leases on `server`'s db 0.
    ///
    /// # Panics
    ///
    /// If either holds anything.
    pub fn assert_nothing_unacked(server: &RedisServer) {
        assert_eq!(query::<i64>(&server.url(), &["HLEN", "unacked"]), 0);
        assert_eq!(query::<i64>(&server.url(), &["ZCARD", "unacked_index"]), 0);
        assert_eq!(query::<i64>(&server.url(), &["ZCARD", "taskq.leases"]), 0);
    }

    /// Waits (blocking, with [`wait_until`]) until `unacked` is empty, then
    /// [`assert_nothing_unacked`].
    ///
    /// # Panics
    ///
    /// After `timeout`, or as [`assert_nothing_unacked`].
    pub fn wait_nothing_unacked(server: &RedisServer, timeout: Duration) {
        let url = server.url();
        wait_until(timeout, "unacked to be empty", || {
            query::<i64>(&url, &["HLEN", "unacked"]) == 0
        });
        assert_nothing_unacked(server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_and_unique() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len(), "free_port repeated a port");
        assert!(!ports.contains(&SYSTEM_REDIS_PORT));
        for port in ports.iter().take(5) {
            TcpListener::bind(loopback(*port)).expect("free port should be bindable");
        }
    }

    #[test]
    fn start_ping_stop_restart() {
        let mut server = RedisServer::start();
        assert_ne!(server.port(), SYSTEM_REDIS_PORT);
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/0", server.port())
        );
        assert_eq!(
            server.url_db(3),
            format!("redis://127.0.0.1:{}/3", server.port())
        );
        assert!(server.is_running());
        let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
        assert_eq!(pong, "PONG");

        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(
            redis_cmd(&server.url(), &["GET", "k"]),
            redis::Value::BulkString(b"v".to_vec())
        );

        let first_pid = server.pid().unwrap();
        server.stop();
        assert!(!server.is_running());
        assert_eq!(server.pid(), None);
        assert!(!port_is_open(server.port()));
        server.stop(); // twice is fine

        let port = server.port();
        server.restart();
        assert_eq!(server.port(), port);
        assert_ne!(server.pid(), Some(first_pid));
        // Nothing is persisted across a restart.
        assert_eq!(redis_cmd(&server.url(), &["GET", "k"]), redis::Value::Nil);
    }

    #[test]
    fn start_with_extra_args() {
        let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(reply, ["maxmemory-policy", "noeviction"]);
        let save: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(save, ["save", ""]);
    }

    #[test]
    fn taken_port_is_reported_as_retryable() {
        // Something else holds the port: the spawn attempt must say so
        // (instead of panicking, or mistaking the other listener for ours).
        let blocker = TcpListener::bind(loopback(0)).unwrap();
        let mut server = RedisServer::start();
        server.stop();
        server.port = blocker.local_addr().unwrap().port();
        assert!(matches!(
            server.spawn_and_wait(),
            Err(StartError::AddrInUse)
        ));
    }

    #[test]
    fn another_redis_on_the_port_is_not_mistaken_for_ours() {
        let other = RedisServer::start();
        assert!(answers_as(other.port(), other.pid().unwrap()));
        assert!(!answers_as(other.port(), other.pid().unwrap() + 1));
    }

    #[test]
    fn drop_removes_the_temp_dir() {
        let server = RedisServer::start();
        let dir = server.dir().to_path_buf();
        assert!(server.log_path().is_file());
        drop(server);
        assert!(!dir.exists());
    }

    #[test]
    fn child_guard_kills_on_drop() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("30"));
        let pid = guard.id();
        drop(guard);
        // A killed and reaped process no longer exists.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn child_guard_signal_and_wait() {
        let mut guard = ChildGuard::spawn(Command::new("sleep").arg("30"));
        assert!(guard.try_wait().is_none());
        guard.terminate();
        let status = guard
            .wait_timeout(Duration::from_secs(5))
            .expect("sleep should exit on SIGTERM");
        assert!(!status.success());
    }

    #[test]
    #[should_panic(
        expected = "not found: run `cargo test --workspace` (which builds the examples)"
    )]
    fn example_binary_explains_how_to_build_a_missing_one() {
        example_binary("no-such-example");
    }

    #[test]
    fn example_binary_looks_beside_deps() {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let message = std::panic::catch_unwind(|| example_binary("no-such-example"))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        let expected = profile_dir.join("examples").join("no-such-example");
        assert!(
            message.contains(&expected.display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn wait_until_returns_when_true() {
        let mut n = 0;
        wait_until(Duration::from_secs(1), "n to reach 3", || {
            n += 1;
            n >= 3
        });
        assert_eq!(n, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after")]
    fn wait_until_panics_on_timeout() {
        wait_until(Duration::from_millis(50), "never", || false);
    }

    #[tokio::test]
    async fn eventually_returns_when_true() {
        let mut n = 0;
        worker::eventually(Duration::from_secs(1), "n to reach 3", || {
            n += 1;
            let done = n >= 3;
            async move { done }
        })
        .await;
        assert_eq!(n, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for never")]
    async fn eventually_panics_on_timeout() {
        worker::eventually(Duration::from_millis(50), "never", || async { false }).await;
    }

    #[test]
    fn query_converts_and_meta_key_is_celerys() {
        let server = RedisServer::start();
        let pushed: i64 = worker::query(&server.url(), &["RPUSH", "celery", "a", "b"]);
        assert_eq!(pushed, 2);
        let items: Vec<String> = worker::query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
        assert_eq!(items, ["a", "b"]);
        assert_eq!(worker::meta_key("abc"), "celery-task-meta-abc");
        worker::assert_nothing_unacked(&server);
    }
}
