//! Smoke tests of the Redis Cluster harness: three masters with a replica each form a
//! cluster, a key written to the master of its slot is read back, a killed master's replica
//! takes over within seconds with the key, and dropping the cluster kills every node. A TLS
//! cluster forms, announces its TLS ports and fails over with TLS only.

use std::path::Path;
use std::time::{Duration, Instant};

use taskq_tests::cluster::RedisCluster;
use taskq_tests::tls::{plain_ping, Certs};
use taskq_tests::{port_is_open, redis_cmd};

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

#[test]
fn a_cluster_forms_serves_keys_and_fails_over() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start(3, 1);
    println!("cluster of 6 nodes formed in {:?}", started.elapsed());

    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "three masters: {masters:?}");
    assert_eq!(
        &cluster.ports()[..3],
        masters,
        "the first nodes started are the masters"
    );
    assert!(
        !masters.contains(&6379),
        "must never use the system Redis port"
    );
    assert_eq!(
        cluster.urls(),
        masters.iter().map(|&p| url(p)).collect::<Vec<_>>()
    );
    assert_eq!(
        cluster.cluster_url(),
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            masters[0], masters[1], masters[2]
        )
    );
    assert_eq!(cluster.master_of_slot(0), masters[0]);
    assert_eq!(cluster.master_of_slot(16383), masters[2]);

    // The master of the key's slot takes it; another master redirects there.
    let key = "taskq-harness-key";
    let slot = cluster.slot_of_key(key);
    let owner = cluster.master_of_slot(slot);
    redis_cmd(&url(owner), &["SET", key, "v"]);
    assert_eq!(
        redis_cmd(&url(owner), &["GET", key]),
        redis::Value::BulkString(b"v".to_vec())
    );
    let other = *masters.iter().find(|&&p| p != owner).unwrap();
    let mut con = redis::Client::open(url(other))
        .unwrap()
        .get_connection()
        .unwrap();
    let moved = redis::cmd("GET")
        .arg(key)
        .query::<Option<String>>(&mut con)
        .expect_err("a master that does not serve the slot redirects");
    assert_eq!(
        moved.redirect_node(),
        Some((format!("127.0.0.1:{owner}").as_str(), slot))
    );

    cluster.wait_for_replication();
    let killed_at = Instant::now();
    cluster.kill_node(owner);
    assert!(!port_is_open(owner));
    let new_master = cluster.wait_for_failover(owner, Duration::from_secs(15));
    println!(
        "127.0.0.1:{new_master} took over from 127.0.0.1:{owner} in {:?}",
        killed_at.elapsed()
    );
    assert_ne!(new_master, owner);
    assert_eq!(cluster.master_of_slot(slot), new_master);
    let masters_now = cluster.masters();
    assert_eq!(masters_now.len(), 3, "three masters again: {masters_now:?}");
    assert!(masters_now.contains(&new_master) && !masters_now.contains(&owner));
    // Replicated before the kill, so the new master has it.
    assert_eq!(
        redis_cmd(&url(new_master), &["GET", key]),
        redis::Value::BulkString(b"v".to_vec())
    );

    cluster.flushall();
    assert_eq!(
        redis_cmd(&url(new_master), &["GET", key]),
        redis::Value::Nil
    );
}

/// The master's port of each range of a `CLUSTER SLOTS` reply:
/// `[[start, end, [host, port, id, …], replicas…], …]`.
fn slot_map_masters(reply: &redis::Value) -> Vec<i64> {
    let array = |value: &redis::Value| match value {
        redis::Value::Array(items) => items.clone(),
        other => panic!("not an array: {other:?}"),
    };
    array(reply)
        .iter()
        .map(|range| match array(&array(range)[2])[1] {
            redis::Value::Int(port) => port,
            ref other => panic!("not a port: {other:?}"),
        })
        .collect()
}

#[test]
fn a_tls_cluster_forms_over_tls_only_and_fails_over() {
    let certs = Certs::generate();
    let started = Instant::now();
    let mut cluster = RedisCluster::start_tls(3, 1, &certs);
    println!("TLS cluster of 6 nodes formed in {:?}", started.elapsed());

    let masters = cluster.masters();
    assert_eq!(&cluster.ports()[..3], masters);
    let ca = certs.ca.display();
    assert_eq!(
        cluster.cluster_url(),
        format!(
            "rediss+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}?ssl_ca_certs={ca}",
            masters[0], masters[1], masters[2]
        )
    );
    assert_eq!(
        cluster.urls(),
        masters
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}?ssl_ca_certs={ca}"))
            .collect::<Vec<_>>()
    );
    // The cluster announces the TLS ports: they are the ones in its slot map.
    let mut announced = slot_map_masters(&redis_cmd(&cluster.urls()[0], &["CLUSTER", "SLOTS"]));
    announced.sort_unstable();
    let mut expected: Vec<i64> = masters.iter().map(|&p| i64::from(p)).collect();
    expected.sort_unstable();
    assert_eq!(announced, expected);

    // Nothing answers in plain text.
    let plain = plain_ping(masters[0]);
    assert!(plain.is_err(), "{plain:?}");

    let key = "taskq-harness-tls-key";
    let owner = cluster.master_of_slot(cluster.slot_of_key(key));
    let owner_url = format!("rediss://127.0.0.1:{owner}?ssl_ca_certs={ca}");
    redis_cmd(&owner_url, &["SET", key, "v"]);
    cluster.wait_for_replication();
    cluster.kill_node(owner);
    let new_master = cluster.wait_for_failover(owner, Duration::from_secs(15));
    assert_eq!(
        redis_cmd(
            &format!("rediss://127.0.0.1:{new_master}?ssl_ca_certs={ca}"),
            &["GET", key]
        ),
        redis::Value::BulkString(b"v".to_vec())
    );
}

#[test]
fn dropping_the_cluster_kills_every_node() {
    let cluster = RedisCluster::start(1, 1);
    let ports = cluster.ports();
    assert_eq!(ports.len(), 2);
    let pids: Vec<String> = ports
        .iter()
        .map(|&port| {
            let info = redis_cmd(&url(port), &["INFO", "server"]);
            let info: String = redis::from_redis_value(info).unwrap();
            info.lines()
                .find_map(|l| l.trim().strip_prefix("process_id:").map(str::to_owned))
                .expect("INFO server names the process")
        })
        .collect();

    drop(cluster);

    for (port, pid) in ports.iter().zip(&pids) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node {pid} should be gone after drop"
        );
        assert!(
            !port_is_open(*port),
            "port {port} should be closed after drop"
        );
    }
}
