//! Python Celery producers → a taskq worker → results read by Python's `AsyncResult.get()`,
//! against every Celery line the tests cover (real Celery from PyPI, in a virtualenv).

use std::time::Duration;
use taskq_tests::keys;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use taskq_tests::python::{CeleryLine, PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, eventually, meta_key, query, RunningWorker};
use taskq_tests::RedisServer;

#[taskq::task(name = "interop.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "interop.echo")]
async fn echo(value: Value) -> Value {
    value
}

#[derive(Debug)]
struct PaymentDeclined(String);

impl std::fmt::Display for PaymentDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card declined: {}", self.0)
    }
}

#[taskq::task(name = "interop.charge")]
async fn charge(card: String) -> Result<u32, PaymentDeclined> {
    Err(PaymentDeclined(card))
}

/// kombu's tagged values arrive as the plain types a Rust task would use.
#[derive(Debug, Serialize, Deserialize)]
struct Typed {
    when: chrono::DateTime<chrono::Utc>,
    day: chrono::NaiveDate,
    at: chrono::NaiveTime,
    amount: String,
    id: uuid::Uuid,
    raw: String,
}

#[taskq::task(name = "interop.typed")]
async fn typed(
    when: chrono::DateTime<chrono::Utc>,
    day: chrono::NaiveDate,
    at: chrono::NaiveTime,
    amount: String,
    id: uuid::Uuid,
    raw: String,
) -> Typed {
    Typed {
        when,
        day,
        at,
        amount,
        id,
        raw,
    }
}

/// Fails every other run: each call fails once, is retried by taskq, then succeeds.
#[taskq::task(name = "interop.flaky", max_retries = 2, retry_backoff = 0.05)]
async fn flaky() -> Result<u32, PaymentDeclined> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if run % 2 == 1 {
        Err(PaymentDeclined(format!("run {run}")))
    } else {
        Ok(run)
    }
}

#[taskq::task(name = "interop.sleep_ms")]
async fn sleep_ms(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[taskq::task(name = "interop.now")]
async fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// For one Celery line: its Python environment, a private redis-server and a taskq worker on
/// `queues`.
struct Setup {
    python: PythonEnv,
    server: RedisServer,
    worker: RunningWorker,
}

async fn setup(line: CeleryLine, queues: &[&str]) -> Setup {
    let python = PythonEnv::load(line).await;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| {
        // No other worker runs: unknown tasks fail at once, not after being offered around.
        b.concurrency(4)
            .queues(queues.iter().copied())
            .unknown_task_retries(0)
    });
    Setup {
        python,
        server,
        worker,
    }
}

