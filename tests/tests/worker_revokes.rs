//! Revokes that outlive the workers: a task revoked before any worker started, or while the
//! workers were restarting, or while a worker was not listening, must not run. Revokes are
//! kept in Redis (`taskq.revoked`), bounded like Celery's (50,000 ids, 3 hours).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use taskq_tests::keys;

use serde_json::json;
use taskq::protocol::KombuMessage;
use taskq::{AsyncResult, Client, Config, Options, TaskState};
use taskq_tests::worker::{client, eventually, query, wait_nothing_unacked, RunningWorker};
use taskq_tests::RedisServer;

const GRACE: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(15);

static BEFORE_START_RUNS: AtomicU32 = AtomicU32::new(0);

#[taskq::task(name = "test.revokes.before_start")]
async fn revoked_before_start(x: u32) -> u32 {
    BEFORE_START_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

static RESTART_RUNS: AtomicU32 = AtomicU32::new(0);

#[taskq::task(name = "test.revokes.restart")]
async fn revoked_across_restart(x: u32) -> u32 {
    RESTART_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

static RESYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[taskq::task(name = "test.revokes.resync")]
async fn revoked_unheard(x: u32) -> u32 {
    RESYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

static MEMORY_RUNS: AtomicU32 = AtomicU32::new(0);

#[taskq::task(name = "test.revokes.memory")]
async fn revoked_in_memory_broker(x: u32) -> u32 {
    MEMORY_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

/// Waits until `sent` is REVOKED "revoked" (discarded by a worker, never run).
async fn assert_discarded(sent: &AsyncResult<u32>) {
    let id = sent.id().to_owned();
    eventually(WAIT, &format!("task {id} to be REVOKED"), || async {
        sent.state().await.unwrap() == TaskState::Revoked
    })
    .await;
    let failure = sent.failure().await.unwrap().expect("a failure record");
    assert!(failure.is_revoked());
    assert_eq!(failure.message(), "revoked");
}

fn revoke_score(server: &RedisServer, id: &str) -> Option<f64> {
    query(&server.url(), &["ZSCORE", &keys::broker().revoked(), id])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_revoked_before_any_worker_started_is_discarded_by_the_worker_started_later() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let revoked = client
        .send(&revoked_before_start, (1,), Options::new())
        .await
        .unwrap();
    revoked.revoke().await.unwrap(); // AsyncResult::revoke: no worker is listening
    assert!(
        revoke_score(&server, revoked.id()).is_some(),
        "kept in Redis"
    );
    let kept = client
        .send(&revoked_before_start, (2,), Options::new())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    assert_eq!(kept.get(WAIT).await.unwrap(), 2, "the other task runs");
    assert_discarded(&revoked).await;
    eprintln!(
        "REVOKED seen {:?} after the worker started",
        started.elapsed()
    );
    assert_eq!(
        BEFORE_START_RUNS.load(Ordering::SeqCst),
        1,
        "only the task that was not revoked ran"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_sent_to_a_worker_hold_for_the_worker_that_replaces_it() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let first = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    // Ids of calls not sent yet: one revoked through the Rust API, one by the bare Celery
    // `revoke` command, as Python's `app.control.revoke` broadcasts it (nothing in Redis).
    let by_api = "3f0c2a56-1b57-4c4e-9a8e-000000000001";
    let by_command = "3f0c2a56-1b57-4c4e-9a8e-000000000002";
    client.revoke(by_api).await.unwrap();
    let command = KombuMessage::new("celery.pidbox", "", revoke_command(by_command));
    let url = server.url();
    // The first worker gets the command (its subscription may not be up at once) and records
    // the id in Redis for the others.
    eventually(WAIT, "the worker to record the command's revoke", || {
        let envelope = command.encode().unwrap();
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .broker()
                .broadcast("celery.pidbox", "", &envelope)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            query::<Option<f64>>(&url, &["ZSCORE", &keys::broker().revoked(), by_command]).is_some()
        }
    })
    .await;
    first.stop().await;

    let second = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let countdown = Options::new().countdown(Duration::from_secs(1));
    let mut sent = Vec::new();
    for id in [by_api, by_command] {
        let options = countdown.clone().task_id(id);
        sent.push(
            client
                .send(&revoked_across_restart, (7,), options)
                .await
                .unwrap(),
        );
    }
    let control = client
        .send(&revoked_across_restart, (8,), countdown)
        .await
        .unwrap();
    assert_eq!(control.get(WAIT).await.unwrap(), 8);
    for revoked in &sent {
        assert_discarded(revoked).await;
    }
    assert_eq!(
        RESTART_RUNS.load(Ordering::SeqCst),
        1,
        "only the control ran"
    );
    wait_nothing_unacked(&server, WAIT);
    second.stop().await;
}

/// Celery's `revoke` command body for one id.
fn revoke_command(id: &str) -> serde_json::Value {
    json!({"method": "revoke",
           "arguments": {"task_id": id, "terminate": false, "signal": "SIGTERM"},
           "destination": null, "pattern": null, "matcher": null})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_recorded_while_the_worker_was_not_listening_is_picked_up() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let id = "7d1e9b1a-5d0c-4a8f-8f0e-000000000003";
    // Recorded in Redis with no broadcast: what a worker misses while its control
    // subscription is down.
    client
        .broker()
        .record_revokes(&[id.to_owned()])
        .await
        .unwrap();
    let recorded = std::time::Instant::now();
    let options = Options::new().countdown(Duration::from_secs(2)).task_id(id);
    let revoked = client.send(&revoked_unheard, (3,), options).await.unwrap();
    assert_discarded(&revoked).await;
    eprintln!(
        "discarded {:?} after the revoke was recorded (countdown 2 s)",
        recorded.elapsed()
    );
    assert_eq!(RESYNC_RUNS.load(Ordering::SeqCst), 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_broker_keeps_revokes_for_workers_started_later() {
    let mut config = Config::default();
    config.broker_url = "memory://revokes-test".into();
    config.result_backend = "memory://revokes-test".into();
    config.concurrency = 1;
    let client = Client::from_config(config).unwrap();
    let revoked = client
        .send(&revoked_in_memory_broker, (1,), Options::new())
        .await
        .unwrap();
    client.revoke(revoked.id()).await.unwrap();
    let kept = client
        .send(&revoked_in_memory_broker, (2,), Options::new())
        .await
        .unwrap();
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    assert_eq!(kept.get(WAIT).await.unwrap(), 2);
    assert_discarded(&revoked).await;
    assert_eq!(MEMORY_RUNS.load(Ordering::SeqCst), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revoked_set_in_redis_keeps_at_most_50000_ids_of_the_last_3_hours() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let url = server.url();
    // An id revoked 3 h and 1 s ago (on the server's clock), and one 1 h ago.
    let (secs, _): (u64, u64) = query(&url, &["TIME"]);
    let stale = (secs - 3 * 3600 - 1).to_string();
    let recent = (secs - 3600).to_string();
    let _: i64 = query(
        &url,
        &[
            "ZADD",
            &keys::broker().revoked(),
            &stale,
            "stale",
            &recent,
            "recent",
        ],
    );

    let ids: Vec<String> = (0..50_010).map(|i| format!("id-{i:05}")).collect();
    client.broker().record_revokes(&ids[..10]).await.unwrap();
    assert_eq!(
        revoke_score(&server, "stale"),
        None,
        "older than 3 h: trimmed"
    );
    assert!(revoke_score(&server, "recent").is_some());
    let ttl: i64 = query(&url, &["PTTL", &keys::broker().revoked()]);
    assert!(
        ttl > 10_790_000 && ttl <= 10_800_000,
        "idle set expires in 3 h: {ttl}"
    );

    client.broker().record_revokes(&ids[10..]).await.unwrap();
    let count: i64 = query(&url, &["ZCARD", &keys::broker().revoked()]);
    assert_eq!(count, 50_000);
    // The oldest went first: `recent`, then the first batch.
    assert_eq!(revoke_score(&server, "recent"), None);
    assert_eq!(revoke_score(&server, "id-00009"), None);
    assert!(revoke_score(&server, "id-50009").is_some());

    let read = client
        .broker()
        .revokes_since(f64::NEG_INFINITY)
        .await
        .unwrap();
    assert_eq!(read.ids.len(), 50_000);
}
