//! What a worker reports at start, before "worker ready": two tasks registered under one name
//! (naming both functions), and a task whose queue the worker does not consume (naming the
//! `-Q` to add); and what a `NotRegistered` failure says. The empty registry is in
//! `worker_cli.rs` (it needs a binary without tasks).
//!
//! The test installs its own log subscriber, which the worker keeps (it installs its default
//! one only when the application has none), and reads the worker's lines from it.

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::Duration;

use taskq::{Options, Worker};
use taskq_tests::worker::{client, eventually};
use taskq_tests::RedisServer;

mod a {
    #[taskq::task(name = "test.startup.same")]
    pub async fn same() -> String {
        "a".to_owned()
    }
}

mod b {
    #[taskq::task(name = "test.startup.same")]
    pub async fn same() -> String {
        "b".to_owned()
    }
}

#[taskq::task(name = "test.startup.report", queue = "test-startup-reports")]
async fn report() {}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// Runs a worker on `server` consuming `queues` until it has logged "worker ready" under
/// `node`, then stops it; returns the log lines it wrote.
async fn start_and_stop(server: &RedisServer, node: &str, queues: &[&str]) -> String {
    let before = logs().len();
    let worker = Worker::builder(client(server, |_| {}))
        .banner(false)
        .hostname(node)
        .queues(queues.iter().copied())
        .build();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let ready = format!("worker ready node={node}");
    eventually(Duration::from_secs(20), "worker ready", || async {
        logs()[before..].contains(&ready)
    })
    .await;
    stop.shutdown();
    running.await.unwrap().unwrap();
    logs()[before..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_names_duplicate_tasks_and_queues_the_worker_does_not_consume() {
    capture_logs();
    let server = RedisServer::start();

    // Both functions are named, by their paths; the registry keeps one, the same each build.
    let kept = taskq::registry::lookup("test.startup.same").unwrap();
    assert_eq!(kept.function, "worker_startup_reports::a::same");
    let duplicates = taskq::registry::duplicates();
    assert_eq!(duplicates.len(), 1, "{duplicates:?}");
    assert_eq!(
        duplicates[0].map(|e| e.function),
        [
            "worker_startup_reports::a::same",
            "worker_startup_reports::b::same"
        ]
    );

    let log = start_and_stop(&server, "reports-1@test", &["celery"]).await;
    println!("{log}");
    let duplicate = "two tasks are registered under the name \"test.startup.same\": \
                     worker_startup_reports::a::same and worker_startup_reports::b::same; \
                     this worker runs worker_startup_reports::a::same only";
    assert!(log.contains(duplicate), "{log}");
    let unconsumed = "queue \"test-startup-reports\" is not consumed by this worker (it \
                      consumes celery), yet tasks registered here are sent to it: \
                      test.startup.report; add it with -Q/--queues celery,test-startup-reports";
    assert!(log.contains(unconsumed), "{log}");
    // Reported before the worker says it is ready.
    let ready = log.find("worker ready").unwrap();
    assert!(log.find(duplicate).unwrap() < ready && log.find(unconsumed).unwrap() < ready);
    assert!(!log.contains("no tasks registered"), "{log}");

    // A worker that consumes the task's queue does not warn about it.
    let log = start_and_stop(
        &server,
        "reports-2@test",
        &["celery", "test-startup-reports"],
    )
    .await;
    assert!(!log.contains("is not consumed"), "{log}");
    assert!(log.contains(duplicate), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_registered_failure_says_how_to_link_the_task() {
    capture_logs();
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = Worker::builder(client.clone())
        .banner(false)
        .unknown_task_retries(0)
        .build();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let sent = client
        .send_by_name(
            "test.startup.nobody_has_it",
            vec![],
            serde_json::Map::new(),
            Options::new(),
        )
        .await
        .unwrap();
    let err = sent.get(Duration::from_secs(20)).await.unwrap_err();
    let failure = err.task_failure().expect("a task failure");
    assert!(failure.is_not_registered(), "{err}");
    // Celery's message (the name), and the hint in the traceback.
    assert!(
        failure.message().contains("test.startup.nobody_has_it"),
        "{err}"
    );
    let traceback = failure.traceback().unwrap_or_default();
    assert!(
        traceback.contains("reference it from main (e.g. `let _ = &my_tasks::send_email;`)"),
        "{traceback}"
    );
    assert!(
        logs().contains("received a task that is not registered: A taskq worker knows"),
        "{}",
        logs()
    );
    stop.shutdown();
    running.await.unwrap().unwrap();
}
