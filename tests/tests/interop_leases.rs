//! A taskq worker with a short visibility timeout shares Redis with a Python Celery worker
//! that runs a long `acks_late` task. The Python worker renews no taskq lease, so taskq's
//! recovery judges its message by kombu's visibility timeout
//! (`celery_visibility_timeout`), not by taskq's own: the long Python task is not taken from
//! the live Python worker and runs once. By default taskq never takes back a message a Python
//! worker holds: kombu restores its own.

use std::path::Path;
use std::time::Duration;
use taskq_tests::keys;

use serde_json::{json, Map, Value};
use taskq::{Client, Options};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::{ChildGuard, RedisServer};

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

/// A Redis, a temporary directory (the worker's log is `celery.log` there) and a Celery 5.6
/// prefork worker on `queue`, with `envs` for the app.
async fn python_worker_on(
    queue: &'static str,
    envs: &'static [(&'static str, &'static str)],
) -> (RedisServer, tempfile::TempDir, ChildGuard) {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, backend) = (server.url(), server.url_db(1));
    let log = dir.path().join("celery.log");
    let worker = tokio::task::spawn_blocking(move || {
        python.start_worker_with(&broker, &backend, &[queue], &log, envs)
    })
    .await
    .unwrap();
    (server, dir, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskq_recovery_leaves_a_live_python_workers_long_task_alone() {
    let (server, dir, _python_worker) = python_worker_on("pylong", &[]).await;
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

/// A Celery app that raised kombu's visibility timeout (what Celery users do for long ETAs)
/// holds an ETA task in `unacked` until it is due. taskq's recovery, by default, never takes
/// it back, however long it has been held: only the Python side knows its timeout, and
/// kombu's own restore applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskq_never_takes_an_eta_task_from_a_python_worker_by_default() {
    let (server, dir, _python_worker) =
        python_worker_on("pyeta", &[("VISIBILITY_TIMEOUT", "36000")]).await;
    let client = client(&server, |_| {});
    let ledger = dir.path().join("eta.log");
    let sent = client
        .send_by_name(
            "py.sleep_logged",
            vec![json!(0.1), json!(ledger.to_str().unwrap())],
            Map::new(),
            Options::new()
                .queue("pyeta")
                .countdown(Duration::from_secs(6)),
        )
        .await
        .unwrap();
    let url = server.url();
    taskq_tests::wait_until(
        Duration::from_secs(15),
        "the Python worker to hold it",
        || query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 1,
    );
    // Held for two hours as far as its index says: past any timeout taskq could guess, well
    // within the app's own ten hours.
    let tag: Vec<String> = query(&url, &["HKEYS", &keys::broker().unacked()]);
    let (now, _): (i64, i64) = query(&url, &["TIME"]);
    let two_hours_ago = (now - 7200).to_string();
    taskq_tests::redis_cmd(
        &url,
        &[
            "ZADD",
            &keys::broker().unacked_index(),
            "XX",
            &two_hours_ago,
            &tag[0],
        ],
    );

    // A taskq worker with the defaults runs recovery every 0.2 s until the task is due.
    let worker = RunningWorker::start(&client, |b| {
        b.visibility_timeout(Duration::from_millis(800))
    });
    let value: Value = sent.get(Duration::from_secs(30)).await.unwrap();
    assert_eq!(value, json!(0.1));
    // A copy taken back and fetched again would be due at the same time: give it its turn.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs(&ledger), 1, "the ETA task ran once");
    worker.stop().await;
}
