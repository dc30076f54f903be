//! A taskq worker with a short visibility timeout shares Redis with a Python Celery worker
//! that runs a long `acks_late` task. The Python worker renews no taskq lease, so taskq's
//! recovery judges its message by kombu's visibility timeout
//! (`celery_visibility_timeout`), not by taskq's own: the long Python task is not taken from
//! the live Python worker and runs once.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};
use taskq::{Client, Options};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

const TASK_SECS: f64 = 3.0;

/// Sends `py.sleep_logged` to the Python worker's queue and waits for its result.
async fn run_long_python_task(client: &Client, ledger: &Path) {
    let args = vec![json!(TASK_SECS), json!(ledger.to_str().unwrap())];
    let sent = client
        .send_by_name(
            "py.sleep_logged",
            args,
            Map::new(),
            Options::new().queue("pylong"),
        )
        .await
        .unwrap();
    let value: Value = sent.get(Duration::from_secs(30)).await.unwrap();
    assert_eq!(value, json!(TASK_SECS));
}

fn runs(ledger: &Path) -> usize {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskq_recovery_leaves_a_live_python_workers_long_task_alone() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, backend) = (server.url(), server.url_db(1));
    let log = dir.path().join("celery.log");
    let _python_worker = tokio::task::spawn_blocking(move || {
        python.start_worker(&broker, &backend, &["pylong"], &log)
    })
    .await
    .unwrap();
    let client = client(&server, |_| {});

    // A taskq worker whose own leases lapse after 0.5 s runs recovery every 0.2 s while the
    // Python task runs for 3 s; Python-held messages keep kombu's 3600 s.
    let patient = RunningWorker::start(&client, |b| {
        b.visibility_timeout(Duration::from_millis(500))
    });
    let once = dir.path().join("once.log");
    run_long_python_task(&client, &once).await;
    assert_eq!(runs(&once), 1, "the Python task ran once");
    patient.stop().await;

    // The same with kombu's timeout set below the task's run time: recovery takes the
    // message from the live Python worker, which runs it again. This is the duplicate the
    // setting prevents, and shows that the check above can fail.
    let impatient = RunningWorker::start(&client, |b| {
        b.visibility_timeout(Duration::from_millis(500))
            .celery_visibility_timeout(Duration::from_secs(1))
    });
    let twice = dir.path().join("twice.log");
    run_long_python_task(&client, &twice).await;
    taskq_tests::wait_until(Duration::from_secs(15), "the second run", || {
        runs(&twice) >= 2
    });
    impatient.stop().await;
}
