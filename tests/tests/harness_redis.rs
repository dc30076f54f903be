//! Smoke tests of the harness itself: every test gets its own `redis-server`
//! on its own loopback port, and dropping the handle kills the process.

use std::path::Path;
use std::thread;
use std::time::Duration;

use taskq_tests::{port_is_open, RedisServer};

fn ping(server: &RedisServer) -> String {
    redis::cmd("PING")
        .query(&mut server.connection())
        .expect("PING should succeed")
}

#[test]
fn two_servers_start_in_parallel_on_different_ports() {
    let handles: Vec<_> = (0..2).map(|_| thread::spawn(RedisServer::start)).collect();
    let servers: Vec<RedisServer> = handles
        .into_iter()
        .map(|h| h.join().expect("server start panicked"))
        .collect();

    assert_ne!(servers[0].port(), servers[1].port());
    assert_ne!(servers[0].pid(), servers[1].pid());
    for server in &servers {
        assert_ne!(server.port(), 6379, "must never use the system Redis port");
        assert_eq!(ping(server), "PONG");
    }

    // They are separate servers: a key set in one is absent from the other.
    let _: () = redis::cmd("SET")
        .arg("only-here")
        .arg("1")
        .query(&mut servers[0].connection())
        .unwrap();
    let other: Option<String> = redis::cmd("GET")
        .arg("only-here")
        .query(&mut servers[1].connection())
        .unwrap();
    assert_eq!(other, None);
}

#[test]
fn dropping_the_server_kills_it() {
    let server = RedisServer::start();
    assert_eq!(ping(&server), "PONG");
    let port = server.port();
    let pid = server.pid().expect("a started server has a pid");
    let client = server.client();

    drop(server);

    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "redis-server {pid} should be gone after drop"
    );
    assert!(
        !port_is_open(port),
        "port {port} should be closed after drop"
    );
    assert!(
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .is_err(),
        "connecting after drop should fail"
    );
}
