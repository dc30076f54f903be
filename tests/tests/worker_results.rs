//! End-to-end results: `delay` → in-process worker → `AsyncResult`, for every return shape a
//! task may have, the states an `AsyncResult` reports, waiting, forgetting, ignored results,
//! STARTED tracking and result expiry. Every test runs against its own `redis-server`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use taskq_tests::keys;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use taskq::{Config, Error, Options, TaskState};
use taskq_tests::worker::{client, eventually, meta_key, query, RunningWorker};
use taskq_tests::RedisServer;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// This file's clients: two execution slots (inherited by their workers).
fn two_slots(config: &mut Config) {
    config.concurrency = 2;
}

/// This file's workers get 2 s to finish their tasks on shutdown.
const GRACE: Duration = Duration::from_secs(2);

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    user_id: u64,
    pages: u32,
    title: String,
}

#[derive(Debug)]
struct ReportError {
    code: u32,
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "report {} cannot be built", self.code)
    }
}

#[taskq::task(name = "test.results.build_report")]
async fn build_report(user_id: u64, pages: u32) -> Result<Report, ReportError> {
    if pages == 0 {
        return Err(ReportError { code: 7 });
    }
    Ok(Report {
        user_id,
        pages,
        title: format!("report of {user_id}"),
    })
}

#[taskq::task(name = "test.results.archive")]
async fn archive(path: String) -> anyhow::Result<u32> {
    let cause = anyhow::anyhow!("disk unavailable");
    Err(cause.context(format!("cannot archive {path}")))
}

#[taskq::task(name = "test.results.double")]
async fn double(x: i64) -> i64 {
    x * 2
}

static TOUCHED: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.results.touch")]
async fn touch(by: usize) {
    TOUCHED.fetch_add(by, Ordering::SeqCst);
}

#[taskq::task(name = "test.results.slow_add")]
async fn slow_add(x: i64, y: i64, millis: u64) -> i64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    x + y
}

#[taskq::task(name = "test.results.ping")]
async fn ping() -> String {
    "pong".to_owned()
}

