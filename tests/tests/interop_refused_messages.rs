//! Python Celery producers sending what Celery workers take and taskq workers once refused
//! or lost in silence: compressed bodies, large arguments, custom priority steps; and what
//! taskq still refuses (pickle, messages over its size limit), which Python's
//! `AsyncResult.get()` must then raise at once instead of waiting for its timeout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq::Config;
use taskq_tests::python::{CeleryLine, PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

#[taskq::task(name = "interop.refused.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "interop.refused.length")]
async fn length(text: String) -> usize {
    text.len()
}

/// For one Celery line: its Python environment, a private redis-server and a taskq worker
/// whose configuration `configure` adjusts.
struct Setup {
    python: PythonEnv,
    server: RedisServer,
    worker: RunningWorker,
}

async fn setup(line: CeleryLine, configure: impl FnOnce(&mut Config)) -> Setup {
    let python = PythonEnv::load(line).await;
    let server = RedisServer::start();
    let client = client(&server, configure);
    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    Setup {
        python,
        server,
        worker,
    }
}

impl Setup {
    /// Sends `calls` with Python's driver and reads each result with `AsyncResult.get()`;
    /// also returns how long the whole run took.
    async fn drive(&self, calls: Value) -> (Vec<Value>, Duration) {
        let (broker, backend) = (self.server.url(), self.server.url_db(1));
        let py = self.python.clone();
        let started = Instant::now();
        let results = tokio::task::spawn_blocking(move || py.drive(&broker, &backend, &calls))
            .await
            .unwrap();
        (results, started.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_and_2_mb_arguments_run_as_in_celery() {
    let big = "x".repeat(2_000_000);
    let calls = json!([
        {"task": "interop.refused.add", "args": [1, 2], "options": {"compression": "gzip"}},
        {"task": "interop.refused.add", "args": [3, 4], "options": {"compression": "zlib"}},
        {"task": "interop.refused.add", "args": [5, 6], "options": {"compression": "bzip2"}},
        {"task": "interop.refused.add", "args": [7, 8], "options": {"compression": "lzma"}},
        {"task": "interop.refused.length", "args": [big]},
        {"task": "interop.refused.length", "args": [big], "options": {"compression": "gzip"}},
    ]);
    for line in CELERY_LINES {
        let setup = setup(line, |_| {}).await;
        let version = setup.python.celery_version();
        let (results, _) = setup.drive(calls.clone()).await;
        let got: Vec<Value> = results.iter().map(|r| r["result"].clone()).collect();
        assert_eq!(
            got,
            [3, 7, 11, 15, 2_000_000, 2_000_000].map(|n| json!(n)),
            "Celery {version}: {:?}",
            results.iter().map(|r| &r["error"]).collect::<Vec<_>>()
        );
        setup.worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickle_and_oversized_calls_fail_at_once_in_python() {
    // Each call waits up to 15 s: a caller left waiting would take 30 s or more.
    let calls = json!([
        {"task": "interop.refused.add", "args": [1, 2], "options": {"serializer": "pickle"}, "timeout": 15},
        {"task": "interop.refused.length", "args": ["y".repeat(1_500_000)], "timeout": 15},
    ]);
    for line in CELERY_LINES {
        let setup = setup(line, |config| config.max_message_size = 1 << 20).await;
        let version = setup.python.celery_version();
        let (results, took) = setup.drive(calls.clone()).await;
        let error = |i: usize| &results[i]["error"];
        assert_eq!(
            (error(0)["module"].as_str(), error(0)["type"].as_str()),
            (Some("kombu.exceptions"), Some("ContentDisallowed")),
            "Celery {version}: {results:?}"
        );
        assert!(
            error(0)["message"]
                .as_str()
                .is_some_and(|m| m.contains("pickle")),
            "Celery {version}: {results:?}"
        );
        assert_eq!(
            error(1)["type"],
            "MessageTooLarge",
            "Celery {version}: {results:?}"
        );
        assert!(
            error(1)["message"]
                .as_str()
                .is_some_and(|m| m.contains("over the limit of 1048576")),
            "Celery {version}: {results:?}"
        );
        assert!(
            results.iter().all(|r| r["state"] == "FAILURE"),
            "Celery {version}: {results:?}"
        );
        assert!(took < Duration::from_secs(12), "Celery {version}: {took:?}");
        setup.worker.stop().await;
    }
}

/// A workflow continuation a taskq worker cannot run is refused, not dropped: a signature of
/// a kind registered by a Python application (`NotImplementedError`) or one that is not a
/// signature at all (`InvalidTaskError`). Python's `get()` raises at once, naming what was
/// wrong, and the message waits in the dead-letter list. (Celery's own kinds run: see
/// `interop_canvas.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_continuations_taskq_cannot_run_fail_at_once_and_are_kept_as_dead_letters() {
    let custom = json!({"task": "interop.refused.add", "args": [10], "kwargs": {}, "options": {},
                        "subtask_type": "my_custom_kind", "immutable": false});
    let calls = json!([
        {"task": "interop.refused.add", "args": [1, 2], "options": {"link": custom}, "timeout": 15},
        {"task": "interop.refused.add", "args": [3, 4], "options": {"chain": [5]}, "timeout": 15},
        {"task": "interop.refused.add", "args": [5, 6], "timeout": 15},
    ]);
    let expected = [
        ("builtins", "NotImplementedError", "my_custom_kind"),
        ("celery.exceptions", "InvalidTaskError", "embed `chain`"),
    ];
    for line in CELERY_LINES {
        let setup = setup(line, |_| {}).await;
        let version = setup.python.celery_version();
        let (results, took) = setup.drive(calls.clone()).await;
        for (i, (module, exc_type, says)) in expected.iter().enumerate() {
            let error = &results[i]["error"];
            assert_eq!(
                (error["module"].as_str(), error["type"].as_str()),
                (Some(*module), Some(*exc_type)),
                "Celery {version}: {results:?}"
            );
            assert!(
                error["message"].as_str().is_some_and(|m| m.contains(says)),
                "Celery {version}: {results:?}"
            );
        }
        assert_eq!(results[2]["result"], 11, "Celery {version}: {results:?}");
        assert!(took < Duration::from_secs(12), "Celery {version}: {took:?}");
        let client = client(&setup.server, |_| {});
        let dead = client.broker().dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 2, "Celery {version}: {dead:?}");
        for (_, _, says) in expected {
            assert!(
                dead.iter().any(|d| d.reason.contains(says)),
                "Celery {version}: {dead:?}"
            );
        }
        setup.worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_priority_steps_are_read_where_celery_writes_them() {
    // The steps Celery's documentation suggests for fine-grained priorities on Redis.
    let steps: Vec<u8> = (0..=9).collect();
    let calls = json!([1, 5, 7, 0, 9].map(|priority| json!({
        "task": "interop.refused.add", "args": [priority, 100],
        "options": {"priority": priority}, "timeout": 15,
    })));
    for line in CELERY_LINES {
        let setup = setup(line, |config| config.priority_steps = steps.clone()).await;
        let version = setup.python.celery_version();
        let (broker, backend) = (setup.server.url(), setup.server.url_db(1));
        let results = tokio::task::spawn_blocking({
            let py = setup.python.clone();
            let calls = calls.clone();
            move || {
                let options = (
                    "BROKER_TRANSPORT_OPTIONS",
                    r#"{"priority_steps": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}"#,
                );
                py.drive_with_env(&broker, &backend, &[options], &calls)
            }
        })
        .await
        .unwrap();
        let got: Vec<Value> = results.iter().map(|r| r["result"].clone()).collect();
        assert_eq!(
            got,
            [101, 105, 107, 100, 109].map(|n| json!(n)),
            "Celery {version}: {results:?}"
        );
        setup.worker.stop().await;
    }
}
