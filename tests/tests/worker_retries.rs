//! Retries: a task that returns `Err` or panics runs again, with backoff, up to `max_retries`;
//! RETRY is stored (and published) for each retry, and the message waits in Redis meanwhile.

use std::time::Duration;
use taskq_tests::keys;

use taskq::{Options, TaskState};
use taskq_tests::worker::{client, count_run, meta_key, wait_nothing_unacked, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Flaky(u32);

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attempt {} failed", self.0)
    }
}

#[taskq::task(name = "test.retry.flaky", max_retries = 3, retry_backoff = 0.05)]
async fn flaky(key: String, fail_times: u32) -> Result<u32, Flaky> {
    let run = count_run(&key);
    if run <= fail_times {
        Err(Flaky(run))
    } else {
        Ok(run)
    }
}

#[taskq::task(name = "test.retry.panics_once", max_retries = 1, retry_backoff = 0.05)]
async fn panics_once(key: String) -> u32 {
    let run = count_run(&key);
    assert!(run > 1, "first run panics");
    run
}

#[taskq::task(name = "test.retry.too_slow", max_retries = 2, time_limit = 0.2)]
async fn too_slow(key: String) -> u32 {
    count_run(&key);
    tokio::time::sleep(Duration::from_secs(5)).await;
    0
}

/// Every record published on the task's result channel until a ready state, in order.
fn published_states(server: &RedisServer, id: &str) -> std::thread::JoinHandle<Vec<String>> {
    let mut conn = server.connection();
    let channel = meta_key(id);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub.set_read_timeout(Some(WAIT)).unwrap();
        ready_tx.send(()).unwrap();
        let mut states = Vec::new();
        while let Ok(msg) = pubsub.get_message() {
            let payload: String = msg.get_payload().unwrap();
            let record: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let state = record["status"].as_str().unwrap().to_owned();
            let done = matches!(state.as_str(), "SUCCESS" | "FAILURE" | "REVOKED");
            states.push(state);
            if done {
                break;
            }
        }
        states
    });
    ready_rx.recv().unwrap();
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_retried_until_it_succeeds() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let id = uuid::Uuid::new_v4().to_string();
    let states = published_states(&server, &id);
    let sent = client
        .send(&flaky, (id.clone(), 2), Options::new().task_id(&id))
        .await
        .unwrap();
    assert_eq!(
        sent.get(WAIT).await.unwrap(),
        3,
        "two failures, then the third run succeeds"
    );
    assert_eq!(states.join().unwrap(), ["RETRY", "RETRY", "SUCCESS"]);
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_retries_with_the_last_error() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let key = uuid::Uuid::new_v4().to_string();
    let sent = client
        .send(&flaky, (key.clone(), 100), Options::new())
        .await
        .unwrap();
    let err = sent.get(WAIT).await.unwrap_err();
    let failure = err.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "Flaky");
    assert_eq!(
        failure.message(),
        "attempt 4 failed",
        "1 run + max_retries 3 = 4 runs"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    assert_eq!(count_run(&key), 5, "no fifth run happened before this one");
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_retried_but_time_limits_are_not() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let key = uuid::Uuid::new_v4().to_string();
    let sent = client
        .send(&panics_once, (key.clone(),), Options::new())
        .await
        .unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 2);

    let key = uuid::Uuid::new_v4().to_string();
    let slow = client
        .send(&too_slow, (key.clone(),), Options::new())
        .await
        .unwrap();
    assert!(slow
        .get(WAIT)
        .await
        .unwrap_err()
        .task_failure()
        .unwrap()
        .is_timeout());
    assert_eq!(
        count_run(&key),
        2,
        "a time limit is taskq stopping the task: not retried"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_waits_in_redis_with_its_retries_header() {
    #[taskq::task(name = "test.retry.slow_backoff", max_retries = 1, retry_backoff = 30)]
    async fn slow_backoff() -> Result<(), Flaky> {
        Err(Flaky(1))
    }
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1));
    let sent = client
        .send(&slow_backoff, (), Options::new())
        .await
        .unwrap();
    let url = server.url();
    taskq_tests::wait_until(WAIT, "the retry to be parked", || {
        taskq_tests::worker::query::<i64>(&url, &["ZCARD", &keys::broker().eta_schedule()]) == 1
    });
    assert_eq!(sent.state().await.unwrap(), TaskState::Retry);
    let failure = sent.failure().await.unwrap().unwrap();
    assert_eq!(failure.message(), "attempt 1 failed");
    let parked: Vec<String> =
        taskq_tests::worker::query(&url, &["HVALS", &keys::broker().eta_messages()]);
    assert!(parked[0].contains(r#"\"retries\": 1"#), "{parked:?}");
    assert!(
        parked[0].contains(&format!(r#"\"parent_id\": \"{}\""#, sent.id())),
        "{parked:?}"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

/// Fails until its own request says it is the second retry, then returns what it saw.
#[taskq::task(
    name = "test.retry.sees_request",
    max_retries = 2,
    retry_backoff = 0.05
)]
async fn sees_request() -> Result<(String, u32, u32), Flaky> {
    let request = taskq::request::current().expect("a worker runs it");
    if request.retries < 2 {
        return Err(Flaky(request.retries + 1));
    }
    Ok((request.id, request.retries, request.recoveries))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_sees_its_id_and_retry_count() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1));
    let id = uuid::Uuid::new_v4().to_string();
    let sent = client
        .send(&sees_request, (), Options::new().task_id(&id))
        .await
        .unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), (id, 2, 0));
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Which errors are retried (`retry_if`) and retries the task asks for (`retry_in`)
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum CallError {
    Unavailable,
    BadInput,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallError::Unavailable => "service unavailable",
            CallError::BadInput => "bad input",
        })
    }
}

