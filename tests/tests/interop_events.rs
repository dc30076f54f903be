//! Celery events from a taskq worker, read by real Flower: the worker shows up in Flower's
//! `/api/workers` (Flower asks it through remote control) and its tasks in `/api/tasks`
//! (built from `task-*` events on `celeryev`).

use std::fs::File;
use std::time::{Duration, Instant};

use serde_json::Value;
use taskq::Options;
use taskq_tests::python::{PythonEnv, FLOWER};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::{file_tail, free_port, wait_for_port, ChildGuard, RedisServer};

const NODE: &str = "taskq@events-test";
const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.events.mul")]
async fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[taskq::task(name = "test.events.fail")]
async fn fail() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("no disk"))
}

/// GETs `path` from Flower and parses the JSON; `None` on any error (Flower may be starting).
async fn get_json(http: &reqwest::Client, port: u16, path: &str) -> Option<Value> {
    let response = http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Polls `path` until `check` accepts the JSON, returning it.
async fn poll(
    http: &reqwest::Client,
    port: u16,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(v) = get_json(http, port, path).await {
            if check(&v) {
                return v;
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("Flower's {path} never showed what was expected; last answer: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flower_sees_the_taskq_worker_and_its_tasks() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(FLOWER))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flower.log");
    let port = free_port();
    let log_file = File::create(&log).unwrap();
    let _flower = ChildGuard::spawn(
        python
            .command(&server.url(), &server.url_db(1))
            .env("FLOWER_UNAUTHENTICATED_API", "true")
            .args(["-m", "celery", "-A", "celery_app", "flower"])
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file),
    );
    tokio::task::spawn_blocking(move || wait_for_port(port, WAIT))
        .await
        .unwrap();

    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.hostname(NODE).send_events(true));
    // Flower subscribes to events at start-up: the tasks are sent once it has seen the
    // worker's first event, so that it sees theirs too.
    let http = reqwest::Client::new();
    poll(&http, port, "/api/workers?status=1", |v| {
        v.get(NODE).is_some()
    })
    .await;
    let product = client.send(&mul, (6, 7), Options::new()).await.unwrap();
    assert_eq!(product.get(WAIT).await.unwrap(), 42);
    let failed = client.send(&fail, (), Options::new()).await.unwrap();
    assert!(failed.get(WAIT).await.is_err());

    let workers = poll(&http, port, "/api/workers?refresh=1", |v| {
        v.get(NODE).is_some()
    })
    .await;
    let info = &workers[NODE];
    assert_eq!(info["stats"]["pool"]["max-concurrency"], 1, "{info}");
    assert!(
        info["registered"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "test.events.mul")),
        "{info}"
    );

    let tasks = poll(&http, port, "/api/tasks", |v| {
        v.get(product.id()).is_some_and(|t| t["state"] == "SUCCESS")
            && v.get(failed.id()).is_some_and(|t| t["state"] == "FAILURE")
    })
    .await;
    let task = &tasks[product.id()];
    assert_eq!(task["name"], "test.events.mul", "{task}");
    assert_eq!(task["result"], "42");
    assert_eq!(task["worker"], NODE);
    assert_eq!(task["args"], "(6, 7)");
    assert!(
        tasks[failed.id()]["exception"]
            .as_str()
            .is_some_and(|e| e.contains("no disk")),
        "{}",
        tasks[failed.id()]
    );

    // Heartbeats keep the worker online in Flower's event state.
    let status = poll(&http, port, "/api/workers?status=1", |v| {
        v.get(NODE).is_some()
    })
    .await;
    assert_eq!(status[NODE], true, "{status}\n{}", file_tail(&log, 20));
    worker.stop().await;
}
