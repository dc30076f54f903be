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
//! Redis ([`worker::query`], [`worker::assert_nothing_unacked`], …). Module [`taskq_cli`]
//! builds and runs the `taskq` command line against a [`RedisServer`]. Module [`cluster`]
//! starts a Redis Cluster of the test's own ([`cluster::RedisCluster`]); module [`failover`] holds
//! the producer and the loss count the failover tests share. Module [`tls`] makes a CA
//! and a server certificate for TLS tests ([`tls::Certs`]).

#![warn(missing_docs)]

pub mod browser;
mod child;
pub mod cluster;
mod examples;
pub mod failover;
pub mod keys;
mod logs;
pub mod netns;
mod ports;
pub mod python;
mod redis_server;
pub mod sentinel;
pub mod taskq_cli;
pub mod tls;
mod wait;
pub mod worker;

pub use child::ChildGuard;
pub use examples::{example_binary, example_command, spawn_example_worker};
pub use logs::{count_in_file, file_tail, wait_for_log};
pub use ports::{free_port, port_is_open, wait_for_port};
pub use redis_server::{redis_cmd, RedisServer, REDIS_START_TIMEOUT};
pub use wait::wait_until;
