//! [`RedisServer`]: a `redis-server` of the test's own, on a free loopback port.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tls::{redis_client, Certs};
use crate::{file_tail, free_port};

/// How long [`RedisServer::start`] waits for a fresh server to answer.
pub const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many fresh ports [`RedisServer::start_with`] tries when
/// `redis-server` cannot bind the one it was given (another process took it
/// between [`free_port`] and the server's own `bind`).
const START_ATTEMPTS: usize = 5;

const NOT_ON_PATH: &str = "redis-server not found on PATH: install it (e.g. `apt-get install -y \
     redis-server`); the tests start their own servers on free loopback ports";

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
///
/// Started with [`start_tls`](Self::start_tls), it speaks TLS only.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    extra_args: Vec<String>,
    /// The certificates of a TLS-only server.
    tls: Option<Certs>,
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
        Self::start_server(args, None)
    }

    /// Like [`start_with`](Self::start_with), a server that speaks TLS only, with `certs`:
    /// its port is a TLS port (`--port 0 --tls-port PORT`, see [`Certs::server_args`]), its
    /// replication is TLS, and it asks clients for no certificate. Its
    /// [`url`](Self::url) is `rediss://…?ssl_ca_certs=<ca.pem>`, and
    /// [`client`](Self::client) trusts the CA.
    ///
    /// # Panics
    ///
    /// As [`start_with`](Self::start_with).
    pub fn start_tls(certs: &Certs, args: &[&str]) -> RedisServer {
        Self::start_server(args, Some(certs.clone()))
    }

    fn start_server(args: &[&str], tls: Option<Certs>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("taskq-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        let mut server = RedisServer {
            port: 0,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            tls,
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

    /// The TCP port the server listens on (on `127.0.0.1`); its TLS port for a TLS server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of database 0: `redis://127.0.0.1:PORT/0`, or for a TLS server
    /// `rediss://127.0.0.1:PORT/0?ssl_ca_certs=<ca.pem>` (taskq's form, which
    /// [`redis_cmd`] also reads).
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// The connection URL of database `db`, as [`url`](Self::url).
    pub fn url_db(&self, db: u8) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}/{db}", self.port),
            Some(certs) => format!("rediss://127.0.0.1:{}/{db}?{}", self.port, certs.ca_param()),
        }
    }

    /// The certificates of a server started with [`start_tls`](Self::start_tls).
    pub fn certs(&self) -> Option<&Certs> {
        self.tls.as_ref()
    }

    /// A client for database 0 (opening it makes no connection yet); over TLS, trusting the
    /// test CA, for a TLS server.
    pub fn client(&self) -> redis::Client {
        redis_client(&self.url())
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
        let port = match &self.tls {
            None => vec!["--port".to_owned(), self.port.to_string()],
            Some(certs) => certs.server_args(self.port),
        };
        let mut cmd = Command::new("redis-server");
        cmd.args(&port)
            .args(["--bind", "127.0.0.1", "--save", ""])
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
            if answers_as(&self.client(), child.id()) {
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

/// Whether the Redis `client` connects to answers PING and is the process
/// `pid` (so that a server someone else started on the same port is never
/// mistaken for ours).
fn answers_as(client: &redis::Client, pid: u32) -> bool {
    let probe = || -> redis::RedisResult<bool> {
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
/// A `rediss://` URL may name its CA with `?ssl_ca_certs=` (see [`redis_client`]).
///
/// # Panics
///
/// If `args` is empty, the server cannot be reached, or it answers with an
/// error; the message names the command.
pub fn redis_cmd(url: &str, args: &[&str]) -> redis::Value {
    let (name, rest) = args
        .split_first()
        .expect("redis_cmd needs at least the command name");
    let mut con = redis_client(url)
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    cmd.query(&mut con)
        .unwrap_or_else(|e| panic!("redis command {args:?} on {url} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

    use super::*;
    use crate::port_is_open;

    /// The port of a system Redis, which no test may be given.
    const SYSTEM_REDIS_PORT: u16 = 6379;

    fn loopback(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
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
        assert!(answers_as(&other.client(), other.pid().unwrap()));
        assert!(!answers_as(&other.client(), other.pid().unwrap() + 1));
    }

    #[test]
    fn a_tls_server_speaks_tls_only() {
        let certs = Certs::generate();
        let mut server = RedisServer::start_tls(&certs, &[]);
        assert_eq!(
            server.url(),
            format!(
                "rediss://127.0.0.1:{}/0?ssl_ca_certs={}",
                server.port(),
                certs.ca.display()
            )
        );
        let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
        assert_eq!(pong, "PONG");
        redis_cmd(&server.url(), &["SET", "k", "v"]);

        // A plain connection to the TLS port gets no answer, and the CA is needed.
        let plain = crate::tls::plain_ping(server.port());
        assert!(plain.is_err(), "{plain:?}");
        let untrusted = redis::Client::open(format!("rediss://127.0.0.1:{}/0", server.port()))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2));
        assert!(untrusted.is_err());

        server.restart();
        assert_eq!(
            redis_cmd(&server.url_db(1), &["DBSIZE"]),
            redis::Value::Int(0)
        );
    }

    #[test]
    fn drop_removes_the_temp_dir() {
        let server = RedisServer::start();
        let dir = server.dir().to_path_buf();
        assert!(server.log_path().is_file());
        drop(server);
        assert!(!dir.exists());
    }
}
