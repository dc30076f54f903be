//! What runs when, and where: priority order, named queues, countdown/ETA (parked in Redis,
//! not in the worker's memory) and expiry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use taskq_tests::keys;

use taskq::{Client, Error, Options, TaskState};
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::{wait_until, RedisServer};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// This file's workers get 1 s to finish their tasks on shutdown.
const GRACE: Duration = Duration::from_secs(1);

fn llen(server: &RedisServer, key: &str) -> i64 {
    query(&server.url(), &["LLEN", key])
}

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

/// Every run of `record`: (test key, value, when).
static RUNS: Mutex<Vec<(String, u32, Instant)>> = Mutex::new(Vec::new());

fn runs_of(key: &str) -> Vec<(u32, Instant)> {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|(k, _, _)| k == key)
        .map(|(_, v, at)| (*v, *at))
        .collect()
}

#[taskq::task(name = "test.sched.record")]
async fn record(key: String, value: u32) -> u32 {
    RUNS.lock().unwrap().push((key, value, Instant::now()));
    value
}

static EXPIRED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.sched.expiring")]
async fn expiring(x: u32) -> u32 {
    EXPIRED_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

// ---------------------------------------------------------------------------
// Priorities
// ---------------------------------------------------------------------------

/// Sends 3 tasks each of priority 9, then 0, then 5, all before any worker runs; the value of
/// each is `priority * 10 + n`.
async fn send_mixed_priorities(client: &Client, key: &str) -> Vec<taskq::AsyncResult<u32>> {
    let mut sent = Vec::new();
    for priority in [9u8, 0, 5] {
        for n in 0..3u32 {
            let value = u32::from(priority) * 10 + n;
            sent.push(
                client
                    .send(
                        &record,
                        (key.to_owned(), value),
                        Options::new().priority(priority),
                    )
                    .await
                    .unwrap(),
            );
        }
    }
    sent
}

fn priorities_in_run_order(key: &str) -> Vec<u32> {
    runs_of(key).iter().map(|(v, _)| v / 10).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_priority_numbers_run_first() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let key = "priorities-default-prefetch";
    let sent = send_mixed_priorities(&client, key).await;

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    for s in &sent {
        s.get(WAIT).await.expect("every task succeeds");
    }
    worker.stop().await;
    assert_eq!(
        priorities_in_run_order(key),
        [0, 0, 0, 5, 5, 5, 9, 9, 9],
        "runs: {:?}",
        runs_of(key).iter().map(|(v, _)| *v).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_priority_numbers_run_first_without_prefetch() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let key = "priorities-no-prefetch";
    let sent = send_mixed_priorities(&client, key).await;

    let worker = RunningWorker::start(&client, |b| b.prefetch_multiplier(1).shutdown_grace(GRACE));
    for s in &sent {
        s.get(WAIT).await.expect("every task succeeds");
    }
    worker.stop().await;
    // Within one priority, first in first out.
    let values: Vec<u32> = runs_of(key).iter().map(|(v, _)| *v).collect();
    assert_eq!(values, [0, 1, 2, 50, 51, 52, 90, 91, 92]);
}

// ---------------------------------------------------------------------------
// Named queues
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_consumes_only_its_queues() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.queues(["reports"]).shutdown_grace(GRACE));

    let elsewhere = client
        .send(
            &record,
            ("only-reports".to_owned(), 1),
            Options::new(), // the default queue, `celery`
        )
        .await
        .unwrap();
    let here = client
        .send(
            &record,
            ("only-reports".to_owned(), 2),
            Options::new().queue("reports"),
        )
        .await
        .unwrap();
    assert_eq!(here.get(WAIT).await.unwrap(), 2);

    // Give the worker ample chance to (wrongly) take the other one.
    let err = elsewhere
        .get(Duration::from_millis(1500))
        .await
        .expect_err("the celery task is not run by a reports-only worker");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert_eq!(elsewhere.state().await.unwrap(), TaskState::Pending);
    assert_eq!(llen(&server, "celery"), 1);
    assert_eq!(llen(&server, "reports"), 0);
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        0
    );
    assert_eq!(
        runs_of("only-reports")
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>(),
        [2]
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_several_queues_runs_them_all() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.queues(["a", "b"]).shutdown_grace(GRACE));

    let mut sent = Vec::new();
    for (i, queue) in ["a", "b", "a", "b", "c"].iter().enumerate() {
        sent.push(
            client
                .send(
                    &record,
                    ("several-queues".to_owned(), i as u32),
                    Options::new().queue(*queue),
                )
                .await
                .unwrap(),
        );
    }
    for (i, s) in sent.iter().take(4).enumerate() {
        assert_eq!(s.get(WAIT).await.unwrap(), i as u32);
    }
    assert_eq!(sent[4].state().await.unwrap(), TaskState::Pending);
    assert_eq!(llen(&server, "a"), 0);
    assert_eq!(llen(&server, "b"), 0);
    assert_eq!(llen(&server, "c"), 1);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Countdown / ETA
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_waits_in_redis_then_runs() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let countdown = Duration::from_millis(1500);
    let sent_at = Instant::now();
    let sent = client
        .send(
            &record,
            ("countdown".to_owned(), 7),
            Options::new().countdown(countdown),
        )
        .await
        .unwrap();

    // The worker takes it and parks it in Redis: in the ETA schedule, not in the queue and
    // not in unacked.
    let url = server.url();
    wait_until(Duration::from_secs(1), "the message to be parked", || {
        query::<i64>(&url, &["ZCARD", &keys::broker().eta_schedule()]) == 1
    });
    assert!(
        sent_at.elapsed() < countdown,
        "checked too late to see it parked"
    );
    assert_eq!(llen(&server, "celery"), 0);
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        0
    );
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().eta_messages()]),
        1
    );
    assert!(runs_of("countdown").is_empty());
    assert_eq!(sent.state().await.unwrap(), TaskState::Pending);

    assert_eq!(sent.get(Duration::from_secs(5)).await.unwrap(), 7);
    let runs = runs_of("countdown");
    assert_eq!(runs.len(), 1);
    let waited = runs[0].1 - sent_at;
    assert!(
        waited >= countdown - Duration::from_millis(20),
        "ran after {waited:?}, before its countdown"
    );
    assert!(
        waited < Duration::from_secs(3),
        "ran late, after {waited:?}"
    );
    // Nothing left behind.
    assert_eq!(
        query::<i64>(&server.url(), &["ZCARD", &keys::broker().eta_schedule()]),
        0
    );
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().eta_messages()]),
        0
    );
    wait_until(WAIT, "unacked to be empty", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eta_messages_do_not_block_other_tasks() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    // One slot and one reservation: a parked message must not hold either.
    let worker = RunningWorker::start(&client, |b| b.prefetch_multiplier(1).shutdown_grace(GRACE));

    let later = client
        .send(
            &record,
            ("eta-no-block".to_owned(), 1),
            Options::new().eta(std::time::SystemTime::now() + Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let mut now = Vec::new();
    for i in 10..15 {
        now.push(
            client
                .send(&record, ("eta-no-block".to_owned(), i), Options::new())
                .await
                .unwrap(),
        );
    }
    for (i, s) in now.iter().enumerate() {
        assert_eq!(
            s.get(Duration::from_millis(1500)).await.unwrap(),
            10 + i as u32
        );
    }
    assert_eq!(later.state().await.unwrap(), TaskState::Pending);
    assert_eq!(later.get(Duration::from_secs(4)).await.unwrap(), 1);
    let order: Vec<u32> = runs_of("eta-no-block").iter().map(|(v, _)| *v).collect();
    assert_eq!(order, [10, 11, 12, 13, 14, 1]);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tasks_are_revoked_without_running() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let sent = client
        .send(
            &expiring,
            (5,),
            Options::new().expires(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    // The expiry is an absolute time in the message header.
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    let envelope: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    assert!(envelope["headers"]["expires"]
        .as_str()
        .is_some_and(|t| t.ends_with("+00:00")));

    // Let it expire while no worker runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let err = sent.get(WAIT).await.expect_err("an expired task fails");
    let failure = err.task_failure().expect("a task failure");
    assert!(failure.is_revoked());
    assert_eq!(failure.exc_type(), "TaskRevokedError");
    assert_eq!(failure.exc_module(), "celery.exceptions");
    assert_eq!(failure.message(), "expired");
    assert_eq!(sent.state().await.unwrap(), TaskState::Revoked);
    assert!(sent.failed().await.unwrap());
    assert!(sent.ready().await.unwrap());
    assert_eq!(sent.failure().await.unwrap().as_ref(), Some(failure));

    // A task that has not expired yet still runs.
    let fresh = client
        .send(
            &expiring,
            (6,),
            Options::new().expires(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(fresh.get(WAIT).await.unwrap(), 6);
    assert_eq!(
        EXPIRED_RUNS.load(Ordering::SeqCst),
        1,
        "only the fresh one ran"
    );
    let url = server.url();
    wait_until(WAIT, "unacked to be empty", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
    assert_eq!(llen(&server, "celery"), 0);
    worker.stop().await;
}
