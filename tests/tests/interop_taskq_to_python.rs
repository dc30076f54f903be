//! taskq producers → a real Python `celery worker` → results read by taskq's `AsyncResult`,
//! against every Celery line the tests cover.

use std::time::{Duration, Instant, SystemTime};
use taskq_tests::keys;

use serde_json::{json, Map, Value};
use taskq::{AsyncResult, Client, Error, Options, TaskFailure, TaskState};
use taskq_tests::python::{PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, meta_key, query};
use taskq_tests::{ChildGuard, RedisServer};

const WAIT: Duration = Duration::from_secs(20);

/// A redis-server, a Python worker on `celery` and `pyq`, and a taskq client, per Celery line.
struct Fleet {
    server: RedisServer,
    client: Client,
    version: String,
    _python_worker: ChildGuard,
    _dir: tempfile::TempDir,
}

async fn fleets() -> Vec<Fleet> {
    let mut fleets = Vec::new();
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let (broker, backend, log) = (
            server.url(),
            server.url_db(1),
            dir.path().join("celery.log"),
        );
        let py = python.clone();
        let worker = tokio::task::spawn_blocking(move || {
            py.start_worker(&broker, &backend, &["celery", "pyq"], &log)
        })
        .await
        .unwrap();
        fleets.push(Fleet {
            client: client(&server, |_| {}),
            server,
            version: python.celery_version(),
            _python_worker: worker,
            _dir: dir,
        });
    }
    fleets
}