fn is_transient(error: &CallError) -> bool {
    matches!(error, CallError::Unavailable)
}

/// Fails with `error` on its first run, then succeeds; panics instead when `error` is "panic".
#[taskq::task(
    name = "test.retry.judged",
    max_retries = 3,
    retry_backoff = 0.05,
    retry_if = is_transient
)]
async fn judged(key: String, error: String) -> Result<u32, CallError> {
    let run = count_run(&key);
    match (run, error.as_str()) {
        (1, "unavailable") => Err(CallError::Unavailable),
        (1, "bad input") => Err(CallError::BadInput),
        (1, "panic") => panic!("not an error retry_if can judge"),
        _ => Ok(run),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_errors_retry_if_matches_are_retried() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let run = |error: &str| {
        let key = uuid::Uuid::new_v4().to_string();
        let sent = client.send(&judged, (key.clone(), error.to_owned()), Options::new());
        async move { (sent.await.unwrap().get(WAIT).await, key) }
    };

    let (transient, _) = run("unavailable").await;
    assert_eq!(transient.unwrap(), 2, "retried once, then succeeded");

    let (permanent, key) = run("bad input").await;
    let failure = permanent.unwrap_err();
    assert_eq!(failure.task_failure().unwrap().message(), "bad input");
    assert_eq!(count_run(&key), 2, "ran once: the count is now 2");

    let (panicked, key) = run("panic").await;
    assert!(panicked.unwrap_err().task_failure().unwrap().is_panic());
    assert_eq!(
        count_run(&key),
        2,
        "a panic is not judged by retry_if: not retried"
    );
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[derive(Debug)]
struct RateLimited;

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate limited")
    }
}

/// Asks to be retried in `countdown_ms` for its first `limited_runs` runs; then returns its
/// retry count.
#[taskq::task(name = "test.retry.asks")]
async fn asks_for_retry(
    key: String,
    limited_runs: u32,
    countdown_ms: u64,
) -> Result<u32, RateLimited> {
    let run = count_run(&key);
    if run <= limited_runs {
        taskq::request::retry_in(Duration::from_millis(countdown_ms));
        return Err(RateLimited);
    }
    Ok(taskq::request::current().unwrap().retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_can_ask_for_a_retry_after_a_countdown() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));

    let key = uuid::Uuid::new_v4().to_string();
    let sent_at = std::time::Instant::now();
    let sent = client
        .send(&asks_for_retry, (key.clone(), 1, 700), Options::new())
        .await
        .unwrap();
    assert_eq!(
        sent.get(WAIT).await.unwrap(),
        1,
        "the second run is retry 1"
    );
    let took = sent_at.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "waited its countdown: {took:?}"
    );
    println!("retry_in(700 ms): result after {took:?}");

    // Without max_retries, Celery's default of 3 retries applies to asked-for retries.
    let key = uuid::Uuid::new_v4().to_string();
    let sent = client
        .send(&asks_for_retry, (key.clone(), 100, 20), Options::new())
        .await
        .unwrap();
    let err = sent.get(WAIT).await.unwrap_err();
    assert_eq!(err.task_failure().unwrap().message(), "rate limited");
    assert_eq!(count_run(&key), 5, "1 run + 3 retries = 4 runs");
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}
