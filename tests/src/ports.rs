//! Free loopback ports, and waiting for something to listen on one.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::wait_until;

/// The port of a system Redis; never handed out by [`free_port`].
const SYSTEM_REDIS_PORT: u16 = 6379;

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
/// ([`RedisServer::start`](crate::RedisServer::start) does). Port 6379 is never returned.
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
}
