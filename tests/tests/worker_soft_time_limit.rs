//! Soft time limits (Celery's `soft_time_limit`, the second value of the `timelimit` header):
//! a task that never asks for its limit is stopped at it and fails `SoftTimeLimitExceeded`; a
//! task that watches it winds down and returns its own result; the hard limit still stops a
//! task that asked and then ignored the signal.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq::{Options, TaskState};
use taskq_tests::worker::{client, query, wait_nothing_unacked, RunningWorker};
use taskq_tests::RedisServer;

const GRACE: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(15);

/// When each test's task started, by test.
static STARTED: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

fn mark_started(tag: &'static str) {
    STARTED.lock().unwrap().push((tag, Instant::now()));
}

fn started_at(tag: &str) -> Instant {
    STARTED
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, at)| *at)
        .expect("the task started")
}

static IGNORER_FINISHED: AtomicBool = AtomicBool::new(false);

/// Never asks for its soft limit and works for 3 s.
#[taskq::task(name = "test.soft.ignores", soft_time_limit = 1, time_limit = 10)]
async fn ignores_the_limit() -> String {
    mark_started("ignores");
    tokio::time::sleep(Duration::from_secs(3)).await;
    IGNORER_FINISHED.store(true, Ordering::SeqCst);
    "finished".to_owned()
}

static CLEANED_UP: AtomicBool = AtomicBool::new(false);

/// Watches its soft limit, cleans up when it passes and reports how far it got.
#[taskq::task(name = "test.soft.watches")]
async fn watches_the_limit() -> String {
    mark_started("watches");
    let limit = taskq::request::soft_time_limit().expect("the call has a soft limit");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(30)) => "finished".to_owned(),
        () = limit.exceeded() => {
            CLEANED_UP.store(true, Ordering::SeqCst);
            format!("cleaned up after the soft limit of {:?}", limit.limit())
        }
    }
}

static ASKED: AtomicBool = AtomicBool::new(false);

/// Asks for its soft limit, then ignores it.
#[taskq::task(name = "test.soft.asks_then_ignores")]
async fn asks_then_ignores() -> u32 {
    mark_started("asks");
    let limit = taskq::request::soft_time_limit();
    ASKED.store(limit.is_some(), Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    1
}

static SOFT_RETRY_RUNS: AtomicU32 = AtomicU32::new(0);

/// Stopped at its soft limit on every run; retried once, like a Celery task with
/// `autoretry_for=(Exception,)`.
#[taskq::task(
    name = "test.soft.retried",
    soft_time_limit = 0.3,
    max_retries = 1,
    retry_backoff = 0.1
)]
async fn stopped_and_retried() -> u32 {
    SOFT_RETRY_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    0
}

static JUDGED_RUNS: AtomicU32 = AtomicU32::new(0);

/// Its `retry_if` judges its own error type; a soft time limit is not one of those, so it is
/// not retried (as `autoretry_for=(ConnectionError,)` does not match `SoftTimeLimitExceeded`).
#[taskq::task(
    name = "test.soft.judged",
    soft_time_limit = 0.3,
    max_retries = 3,
    retry_backoff = 0.1,
    retry_if = |_| true
)]
async fn stopped_and_judged() -> Result<u32, String> {
    JUDGED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_ignores_its_soft_limit_fails_soft_time_limit_exceeded() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let sent = client
        .send(&ignores_the_limit, (), Options::new())
        .await
        .unwrap();
    // Celery's order: [hard, soft].
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    let envelope: Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(envelope["headers"]["timelimit"], json!([10.0, 1.0]));

    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));
    let err = sent.get(WAIT).await.expect_err("stopped at the soft limit");
    let ran = started_at("ignores").elapsed();
    let failure = err.task_failure().expect("a task failure");
    eprintln!("{failure} stored {ran:?} after the task started");
    assert_eq!(failure.exc_type(), "SoftTimeLimitExceeded");
    assert_eq!(failure.exc_module(), "billiard.exceptions");
    assert!(failure.is_soft_timeout());
    assert!(
        ran >= Duration::from_millis(950) && ran < Duration::from_millis(1500),
        "stored {ran:?} after the task started"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    wait_nothing_unacked(&server, WAIT);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !IGNORER_FINISHED.load(Ordering::SeqCst),
        "the task was not stopped"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_watches_its_soft_limit_cleans_up_and_returns_its_value() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));
    let options = Options::new()
        .soft_time_limit(Duration::from_secs(1))
        .time_limit(Duration::from_secs(10));
    let sent = client.send(&watches_the_limit, (), options).await.unwrap();

    let value = sent
        .get(WAIT)
        .await
        .expect("the task returns its own value");
    let ran = started_at("watches").elapsed();
    eprintln!("SUCCESS {value:?} stored {ran:?} after the task started");
    assert_eq!(value, "cleaned up after the soft limit of 1s");
    assert!(CLEANED_UP.load(Ordering::SeqCst));
    assert!(
        ran >= Duration::from_millis(950) && ran < Duration::from_millis(1500),
        "stored {ran:?} after the task started"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_limit_stops_a_task_that_asked_for_its_soft_limit_and_ignored_it() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));
    let options = Options::new()
        .soft_time_limit(Duration::from_millis(500))
        .time_limit(Duration::from_millis(1500));
    let sent = client.send(&asks_then_ignores, (), options).await.unwrap();

    let err = sent.get(WAIT).await.expect_err("stopped at the hard limit");
    let ran = started_at("asks").elapsed();
    let failure = err.task_failure().expect("a task failure");
    eprintln!("{failure} stored {ran:?} after the task started");
    assert!(ASKED.load(Ordering::SeqCst), "the task had a soft limit");
    assert!(failure.is_timeout(), "{failure}");
    assert_eq!(failure.message(), "1.5");
    assert!(
        ran >= Duration::from_millis(1450) && ran < Duration::from_millis(2000),
        "stored {ran:?} after the task started"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_limit_is_retried_like_an_error_the_task_raised_unless_retry_if_judges() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2).shutdown_grace(GRACE));

    let retried = client
        .send(&stopped_and_retried, (), Options::new())
        .await
        .unwrap();
    let judged = client
        .send(&stopped_and_judged, (), Options::new())
        .await
        .unwrap();
    for sent in [&retried, &judged.clone().typed()] {
        let err = sent.get(WAIT).await.expect_err("stopped at the soft limit");
        assert!(err.task_failure().is_some_and(|f| f.is_soft_timeout()));
    }
    assert_eq!(
        SOFT_RETRY_RUNS.load(Ordering::SeqCst),
        2,
        "run, then 1 retry"
    );
    assert_eq!(
        JUDGED_RUNS.load(Ordering::SeqCst),
        1,
        "retry_if cannot match it"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}
