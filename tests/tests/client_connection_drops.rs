//! A producer's sends survive connections that Redis (or a proxy, a NAT, a managed service)
//! closes: idle reaping with Redis's `timeout`, and `CLIENT KILL`. A send whose command did
//! not reach Redis goes again on a fresh connection; one that did is not queued twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskq::Options;
use taskq_tests::worker::{client, query};
use taskq_tests::RedisServer;

#[taskq::task(name = "test.drops.noop")]
async fn noop(n: u64) -> u64 {
    n
}

/// The task ids queued in `celery`, each once.
fn queued_ids(url: &str) -> Vec<String> {
    let queued: Vec<String> = query(url, &["LRANGE", "celery", "0", "-1"]);
    queued
        .iter()
        .map(|raw| {
            let envelope: serde_json::Value = serde_json::from_str(raw).unwrap();
            envelope["headers"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_after_redis_closed_the_idle_connection_succeeds() {
    // Redis closes connections idle for 1 s, as managed Redis, NATs and proxies do.
    let server = RedisServer::start_with(&["--timeout", "1"]);
    let client = client(&server, |_| {});
    let mut sent = Vec::new();
    for round in 0..4u64 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(2500)).await; // idle past the timeout
        }
        let started = Instant::now();
        let res = client.send(&noop, (round,), Options::new()).await;
        let res = res.unwrap_or_else(|e| panic!("send after {round} idle spells failed: {e}"));
        println!("send after idle spell {round}: {:?}", started.elapsed());
        sent.push(res.id().to_owned());
    }
    let mut queued = queued_ids(&server.url());
    queued.reverse(); // LPUSH: the newest first
    assert_eq!(queued, sent, "each send queued once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_kills_during_sends_fail_no_send_and_queue_each_once() {
    const SENDS: u64 = 2000;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    // Kills every normal client connection (not its own) every 20 ms while the sends go on.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (stop, kills) = (stop.clone(), kills.clone());
        let mut conn = server.connection();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let killed: i64 = redis::cmd("CLIENT")
                    .arg(&["KILL", "TYPE", "normal"])
                    .query(&mut conn)
                    .expect("CLIENT KILL");
                kills.fetch_add(killed as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let mut sent = HashSet::new();
    let mut failed = Vec::new();
    for n in 0..SENDS {
        match client.send(&noop, (n,), Options::new()).await {
            Ok(res) => {
                sent.insert(res.id().to_owned());
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    println!(
        "{SENDS} sends in {:?} while {} connections were killed: {} failed",
        started.elapsed(),
        kills.load(Ordering::Relaxed),
        failed.len()
    );
    assert!(
        kills.load(Ordering::Relaxed) > 10,
        "the connections were killed"
    );
    assert!(failed.is_empty(), "failed sends: {failed:?}");
    let queued = queued_ids(&server.url());
    let unique: HashSet<String> = queued.iter().cloned().collect();
    assert_eq!(queued.len(), unique.len(), "no task queued twice");
    assert_eq!(unique, sent, "every send queued");
}