static IGNORED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.results.ignored_attr", ignore_result)]
async fn ignored_attr(x: i64) -> i64 {
    IGNORED_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

static OPTION_IGNORED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.results.ignored_option")]
async fn ignored_option(x: i64) -> i64 {
    OPTION_IGNORED_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

static TRACKED_RUNNING: AtomicBool = AtomicBool::new(false);

#[taskq::task(name = "test.results.tracked")]
async fn tracked(x: i64) -> i64 {
    TRACKED_RUNNING.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    x
}

static UNTRACKED_RUNNING: AtomicBool = AtomicBool::new(false);

#[taskq::task(name = "test.results.untracked")]
async fn untracked(x: i64) -> i64 {
    UNTRACKED_RUNNING.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    x
}

// ---------------------------------------------------------------------------
// Return shapes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_struct_result_round_trips_and_states_follow() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);

    let sent = client
        .scope(async { build_report.delay(42, 12).await })
        .await
        .expect("send");
    // No worker yet: PENDING, nothing ready.
    assert_eq!(sent.state().await.unwrap(), TaskState::Pending);
    assert!(!sent.ready().await.unwrap());
    assert!(!sent.successful().await.unwrap());
    assert!(!sent.failed().await.unwrap());
    assert_eq!(sent.failure().await.unwrap(), None);

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let report = sent.get(WAIT).await.expect("the task succeeds");
    assert_eq!(
        report,
        Report {
            user_id: 42,
            pages: 12,
            title: "report of 42".to_owned()
        }
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Success);
    assert!(sent.ready().await.unwrap());
    assert!(sent.successful().await.unwrap());
    assert!(!sent.failed().await.unwrap());
    assert_eq!(sent.failure().await.unwrap(), None);
    let meta = sent.meta().await.unwrap();
    assert_eq!(meta.task_id, sent.id());
    assert_eq!(
        meta.result,
        json!({"user_id": 42, "pages": 12, "title": "report of 42"})
    );
    assert!(meta.date_done.is_some());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_error_is_a_failure_with_the_rust_type_name() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client
        .send(&build_report, (1, 0), Options::new())
        .await
        .expect("send");
    let err = sent.get(WAIT).await.expect_err("the task fails");
    assert!(matches!(err, Error::TaskFailed(_)), "{err:?}");
    let failure = err.task_failure().expect("a task failure").clone();
    assert_eq!(failure.exc_type(), "ReportError");
    assert_eq!(failure.exc_module(), taskq::RUST_EXC_MODULE);
    assert_eq!(failure.message(), "report 7 cannot be built");
    assert_eq!(failure.traceback(), Some("ReportError { code: 7 }"));
    assert!(!failure.is_timeout() && !failure.is_panic() && !failure.is_revoked());

    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    assert!(sent.ready().await.unwrap());
    assert!(!sent.successful().await.unwrap());
    assert!(sent.failed().await.unwrap());
    assert_eq!(sent.failure().await.unwrap(), Some(failure));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyhow_error_keeps_its_context_and_cause_chain() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client
        .scope(async { archive.delay("/var/data".to_owned()).await })
        .await
        .expect("send");
    let err = sent.get(WAIT).await.expect_err("the task fails");
    let failure = err.task_failure().expect("a task failure");
    assert_eq!(failure.exc_type(), "Error");
    assert_eq!(failure.message(), "cannot archive /var/data");
    let traceback = failure.traceback().expect("a traceback");
    assert!(
        traceback.contains("cannot archive /var/data")
            && traceback.contains("Caused by")
            && traceback.contains("disk unavailable"),
        "{traceback}"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_unit_returns_succeed() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let doubled = client
        .scope(async { double.delay(21).await })
        .await
        .expect("send");
    assert_eq!(doubled.get(WAIT).await.expect("double succeeds"), 42);

    let before = TOUCHED.load(Ordering::SeqCst);
    let touched = client.send(&touch, (5,), Options::new()).await.unwrap();
    let () = touched.get(WAIT).await.expect("touch succeeds");
    assert_eq!(TOUCHED.load(Ordering::SeqCst), before + 5);
    assert_eq!(touched.state().await.unwrap(), TaskState::Success);
    assert_eq!(touched.meta().await.unwrap().result, Value::Null);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_without_arguments_runs() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);

    let sent = client
        .scope(async { ping.delay().await })
        .await
        .expect("send");
    // Python sends `ping.delay()` with an empty argument list; so does taskq.
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    let envelope: Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(envelope["headers"]["argsrepr"], "()");

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let result = sent.get(WAIT).await;
    worker.stop().await;
    assert_eq!(
        result.map_err(|e| e.to_string()).as_deref(),
        Ok("pong"),
        "a task with no arguments must run"
    );
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_times_out_when_no_worker_runs() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let sent = client.send(&double, (1,), Options::new()).await.unwrap();

    let timeout = Duration::from_millis(700);
    let started = Instant::now();
    let err = sent.get(timeout).await.expect_err("nobody runs the task");
    let waited = started.elapsed();
    assert!(matches!(err, Error::Timeout(d) if d == timeout), "{err:?}");
    assert!(waited >= timeout, "gave up early, after {waited:?}");
    assert!(
        waited < timeout + Duration::from_millis(1500),
        "gave up late, after {waited:?}"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Pending);
    // The message is still waiting in the queue.
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_wakes_as_soon_as_the_result_is_stored() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let started = Instant::now();
    let sent = client
        .send(&slow_add, (2, 3, 300), Options::new())
        .await
        .unwrap();
    let sum = sent
        .get(Duration::from_secs(10))
        .await
        .expect("slow_add succeeds");
    let took = started.elapsed();
    assert_eq!(sum, 5);
    assert!(took >= Duration::from_millis(300), "too fast: {took:?}");
    assert!(took < Duration::from_secs(2), "get woke late: {took:?}");
    // The wait's subscription ends after `get` returns, not with it.
    let channel = meta_key(sent.id());
    eventually(Duration::from_secs(5), "no subscriber left", || async {
        let reply: Vec<redis::Value> = query(&server.url(), &["PUBSUB", "NUMSUB", &channel]);
        reply.get(1) == Some(&redis::Value::Int(0))
    })
    .await;
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Handles by id, forget
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_read_by_id_and_forget_makes_them_pending() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client.send(&double, (50,), Options::new()).await.unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 100);

    let by_id = client.result::<Value>(sent.id().to_owned());
    assert_eq!(by_id.id(), sent.id());
    assert_eq!(by_id.state().await.unwrap(), TaskState::Success);
    assert_eq!(by_id.get(Duration::from_secs(1)).await.unwrap(), json!(100));
    let as_string = client.result::<String>(sent.id().to_owned());
    assert!(
        matches!(
            as_string.get(Duration::from_secs(1)).await,
            Err(Error::ResultType(_))
        ),
        "an i64 result does not decode as String"
    );

    let key = meta_key(sent.id());
    assert_eq!(query::<i64>(&server.url_db(1), &["EXISTS", &key]), 1);
    by_id.forget().await.expect("forget");
    assert_eq!(query::<i64>(&server.url_db(1), &["EXISTS", &key]), 0);
    assert_eq!(sent.state().await.unwrap(), TaskState::Pending);
    assert!(!sent.ready().await.unwrap());
    assert!(matches!(
        sent.get(Duration::from_millis(200)).await,
        Err(Error::Timeout(_))
    ));

    // An id nobody ever sent reads as PENDING too.
    let unknown = client.result::<Value>("00000000-0000-4000-8000-000000000000");
    assert_eq!(unknown.state().await.unwrap(), TaskState::Pending);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Ignored results
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_result_attribute_stores_nothing() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);

    let sent = client
        .scope(async { ignored_attr.delay(1).await })
        .await
        .unwrap();
    assert!(matches!(
        sent.get(Duration::from_secs(1)).await,
        Err(Error::ResultIgnored)
    ));
    // The message says so too, for Python workers.
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    let envelope: Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(envelope["headers"]["ignore_result"], json!(true));

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    eventually(WAIT, "the ignored task to run", || async {
        IGNORED_RUNS.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Acked only after its (absent) result would have been stored.
    let url = server.url();
    taskq_tests::wait_until(WAIT, "the message to be acked", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
    assert_eq!(
        query::<i64>(&server.url_db(1), &["EXISTS", &meta_key(sent.id())]),
        0
    );
    assert_eq!(query::<i64>(&server.url_db(1), &["DBSIZE"]), 0);
    assert_eq!(
        client.result::<Value>(sent.id()).state().await.unwrap(),
        TaskState::Pending
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_result_option_stores_nothing() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client
        .send(&ignored_option, (1,), Options::new().ignore_result(true))
        .await
        .unwrap();
    assert!(matches!(
        sent.get(Duration::from_secs(1)).await,
        Err(Error::ResultIgnored)
    ));
    eventually(WAIT, "the ignored task to run", || async {
        OPTION_IGNORED_RUNS.load(Ordering::SeqCst) >= 1
    })
    .await;
    let url = server.url();
    taskq_tests::wait_until(WAIT, "the message to be acked", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
    assert_eq!(
        query::<i64>(&server.url_db(1), &["EXISTS", &meta_key(sent.id())]),
        0
    );

    // The same task without the option does store its result.
    let kept = client
        .send(&ignored_option, (2,), Options::new())
        .await
        .unwrap();
    assert_eq!(kept.get(WAIT).await.unwrap(), 3);
    assert_eq!(
        query::<i64>(&server.url_db(1), &["EXISTS", &meta_key(kept.id())]),
        1
    );
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// STARTED
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_started_reports_started_while_running() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| {
        b.shutdown_grace(GRACE)
            .track_started(true)
            .hostname("itest@results")
    });

    let sent = client.send(&tracked, (9,), Options::new()).await.unwrap();
    eventually(Duration::from_secs(5), "state STARTED", || async {
        sent.state().await.unwrap() == TaskState::Started
    })
    .await;
    assert!(!sent.ready().await.unwrap());
    let meta = sent.meta().await.unwrap();
    assert_eq!(
        meta.result,
        json!({"pid": std::process::id(), "hostname": "itest@results"})
    );
    assert_eq!(meta.date_done, None);
    let stored: String = query(&server.url_db(1), &["GET", &meta_key(sent.id())]);
    assert!(
        stored.starts_with(r#"{"status": "STARTED", "result": {"pid": "#),
        "{stored}"
    );
    assert!(stored.contains(r#""date_done": null"#), "{stored}");

    assert_eq!(sent.get(WAIT).await.unwrap(), 9);
    assert_eq!(sent.state().await.unwrap(), TaskState::Success);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_track_started_a_running_task_reads_pending() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client.send(&untracked, (4,), Options::new()).await.unwrap();
    eventually(WAIT, "the task to start", || async {
        UNTRACKED_RUNNING.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(sent.state().await.unwrap(), TaskState::Pending);
    assert_eq!(sent.get(WAIT).await.unwrap(), 4);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_expire_after_result_expires() {
    let server = RedisServer::start();
    let client = client(&server, |c| {
        two_slots(c);
        c.result_expires = Some(Duration::from_secs(2));
    });
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));

    let sent = client.send(&double, (3,), Options::new()).await.unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 6);
    let stored_at = Instant::now();
    let ttl: i64 = query(&server.url_db(1), &["TTL", &meta_key(sent.id())]);
    assert!((1..=2).contains(&ttl), "TTL {ttl}");
    assert_eq!(sent.state().await.unwrap(), TaskState::Success);

    eventually(Duration::from_secs(5), "the result to expire", || async {
        sent.state().await.unwrap() == TaskState::Pending
    })
    .await;
    let gone_after = stored_at.elapsed();
    assert!(
        gone_after >= Duration::from_millis(900),
        "the result vanished after only {gone_after:?}"
    );
    assert_eq!(
        query::<i64>(&server.url_db(1), &["EXISTS", &meta_key(sent.id())]),
        0
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_kept_a_day_by_default() {
    let server = RedisServer::start();
    let client = client(&server, two_slots);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let sent = client.send(&double, (8,), Options::new()).await.unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 16);
    let ttl: i64 = query(&server.url_db(1), &["TTL", &meta_key(sent.id())]);
    assert!((86_390..=86_400).contains(&ttl), "TTL {ttl}");
    // Results go to the result db, not the broker db.
    assert_eq!(
        query::<i64>(&server.url(), &["EXISTS", &meta_key(sent.id())]),
        0
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_dropped_mid_wait_leaves_no_waiter_or_subscription_behind() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    // Nobody runs these: each get() waits until the caller gives up and drops it.
    let ids: Vec<String> = (0..50).map(|i| format!("never-run-{i}")).collect();
    for id in &ids {
        let pending = client.result::<i64>(id);
        let waited = tokio::time::timeout(Duration::from_millis(20), pending.get(WAIT)).await;
        assert!(waited.is_err(), "the caller gave up first");
    }
    let channels: Vec<String> = ids.iter().map(|id| meta_key(id)).collect();
    eventually(WAIT, "every subscription to end", || async {
        let mut args = vec!["NUMSUB"];
        args.extend(channels.iter().map(String::as_str));
        let counts: Vec<redis::Value> = {
            let mut cmd = redis::cmd("PUBSUB");
            cmd.arg(&args);
            cmd.query(&mut server.connection()).unwrap()
        };
        // [channel, subscribers, channel, subscribers, ...]
        counts
            .chunks(2)
            .all(|pair| matches!(pair[1], redis::Value::Int(0)))
    })
    .await;
    // And the waiters are gone: the next get() on one of them still works.
    let sent = client.send(&double, (21,), Options::new()).await.unwrap();
    let worker = RunningWorker::start(&client, |b| b);
    assert_eq!(sent.get(WAIT).await.unwrap(), 42);
    worker.stop().await;
}
