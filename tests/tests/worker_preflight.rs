//! Start-up checks: Redis with an eviction policy other than `noeviction` may drop queued
//! messages under memory pressure, so a worker warns, or refuses to start when told to. And
//! what a `noeviction` Redis that fills up does to producers and workers.

use std::time::Duration;
use taskq_tests::keys;

use taskq::{Options, Worker};
use taskq_tests::worker::{client, count_run, eventually, query, RunningWorker};
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

#[taskq::task(name = "test.preflight.counted")]
async fn counted(key: String, ms: u64) -> u32 {
    let run = count_run(&key);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    run
}

/// Sets Redis's `maxmemory`: `"1"` makes it full at once, `"0"` lifts the limit.
fn set_maxmemory(server: &RedisServer, bytes: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query(&mut server.connection())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_pauses_the_fleet_and_it_resumes_without_a_duplicate() {
    const TASKS: usize = 40;
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let client = client(&server, |config| config.result_backend = server.url());
    // Short leases, renewed every 0.25 s, and recovery as often on both workers.
    let fleet: Vec<RunningWorker> = (0..2)
        .map(|_| {
            RunningWorker::start(&client, |b| {
                b.concurrency(4).visibility_timeout(Duration::from_secs(1))
            })
        })
        .collect();
    let run = uuid::Uuid::new_v4().to_string();
    let mut sent = Vec::new();
    for i in 0..TASKS {
        let key = format!("{run}-{i}");
        sent.push((
            key.clone(),
            client
                .send(&counted, (key, 1500), Options::new())
                .await
                .unwrap(),
        ));
    }
    let url = server.url();
    eventually(
        Duration::from_secs(10),
        "the fleet to hold messages",
        || async { query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) > 0 },
    )
    .await;

    // Full for five visibility timeouts: results are refused, leases must not lapse.
    set_maxmemory(&server, "1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued_early = query::<i64>(&url, &["LLEN", "celery"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let queued_late = query::<i64>(&url, &["LLEN", "celery"]);
    assert!(
        fleet.iter().all(RunningWorker::is_alive),
        "the workers ride it out"
    );
    assert_eq!(
        queued_early, queued_late,
        "a worker that cannot store results fetches nothing more"
    );
    let dead = client.broker().dead_letters(1).await.unwrap();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");

    // Room again: everything finishes, each task once.
    set_maxmemory(&server, "0");
    for (key, result) in &sent {
        assert_eq!(
            result.get(Duration::from_secs(60)).await.unwrap(),
            1,
            "{key} ran once"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // a duplicate would start by now
    let runs: Vec<u32> = sent.iter().map(|(key, _)| count_run(key) - 1).collect();
    let twice = runs.iter().filter(|n| **n > 1).count();
    println!(
        "Redis full for 5 s with {} messages queued and the rest held: {twice} of {TASKS} ran twice",
        queued_late
    );
    assert_eq!(twice, 0, "runs per task: {runs:?}");
    for worker in fleet {
        worker.stop().await;
    }
}

/// Why a worker on `client` fails to start: at once, not after retrying.
async fn start_failure(client: taskq::Client) -> String {
    let worker = Worker::builder(client).banner(false).build();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        worker.run_until(std::future::pending()),
    )
    .await
    .expect("it fails at once instead of retrying forever");
    outcome.unwrap_err().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_wrong_password_fails_at_start_with_the_reason() {
    let server = RedisServer::start();
    taskq_tests::redis_cmd(
        &server.url(),
        &[
            "ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all",
        ],
    );
    let url = format!("redis://app:wrong@127.0.0.1:{}/0", server.port());
    let client = client(&server, |config| {
        config.broker_url = url.clone();
        config.result_backend = url.clone();
    });
    let err = start_failure(client).await;
    println!("worker with a wrong password: {err}");
    assert!(err.contains("refused this worker's credentials"), "{err}");
    assert!(!err.contains("wrong@"), "the password is not echoed: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_node_is_refused_before_anything_is_written() {
    // A one-node cluster serving every slot: writes would work here, and on a real cluster
    // they would not (CROSSSLOT, MOVED), so the refusal comes before any.
    let server = RedisServer::start_with(&["--cluster-enabled", "yes"]);
    taskq_tests::redis_cmd(&server.url(), &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    eventually(Duration::from_secs(10), "the cluster to be ok", || async {
        let info: String = query(&server.url(), &["CLUSTER", "INFO"]);
        info.contains("cluster_state:ok")
    })
    .await;
    let client = client(&server, |config| config.result_backend = server.url());
    let refused = client.send(&ping, (), Options::new()).await.unwrap_err();
    assert!(
        refused.to_string().contains("is a Redis Cluster node"),
        "{refused}"
    );
    let keys: i64 = query(&server.url(), &["DBSIZE"]);
    assert_eq!(keys, 0, "the refused send wrote nothing");

    let err = start_failure(client).await;
    println!("worker on a cluster node: {err}");
    assert!(err.contains("is a Redis Cluster node"), "{err}");
}
