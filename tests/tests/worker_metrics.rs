//! Prometheus metrics: a worker given an address serves them; they are scraped over HTTP and
//! read with the Prometheus project's own OpenMetrics parser (Python's `prometheus_client`),
//! and the counters match the tasks that ran: successes, failures, a retry, a revoke and a
//! dead letter, by task name, with run times and the gauges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskq::{Client, Options};
use taskq_tests::python::{PythonEnv, FLOWER};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.metrics.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.metrics.fail")]
async fn fail() -> Result<(), String> {
    Err("no".to_owned())
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[taskq::task(name = "test.metrics.flaky", max_retries = 1, retry_backoff = 0.05)]
async fn flaky() -> Result<u32, String> {
    match FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) {
        0 => Err("first run fails".to_owned()),
        n => Ok(n),
    }
}

/// `metric name → labels (as "k=v,…") → value`, as the OpenMetrics parser reads `url`.
fn scrape(python: &PythonEnv, url: &str) -> HashMap<String, HashMap<String, f64>> {
    const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1]).read().decode()
out = {}
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        out.setdefault(sample.name, {})[labels] = sample.value
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python.python())
        .args(["-c", PARSE, url])
        .output()
        .expect("cannot run python");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the scrape:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value(metrics: &HashMap<String, HashMap<String, f64>>, name: &str, labels: &str) -> f64 {
    metrics
        .get(name)
        .and_then(|samples| samples.get(labels))
        .copied()
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {:?}", metrics.get(name)))
}

fn start_worker(client: &Client, addr: std::net::SocketAddr) -> RunningWorker {
    RunningWorker::start(client, |b| b.metrics_addr(addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_tasks_that_ran() {
    let python = PythonEnv::load(FLOWER).await;
    let server = RedisServer::start();
    let client = client(&server, |c| {
        c.concurrency = 3;
        c.unknown_task_retries = 0;
    });
    // Revoked before any worker runs: discarded when fetched.
    let revoked = client.send(&add, (0, 0), Options::new()).await.unwrap();
    client.revoke(revoked.id()).await.unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", taskq_tests::free_port())
        .parse()
        .unwrap();
    let worker = start_worker(&client, addr);

    let mut sums = Vec::new();
    for i in 0..5 {
        sums.push(client.send(&add, (i, 1), Options::new()).await.unwrap());
    }
    let fails = [
        client.send(&fail, (), Options::new()).await.unwrap(),
        client.send(&fail, (), Options::new()).await.unwrap(),
    ];
    let flaky_run = client.send(&flaky, (), Options::new()).await.unwrap();
    let nobody = client
        .send_by_name(
            "test.metrics.nobody",
            vec![],
            Default::default(),
            Options::new(),
        )
        .await
        .unwrap();
    for sum in &sums {
        sum.get(WAIT).await.unwrap();
    }
    for failed in &fails {
        assert!(failed.get(WAIT).await.is_err());
    }
    assert_eq!(flaky_run.get(WAIT).await.unwrap(), 1);
    assert!(nobody.get(WAIT).await.is_err());
    assert!(revoked.get(WAIT).await.is_err());

    let url = format!("http://{addr}/metrics");
    let metrics = scrape(&python, &url);
    let task = |name: &str| format!("task=test.metrics.{name}");
    assert_eq!(
        value(&metrics, "taskq_tasks_received_total", &task("add")),
        6.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_succeeded_total", &task("add")),
        5.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_revoked_total", &task("add")),
        1.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_failed_total", &task("fail")),
        2.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_received_total", &task("flaky")),
        2.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_retried_total", &task("flaky")),
        1.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_succeeded_total", &task("flaky")),
        1.0
    );
    assert_eq!(
        value(&metrics, "taskq_tasks_dead_lettered_total", &task("nobody")),
        1.0
    );
    assert_eq!(
        value(&metrics, "taskq_task_runtime_seconds_count", &task("add")),
        5.0
    );
    assert_eq!(
        value(&metrics, "taskq_task_wait_seconds_count", &task("fail")),
        2.0
    );
    assert!(value(&metrics, "taskq_task_runtime_seconds_sum", &task("add")) < 1.0);
    assert_eq!(value(&metrics, "taskq_tasks_running", ""), 0.0);
    assert_eq!(value(&metrics, "taskq_worker_slots", ""), 3.0);
    assert_eq!(value(&metrics, "taskq_broker_errors_total", ""), 0.0);

    // Anything but /metrics is not found.
    let other = reqwest::get(format!("http://{addr}/other")).await.unwrap();
    assert_eq!(other.status(), 404);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_metrics_address_is_taken_does_not_start() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let worker = taskq::Worker::builder(client).metrics_addr(addr).build();
    let refused = worker.run_until(std::future::pending()).await.unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("metrics"),
        "{text}"
    );
}

/// The fleet's queue depths, once per fleet: `taskq metrics --listen` serves them from Redis
/// at each scrape (and `taskq metrics` prints them once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_the_fleets_queue_depths() {
    let python = PythonEnv::load(FLOWER).await;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    for i in 0..3 {
        client
            .send(&add, (i, 1), Options::new().queue("reports"))
            .await
            .unwrap();
    }
    let later = Options::new()
        .queue("reports")
        .countdown(Duration::from_secs(600));
    client.send(&add, (9, 9), later).await.unwrap();
    client
        .send(&add, (1, 1), Options::new().queue("emails"))
        .await
        .unwrap();
    let pause = taskq::control::ControlOptions::new().timeout(Duration::from_millis(200));
    client
        .control()
        .pause_queue("emails", &pause)
        .await
        .unwrap();

    let printed = taskq_tests::taskq_cli::taskq(&server, &["metrics"])
        .await
        .success();
    assert!(
        printed
            .stdout
            .contains("taskq_queue_messages{queue=\"reports\",state=\"waiting\"} 4"),
        "{}",
        printed.stdout
    );

    let port = taskq_tests::free_port();
    let mut cmd = std::process::Command::new(taskq_tests::taskq_cli::taskq_binary());
    cmd.args(["-b", &server.url(), "metrics", "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    let exporter = taskq_tests::ChildGuard::spawn(&mut cmd);
    taskq_tests::wait_for_port(port, WAIT);
    let metrics = scrape(&python, &format!("http://127.0.0.1:{port}/metrics"));
    let queue = |q: &str, state: &str| format!("queue={q},state={state}");
    // The countdown is still in the queue: a worker parks it when it fetches it.
    assert_eq!(
        value(
            &metrics,
            "taskq_queue_messages",
            &queue("reports", "waiting")
        ),
        4.0
    );
    assert_eq!(
        value(
            &metrics,
            "taskq_queue_messages",
            &queue("reports", "unacked")
        ),
        0.0
    );
    assert_eq!(
        value(
            &metrics,
            "taskq_queue_messages",
            &queue("emails", "waiting")
        ),
        1.0
    );
    assert_eq!(value(&metrics, "taskq_queue_paused", "queue=emails"), 1.0);
    assert_eq!(value(&metrics, "taskq_queue_paused", "queue=reports"), 0.0);

    // Scraped again, it reads Redis again.
    client
        .send(&add, (2, 2), Options::new().queue("emails"))
        .await
        .unwrap();
    let metrics = scrape(&python, &format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(
        value(
            &metrics,
            "taskq_queue_messages",
            &queue("emails", "waiting")
        ),
        2.0
    );
    exporter.terminate();
}
