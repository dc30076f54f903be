//! Start-up checks: Redis with an eviction policy other than `noeviction` may drop queued
//! messages under memory pressure, so a worker warns, or refuses to start when told to.

use std::time::Duration;

use taskq::{Options, Worker};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

#[taskq::task(name = "test.preflight.ping")]
async fn ping() -> String {
    "pong".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_worker_refuses_a_redis_that_may_evict() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let client = client(&server, |_| {});
    let worker = Worker::builder(client)
        .banner(false)
        .require_noeviction(true)
        .build();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        worker.run_until(std::future::pending()),
    )
    .await
    .expect("it refuses at once");
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("maxmemory-policy is allkeys-lru"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_it_warns_and_runs() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b);
    let sent = client.send(&ping, (), Options::new()).await.unwrap();
    assert_eq!(sent.get(Duration::from_secs(10)).await.unwrap(), "pong");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_worker_runs_on_noeviction() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.require_noeviction(true));
    let sent = client.send(&ping, (), Options::new()).await.unwrap();
    assert_eq!(sent.get(Duration::from_secs(10)).await.unwrap(), "pong");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_sends_with_its_error_and_the_worker_resumes_once_freed() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let client = client(&server, |config| config.result_backend = server.url());
    let worker = RunningWorker::start(&client, |b| b);
    let before = client.send(&ping, (), Options::new()).await.unwrap();
    assert_eq!(before.get(Duration::from_secs(10)).await.unwrap(), "pong");

    // Redis is full: its memory use is over `maxmemory` (set below what it already uses).
    let mut conn = server.connection();
    let set_maxmemory = |conn: &mut redis::Connection, bytes: &str| {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(bytes)
            .query(conn)
            .unwrap();
    };
    set_maxmemory(&mut conn, "1");
    let refused = client.send(&ping, (), Options::new()).await.unwrap_err();
    assert!(
        refused.to_string().contains("OOM"),
        "the producer sees Redis's error: {refused}"
    );
    println!("send to a full Redis: {refused}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(worker.is_alive(), "the worker rides it out");

    // Room again: the same worker takes the next task.
    set_maxmemory(&mut conn, "0");
    let after = client.send(&ping, (), Options::new()).await.unwrap();
    assert_eq!(after.get(Duration::from_secs(10)).await.unwrap(), "pong");
    worker.stop().await;
}