async fn call(
    fleet: &Fleet,
    task: &str,
    args: Value,
    kwargs: Value,
    options: Options,
) -> AsyncResult<Value> {
    let args = args.as_array().cloned().unwrap_or_default();
    let kwargs: Map<String, Value> = kwargs.as_object().cloned().unwrap_or_default();
    fleet
        .client
        .send_by_name(task, args, kwargs, options)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workers_run_taskq_calls_and_taskq_reads_the_results() {
    let shapes = json!({
        "nested": {"list": [1, [2, [3, {"deep": null}]]], "empty": {}},
        "big": 1000000000000000000000000000000u128,
        "float": 3.25,
        "unicode": "naïve café — 日本語 😀",
    });
    for fleet in fleets().await {
        let v = &fleet.version;
        let sum = call(&fleet, "py.add", json!([2, 3]), json!({}), Options::new()).await;
        let started = Instant::now();
        assert_eq!(sum.get(WAIT).await.unwrap(), 5, "Celery {v}");
        // get() wakes on Celery's PUBLISH: far below the 1 s a poll loop would add.
        println!(
            "Celery {v}: py.add round trip read in {:?}",
            started.elapsed()
        );

        let by_name = call(
            &fleet,
            "py.add",
            json!([]),
            json!({"x": 10, "y": 5}),
            Options::new(),
        )
        .await;
        assert_eq!(
            by_name.get(WAIT).await.unwrap(),
            15,
            "Celery {v}: keyword arguments"
        );

        let echoed = call(
            &fleet,
            "py.echo",
            json!([shapes.clone()]),
            json!({"k": "v"}),
            Options::new(),
        )
        .await;
        assert_eq!(
            echoed.get(WAIT).await.unwrap(),
            json!({"args": [shapes.clone()], "kwargs": {"k": "v"}}),
            "Celery {v}: JSON shapes"
        );

        // kombu's tagged values come back as their plain forms.
        let typed = call(
            &fleet,
            "py.typed_values",
            json!([]),
            json!({}),
            Options::new(),
        )
        .await;
        assert_eq!(
            typed.get(WAIT).await.unwrap(),
            json!({"datetime": "2024-05-01T12:00:00+00:00", "date": "2024-01-02", "time": "03:04:05",
                   "decimal": "1.5", "uuid": "12345678-1234-5678-1234-567812345678", "bytes": "abc"}),
            "Celery {v}: tagged values"
        );

        let queued = call(
            &fleet,
            "py.add",
            json!([1, 1]),
            json!({}),
            Options::new().queue("pyq").priority(9),
        )
        .await;
        assert_eq!(
            queued.get(WAIT).await.unwrap(),
            2,
            "Celery {v}: named queue and priority"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_failures_reach_taskq_with_type_message_and_traceback() {
    for fleet in fleets().await {
        let v = &fleet.version;
        let boom = call(
            &fleet,
            "py.boom",
            json!(["bad thing"]),
            json!({}),
            Options::new(),
        )
        .await;
        let err = boom.get(WAIT).await.unwrap_err();
        let failure = err
            .task_failure()
            .unwrap_or_else(|| panic!("Celery {v}: {err}"));
        assert_eq!(
            (failure.exc_type(), failure.exc_module()),
            ("ValueError", "builtins"),
            "Celery {v}"
        );
        assert_eq!(failure.message(), "bad thing, 42", "Celery {v}");
        assert!(
            failure.traceback().unwrap().contains("ValueError"),
            "Celery {v}: {:?}",
            failure.traceback()
        );
        assert_eq!(
            boom.state().await.unwrap(),
            TaskState::Failure,
            "Celery {v}"
        );
        assert!(boom.failed().await.unwrap(), "Celery {v}");

        let wrong = call(
            &fleet,
            "py.add",
            json!(["only one"]),
            json!({}),
            Options::new(),
        )
        .await;
        let failure = wrong
            .get(WAIT)
            .await
            .unwrap_err()
            .task_failure()
            .cloned()
            .unwrap();
        assert_eq!(failure.exc_type(), "TypeError", "Celery {v}: {failure}");

        // Python's own retries: the retries header counts them, taskq reads the final result.
        let flaky = call(&fleet, "py.flaky", json!([2]), json!({}), Options::new()).await;
        assert_eq!(
            flaky.get(WAIT).await.unwrap(),
            2,
            "Celery {v}: retried twice"
        );

        let slow = call(
            &fleet,
            "py.sleep",
            json!([10]),
            json!({}),
            Options::new().time_limit(Duration::from_secs(1)),
        )
        .await;
        let failure = slow
            .get(WAIT)
            .await
            .unwrap_err()
            .task_failure()
            .cloned()
            .unwrap();
        assert!(
            failure.is_timeout(),
            "Celery {v}: [hard, soft] time limit not applied: {failure}"
        );

        // The soft limit travels as the header's second value; Celery raises
        // SoftTimeLimitExceeded in the task, which stores it as taskq does.
        let soft = call(
            &fleet,
            "py.sleep",
            json!([3]),
            json!({}),
            Options::new()
                .soft_time_limit(Duration::from_secs(1))
                .time_limit(Duration::from_secs(10)),
        )
        .await;
        let failure = soft
            .get(WAIT)
            .await
            .unwrap_err()
            .task_failure()
            .cloned()
            .unwrap();
        assert!(
            failure.is_soft_timeout(),
            "Celery {v}: soft time limit not applied: {failure}"
        );
        let ours = TaskFailure::soft_time_limit_exceeded(1.0);
        assert_eq!(
            (failure.exc_module(), failure.message()),
            (ours.exc_module(), ours.message()),
            "Celery {v}: stored as Celery stores it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_eta_expires_and_ignore_result_are_honoured_by_python() {
    for fleet in fleets().await {
        let v = &fleet.version;
        let sent = Instant::now();
        let later = call(
            &fleet,
            "py.add",
            json!([1, 2]),
            json!({}),
            Options::new().countdown(Duration::from_millis(1500)),
        )
        .await;
        assert_eq!(later.get(WAIT).await.unwrap(), 3, "Celery {v}");
        assert!(
            sent.elapsed() >= Duration::from_millis(1500),
            "Celery {v}: countdown ignored ({:?})",
            sent.elapsed()
        );

        let at = SystemTime::now() + Duration::from_millis(1200);
        let sent = Instant::now();
        let eta = call(
            &fleet,
            "py.add",
            json!([2, 2]),
            json!({}),
            Options::new().eta(at),
        )
        .await;
        assert_eq!(eta.get(WAIT).await.unwrap(), 4, "Celery {v}");
        assert!(
            sent.elapsed() >= Duration::from_millis(1100),
            "Celery {v}: eta ignored ({:?})",
            sent.elapsed()
        );

        let expired = call(
            &fleet,
            "py.add",
            json!([1, 1]),
            json!({}),
            Options::new().expires_at(SystemTime::now() - Duration::from_secs(5)),
        )
        .await;
        let failure = expired
            .get(WAIT)
            .await
            .unwrap_err()
            .task_failure()
            .cloned()
            .unwrap();
        assert!(failure.is_revoked(), "Celery {v}: {failure}");
        assert_eq!(
            expired.state().await.unwrap(),
            TaskState::Revoked,
            "Celery {v}"
        );

        let ignored = call(
            &fleet,
            "py.add",
            json!([5, 5]),
            json!({}),
            Options::new().ignore_result(true),
        )
        .await;
        assert!(
            matches!(ignored.get(WAIT).await, Err(Error::ResultIgnored)),
            "Celery {v}"
        );
        // It still runs: a task sent after it on the same queue finishes, and no result is kept.
        let marker = call(&fleet, "py.add", json!([0, 0]), json!({}), Options::new()).await;
        marker.get(WAIT).await.unwrap();
        let stored: Option<String> =
            query(&fleet.server.url_db(1), &["GET", &meta_key(ignored.id())]);
        assert_eq!(stored, None, "Celery {v}: ignore_result stored a result");
    }
}

/// A Rust task, routed to its own queue so that Python workers never see it.
#[taskq::task(name = "rs.mul", queue = "rust")]
async fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_splits_work_by_queue() {
    for fleet in fleets().await {
        let v = &fleet.version;
        // Python workers consume `celery` and `pyq`; the taskq worker consumes `rust`.
        let rust_worker = taskq_tests::worker::RunningWorker::start(&fleet.client, |b| {
            b.concurrency(4).queues(["rust"])
        });
        let mut python_calls = Vec::new();
        let mut rust_calls = Vec::new();
        for i in 0..10i64 {
            python_calls
                .push(call(&fleet, "py.add", json!([i, 1]), json!({}), Options::new()).await);
            rust_calls.push(
                fleet
                    .client
                    .send(&mul, (i, 3), Options::new())
                    .await
                    .unwrap(),
            );
        }
        for (i, (py, rs)) in python_calls.iter().zip(&rust_calls).enumerate() {
            let i = i as i64;
            assert_eq!(
                py.get(WAIT).await.unwrap(),
                json!(i + 1),
                "Celery {v}: py.add {i}"
            );
            assert_eq!(rs.get(WAIT).await.unwrap(), i * 3, "Celery {v}: rs.mul {i}");
        }
        let dead: i64 = query(
            &fleet.server.url(),
            &["LLEN", &keys::broker().dead_letter()],
        );
        assert_eq!(
            dead, 0,
            "Celery {v}: nothing is dead-lettered when work is routed"
        );
        rust_worker.stop().await;
    }
}
