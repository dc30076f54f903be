//! A private `redis-server` for one benchmark run: on a free loopback port (never 6379),
//! persistence off, its files in a directory of its own, killed when dropped.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The port of a system Redis, which the benchmark must never touch.
const SYSTEM_REDIS_PORT: u16 = 6379;

/// A running `redis-server` owned by the benchmark.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `binary` on a free port with its files under `work_dir`, and waits until it
    /// answers PING.
    pub fn start(binary: &str, work_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(binary, work_dir, &[])
    }

    /// Like [`start`](Self::start), with more command-line options (a cluster node's).
    pub fn start_with(binary: &str, work_dir: &Path, options: &[String]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = work_dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {dir:?}"))?;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log"])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {binary}: is redis-server installed?"))?;
        let server = Self { child, port, dir };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, for attaching a profiler.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url(0))?;
        let deadline = Instant::now() + timeout;
        loop {
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server on port {} did not answer within {timeout:?}; see {:?}",
                    self.port,
                    self.dir.join("redis.log")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago (the OS picks it), never 6379.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        if port != SYSTEM_REDIS_PORT {
            return Ok(port);
        }
    }
    bail!("no free loopback port")
}