impl Setup {
    /// Runs a Python script with the Celery app on this setup's Redis; returns its stdout.
    fn run_python(&self, script: &str) -> String {
        let out = self
            .python
            .command(&self.server.url(), &self.server.url_db(1))
            .args(["-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Runs `calls` through Python's driver for every Celery line, with a taskq worker running.
async fn drive_all(calls: Value, queues: &[&str], check: impl Fn(&str, &[Value], &RedisServer)) {
    for line in CELERY_LINES {
        let setup = setup(line, queues).await;
        let (broker, backend) = (setup.server.url(), setup.server.url_db(1));
        let calls = calls.clone();
        let py = setup.python.clone();
        let results = tokio::task::spawn_blocking(move || py.drive(&broker, &backend, &calls))
            .await
            .unwrap();
        check(&setup.python.celery_version(), &results, &setup.server);
        setup.worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_results_and_json_shapes_round_trip() {
    let shapes = json!({
        "nested": {"list": [1, [2, [3, {"deep": null}]]], "empty": {}, "none": null},
        "big": 1000000000000000000000000000000u128,
        "negative_big": -12345678901234567890i128,
        "float": 3.25,
        "small": 0.000125,
        "unicode": "naïve café — 日本語 😀",
        "bool": [true, false],
    });
    let calls = json!([
        {"task": "interop.add", "args": [2, 3]},
        {"task": "interop.add", "kwargs": {"x": 10, "y": 5}},
        {"task": "interop.add", "args": [1], "kwargs": {"y": 41}},
        {"task": "interop.echo", "args": [shapes]},
        {"task": "interop.flaky"},
    ]);
    drive_all(calls, &["celery"], |version, results, _| {
        assert_eq!(results[0]["result"], 5, "Celery {version}: {results:?}");
        assert_eq!(results[1]["result"], 15, "Celery {version}");
        assert_eq!(results[2]["result"], 42, "Celery {version}");
        // Failed once, retried by taskq, then succeeded: Python's get() sees the success.
        let run = results[4]["result"].as_u64().unwrap_or(1);
        assert_eq!(run % 2, 0, "Celery {version}: {:?}", results[4]);
        assert_eq!(
            results[3]["result"], shapes,
            "Celery {version}: JSON shapes changed"
        );
        assert!(
            results.iter().all(|r| r["state"] == "SUCCESS"),
            "Celery {version}: {results:?}"
        );
    })
    .await;
}

/// Python sends `soft_time_limit=1, time_limit=10` (header `[10, 1]`) for a task that runs
/// 3 s and never watches its limit: the taskq worker stops it at 1 s, and Python's `get()`
/// raises Celery's own `SoftTimeLimitExceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_time_limit_sent_by_python_is_honoured() {
    let calls = json!([
        {"task": "interop.sleep_ms", "args": [3000],
         "options": {"soft_time_limit": 1, "time_limit": 10}},
    ]);
    drive_all(calls, &["celery"], |version, results, _| {
        let error = &results[0]["error"];
        assert_eq!(
            error["type"], "SoftTimeLimitExceeded",
            "Celery {version}: {results:?}"
        );
        assert_eq!(error["module"], "billiard.exceptions", "Celery {version}");
        assert_eq!(results[0]["state"], "FAILURE", "Celery {version}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_python_as_exceptions() {
    let calls = json!([
        {"task": "interop.charge", "args": ["4242"]},
        {"task": "interop.add", "args": ["two", 2]},
        {"task": "interop.add", "args": [1, 2, 3]},
        {"task": "interop.unknown_to_everyone", "args": []},
        {"task": "interop.sleep_ms", "args": [5000], "options": {"time_limit": 1}},
    ]);
    drive_all(calls, &["celery"], |version, results, _| {
        let error = |i: usize| &results[i]["error"];
        // A Rust error: Python gets an exception named after the Rust type, with its message.
        assert_eq!(
            error(0)["type"],
            "PaymentDeclined",
            "Celery {version}: {results:?}"
        );
        assert_eq!(
            error(0)["message"],
            "card declined: 4242",
            "Celery {version}"
        );
        assert!(
            results[0]["error"]["traceback"]
                .as_str()
                .unwrap()
                .contains("PaymentDeclined"),
            "Celery {version}"
        );
        // Wrong arguments: a clear TypeError, not a crash.
        assert_eq!(error(1)["type"], "TypeError", "Celery {version}");
        assert!(
            error(1)["message"]
                .as_str()
                .unwrap()
                .contains("argument does not decode"),
            "Celery {version}"
        );
        assert_eq!(error(2)["type"], "TypeError", "Celery {version}");
        // Nobody knows the task: Celery's own NotRegistered.
        assert_eq!(
            error(3)["type"],
            "NotRegistered",
            "Celery {version}: {results:?}"
        );
        // Celery's hard time limit, sent by Python as timelimit [1, null].
        assert_eq!(
            error(4)["type"],
            "TimeLimitExceeded",
            "Celery {version}: {results:?}"
        );
        assert_eq!(
            error(4)["module"],
            "billiard.exceptions",
            "Celery {version}"
        );
        assert!(
            results.iter().all(|r| r["state"] == "FAILURE"),
            "Celery {version}: {results:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kombu_tagged_values_arrive_as_rust_types() {
    // Python sends real datetime/date/time/Decimal/UUID/bytes objects, which kombu tags; the
    // driver takes JSON only, so a small inline script sends them.
    for line in CELERY_LINES {
        let setup = setup(line, &["celery"]).await;
        let script = r#"
import datetime, decimal, json, uuid
from celery_app import app
r = app.send_task("interop.typed", args=[
    datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 1, 2), datetime.time(3, 4, 5), decimal.Decimal("1.5"),
    uuid.UUID("12345678123456781234567812345678"), b"abc"])
print(json.dumps(r.get(timeout=20)))
"#;
        let out = setup.run_python(script);
        let got: Value = serde_json::from_str(&out).unwrap();
        let version = setup.python.celery_version();
        assert_eq!(
            got,
            json!({"when": "2024-05-01T12:00:00Z", "day": "2024-01-02", "at": "03:04:05",
                   "amount": "1.5", "id": "12345678-1234-5678-1234-567812345678", "raw": "abc"}),
            "Celery {version}"
        );
        // Python writes float infinities and NaN as bare literals; infinities survive the
        // round trip. NaN, which no JSON number (so no argument decoded from one) can hold,
        // is refused with the reason rather than passed on as None.
        let floats = setup.run_python(
            "import json\nfrom celery_app import app\nr = app.send_task('interop.echo', args=[[float('inf'), -float('inf'), 0.5]])\nprint(json.dumps(r.get(timeout=20)))",
        );
        assert_eq!(floats, "[Infinity, -Infinity, 0.5]", "Celery {version}");
        let nan = setup.run_python(
            "from celery_app import app\nr = app.send_task('interop.echo', args=[[float('nan'), 0.5]])\ntry:\n    print(r.get(timeout=20))\nexcept Exception as e:\n    print(type(e).__module__, type(e).__name__, e)",
        );
        assert!(
            nan.starts_with("kombu.exceptions DecodeError") && nan.contains("NaN"),
            "Celery {version}: {nan}"
        );
        setup.worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_eta_expires_queues_and_ignore_result() {
    let eta = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expired = chrono::Utc::now() - chrono::Duration::seconds(5);
    let calls = json!([
        {"task": "interop.now", "options": {"countdown": 1}},
        {"task": "interop.now", "options": {"eta": eta.to_rfc3339()}},
        {"task": "interop.add", "args": [1, 1], "options": {"queue": "rust-only", "priority": 9}},
        {"task": "interop.add", "args": [2, 2], "options": {"expires": expired.to_rfc3339()}, "timeout": 10},
    ]);
    let sent_at = unix_now();
    drive_all(calls, &["celery", "rust-only"], |version, results, _| {
        let ran_at = results[0]["result"].as_f64().unwrap();
        assert!(
            ran_at >= sent_at + 1.0,
            "Celery {version}: countdown 1 s ran after {:.3}s",
            ran_at - sent_at
        );
        let ran_at = results[1]["result"].as_f64().unwrap();
        let eta = eta.timestamp_micros() as f64 / 1e6;
        assert!(
            ran_at >= eta,
            "Celery {version}: ran {:.3}s before its eta",
            eta - ran_at
        );
        assert_eq!(
            results[2]["result"], 2,
            "Celery {version}: named queue + priority"
        );
        assert_eq!(
            results[3]["state"], "REVOKED",
            "Celery {version}: {results:?}"
        );
        assert_eq!(
            results[3]["error"]["type"], "TaskRevokedError",
            "Celery {version}"
        );
    })
    .await;
    // ignore_result: the worker runs the task and stores nothing.
    for line in CELERY_LINES {
        let setup = setup(line, &["celery"]).await;
        let id = setup.run_python(
            "from celery_app import app\nprint(app.send_task('interop.add', args=[3, 4], ignore_result=True).id)",
        );
        let url = setup.server.url();
        eventually(
            Duration::from_secs(10),
            "the task to be consumed",
            || async {
                query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
                    && query::<i64>(&url, &["LLEN", "celery"]) == 0
            },
        )
        .await;
        let stored: Option<String> = query(&setup.server.url_db(1), &["GET", &meta_key(&id)]);
        let version = setup.python.celery_version();
        assert_eq!(
            stored, None,
            "Celery {version}: ignore_result stored a result"
        );
        setup.worker.stop().await;
    }
}
