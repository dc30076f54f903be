//! A Redis Sentinel set owned by one test: a master, its replicas and three sentinels, all
//! `redis-server` processes on free loopback ports, monitoring the master as [`MASTER_NAME`]
//! with short timeouts (down after 1 s), so that a failover takes a few seconds.
//!
//! [`SentinelSet::start_tls`] starts the master and replicas TLS-only, as kombu's layout has
//! it: the sentinels answer clients in plain TCP and name the masters' TLS ports, and they
//! talk TLS to the servers they monitor and to each other.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tls::{redis_client, Certs};
use crate::{free_port, wait_until, ChildGuard, RedisServer};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "taskq-master";

/// How long the sentinels wait before they call a silent master down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// One `redis-server --sentinel` process.
#[derive(Debug)]
pub struct SentinelProcess {
    port: u16,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl SentinelProcess {
    /// A sentinel monitoring the master on `master_port`; with `tls`, a master that speaks
    /// TLS only.
    fn start(master_port: u16, tls: Option<&Certs>) -> SentinelProcess {
        let dir = tempfile::Builder::new()
            .prefix("taskq-sentinel-")
            .tempdir()
            .expect("a sentinel directory");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        // With tls-replication a sentinel connects to the monitored servers and to the other
        // sentinels over TLS, and tells the others its TLS port; clients keep the plain one.
        let tls = tls.map_or_else(String::new, |certs| {
            format!("tls-port {}\n{}", free_port(), certs.config_lines())
        });
        fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n{tls}\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} 4000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("writing sentinel.conf");
        let log = fs::File::create(dir.path().join("sentinel.log")).expect("the sentinel log");
        let child = ChildGuard::spawn(
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log),
        );
        crate::wait_for_port(port, Duration::from_secs(10));
        SentinelProcess {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn query(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }

    /// The master's port as this sentinel sees it.
    pub fn master_port(&self) -> Option<u16> {
        let reply = self
            .query(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
            .ok()?;
        let (_, port): (String, u16) = redis::from_redis_value(reply).ok()?;
        Some(port)
    }

    fn count(&self, what: &str) -> usize {
        self.query(&["SENTINEL", what, MASTER_NAME])
            .ok()
            .and_then(|v| redis::from_redis_value::<Vec<redis::Value>>(v).ok())
            .map_or(0, |list| list.len())
    }
}

/// A master, its replicas and three sentinels.
#[derive(Debug)]
pub struct SentinelSet {
    /// Every data server, the first started as the master (which it may no longer be).
    pub servers: Vec<RedisServer>,
    /// The sentinels.
    pub sentinels: Vec<SentinelProcess>,
}

impl SentinelSet {
    /// Starts a master with `replicas` replicas and three sentinels, and waits until the
    /// replicas are in sync and every sentinel knows them and the other sentinels.
    ///
    /// # Panics
    ///
    /// When the set does not come together within 30 s.
    pub fn start(replicas: usize) -> SentinelSet {
        Self::start_servers(replicas, None)
    }

    /// Like [`start`](Self::start), with a master and replicas that speak TLS only
    /// ([`RedisServer::start_tls`], replicating over TLS). The sentinels listen for clients
    /// in plain TCP (and on a TLS port for each other) and reach the servers over TLS;
    /// [`url`](Self::url) carries `ssl_ca_certs`, so taskq's connections to the master are
    /// TLS.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_tls(replicas: usize, certs: &Certs) -> SentinelSet {
        Self::start_servers(replicas, Some(certs))
    }

    fn start_servers(replicas: usize, tls: Option<&Certs>) -> SentinelSet {
        let start = |args: &[&str]| match tls {
            None => RedisServer::start_with(args),
            Some(certs) => RedisServer::start_tls(certs, args),
        };
        let master = start(&[]);
        let master_port = master.port().to_string();
        let mut servers = vec![master];
        for _ in 0..replicas {
            servers.push(start(&["--replicaof", "127.0.0.1", &master_port]));
        }
        for replica in &servers[1..] {
            let url = replica.url();
            wait_until(Duration::from_secs(30), "a replica to sync", || {
                info_replication(&url).contains("master_link_status:up")
            });
        }
        let sentinels: Vec<_> = (0..3)
            .map(|_| SentinelProcess::start(servers[0].port(), tls))
            .collect();
        wait_until(
            Duration::from_secs(30),
            "the sentinels to know the replicas and each other",
            || {
                sentinels
                    .iter()
                    .all(|s| s.count("replicas") == replicas && s.count("sentinels") == 2)
            },
        );
        SentinelSet { servers, sentinels }
    }

    /// Celery's Sentinel URL for this set: every sentinel, and the master's name; for a TLS
    /// set also `ssl_ca_certs=<ca.pem>`, which makes taskq's connections to the master TLS.
    pub fn url(&self, db: u8) -> String {
        let parts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("sentinel://127.0.0.1:{}/{db}", s.port()))
            .collect();
        let tls = self.servers[0]
            .certs()
            .map_or_else(String::new, |certs| format!("&{}", certs.ca_param()));
        format!("{}?master_name={MASTER_NAME}{tls}", parts.join(";"))
    }

    /// The data server the sentinels call master now.
    pub fn master(&mut self) -> &mut RedisServer {
        let port = self
            .sentinels
            .iter()
            .find_map(SentinelProcess::master_port)
            .expect("a sentinel names the master");
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("the master is one of the set's servers")
    }

    /// Kills the master (SIGKILL); returns its port once the process is gone.
    pub fn kill_master(&mut self) -> u16 {
        let master = self.master();
        let port = master.port();
        master.stop();
        port
    }

    /// Waits until the sentinels name a master other than the one on port `old`.
    ///
    /// # Panics
    ///
    /// When none does within 30 s.
    pub fn wait_for_failover(&self, old: u16) {
        wait_until(Duration::from_secs(30), "a failover", || {
            self.sentinels
                .iter()
                .filter_map(SentinelProcess::master_port)
                .any(|port| port != old)
        });
    }

    /// Waits until every replica of the master has what the master has (`WAIT`).
    pub fn wait_for_replicas(&mut self) {
        let replicas = (self.servers.len() - 1).to_string();
        let url = self.master().url();
        let acked: i64 =
            redis::from_redis_value(crate::redis_cmd(&url, &["WAIT", &replicas, "5000"]))
                .expect("WAIT answers a count");
        assert_eq!(acked.to_string(), replicas, "the replicas did not catch up");
    }
}

fn info_replication(url: &str) -> String {
    redis_client(url)
        .get_connection_with_timeout(Duration::from_secs(2))
        .and_then(|mut c| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut c)
        })
        .unwrap_or_default()
}
