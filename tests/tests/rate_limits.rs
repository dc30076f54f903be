//! Global rate limits: three example workers (separate processes) share one limit of 20 runs a
//! second, whether it comes from the task's attribute (`tasks.send_push_notification`,
//! `rate_limit = "20/s"`) or from Celery's own `celery control rate_limit tasks.add 20/s`,
//! sent by the real Celery CLI. 500 calls each: the runs, read from the stored results
//! (`date_done`, and the worker that ran each, with `result_extended`), span 499 turns of
//! 50 ms within 10%, no second holds more than 22 of them, and all three workers take part.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use taskq::{Client, Options};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::worker::{eventually, meta_key, query};
use taskq_tests::{wait_until, ChildGuard, RedisServer};

const CALLS: usize = 500;
const PER_SECOND: f64 = 20.0;
const WORKERS: usize = 3;

fn spawn(server: &RedisServer, dir: &Path, n: usize) -> ChildGuard {
    let envs = [
        ("TASKQ_EXAMPLE_DELAY_MS", "0"),
        ("TASKQ_CONCURRENCY", "4"),
        ("TASKQ_RESULT_EXTENDED", "true"),
        ("RUST_LOG", "info"),
    ];
    let mut cmd =
        taskq_tests::example_command("worker", server, dir, &format!("worker-{n}.log"), &envs);
    cmd.args(["-n", &format!("limited{n}@%h")]);
    ChildGuard::spawn(&mut cmd)
}

fn log(dir: &Path, n: usize) -> String {
    std::fs::read_to_string(dir.join(format!("worker-{n}.log"))).unwrap_or_default()
}

/// Three workers, each past "ready".
fn start_workers(server: &RedisServer, dir: &Path) -> Vec<ChildGuard> {
    let workers = (0..WORKERS).map(|n| spawn(server, dir, n)).collect();
    wait_until(Duration::from_secs(30), "three workers ready", || {
        (0..WORKERS).all(|n| log(dir, n).contains("ready"))
    });
    workers
}

/// A client on the workers' Redis (broker and results in db 0, as the example worker uses).
fn client(server: &RedisServer) -> Client {
    taskq_tests::worker::client(server, |c| c.result_backend = server.url())
}

/// Sends `CALLS` calls of `task`, the `n`th with `args(n)`; their ids.
async fn send(client: &Client, task: &str, args: impl Fn(usize) -> Vec<Value>) -> Vec<String> {
    let mut ids = Vec::with_capacity(CALLS);
    for n in 0..CALLS {
        let sent = client
            .send_by_name(task, args(n), Map::new(), Options::new())
            .await
            .unwrap();
        ids.push(sent.id().to_owned());
    }
    ids
}

/// When each call finished, and on which worker, once all have a SUCCESS record.
async fn runs(server: &RedisServer, ids: &[String]) -> Vec<(DateTime<Utc>, String)> {
    let url = server.url();
    let records = || -> Vec<Option<Value>> {
        ids.iter()
            .map(|id| {
                let text: Option<String> = query(&url, &["GET", &meta_key(id)]);
                text.map(|t| serde_json::from_str(&t).unwrap())
            })
            .collect()
    };
    eventually(Duration::from_secs(90), "every call to succeed", || {
        let done = records()
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r["status"] == "SUCCESS"));
        async move { done }
    })
    .await;
    let mut runs: Vec<(DateTime<Utc>, String)> = records()
        .into_iter()
        .map(|r| {
            let r = r.unwrap();
            let done = r["date_done"].as_str().unwrap();
            let done = format!("{}Z", done.trim_end_matches("+00:00"));
            let worker = r["worker"].as_str().unwrap_or("?").to_owned();
            (done.parse().unwrap(), worker)
        })
        .collect();
    runs.sort();
    runs
}

/// The runs keep to `PER_SECOND` within 10% overall and in every second, over every worker.
fn assert_limited(runs: &[(DateTime<Utc>, String)], how: &str) {
    let times: Vec<DateTime<Utc>> = runs.iter().map(|(t, _)| *t).collect();
    let span = (times[times.len() - 1] - times[0]).to_std().unwrap();
    let expected = Duration::from_secs_f64((CALLS - 1) as f64 / PER_SECOND);
    let rate = (CALLS - 1) as f64 / span.as_secs_f64();
    eprintln!("{how}: {CALLS} runs in {span:?} ({rate:.2}/s; {expected:?} at exactly 20/s)");
    assert!(
        (rate - PER_SECOND).abs() <= PER_SECOND * 0.1,
        "{how}: {rate:.2} runs a second over {span:?}, not 20/s within 10%"
    );
    let busiest = times
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let window_end = *start + chrono::Duration::seconds(1);
            times[i..].iter().take_while(|t| **t < window_end).count()
        })
        .max()
        .unwrap();
    assert!(
        busiest as f64 <= PER_SECOND * 1.1,
        "{how}: {busiest} runs within one second"
    );
    let mut per_worker = std::collections::BTreeMap::<&str, usize>::new();
    for (_, worker) in runs {
        *per_worker.entry(worker.as_str()).or_default() += 1;
    }
    eprintln!("{how}: busiest second {busiest} runs; per worker {per_worker:?}");
    assert_eq!(per_worker.len(), WORKERS, "{how}: every worker runs some");
    for (worker, count) in &per_worker {
        assert!(
            *count >= CALLS / 10,
            "{how}: {worker} ran only {count}: {per_worker:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_limit_holds_across_three_workers() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _workers = start_workers(&server, dir.path());
    let client = client(&server);

    let ids = send(&client, "tasks.send_push_notification", |n| {
        vec![json!(format!("device-{n}"))]
    })
    .await;
    assert_limited(&runs(&server, &ids).await, "rate_limit = \"20/s\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_control_rate_limit_sets_a_limit_across_three_workers() {
    let python = PythonEnv::load(CELERY_LATEST).await;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _workers = start_workers(&server, dir.path());
    let client = client(&server);

    let set = [
        "control",
        "rate_limit",
        "tasks.add",
        "20/s",
        "--timeout",
        "3",
        "--json",
    ];
    let out = python.celery_cli(&server.url(), &server.url(), &set).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let replies: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "celery control rate_limit answered {e}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let answered: Vec<&Value> = replies.as_array().unwrap().iter().collect();
    assert_eq!(answered.len(), WORKERS, "every worker answers: {replies}");
    for reply in answered {
        let (_, answer) = reply.as_object().unwrap().iter().next().unwrap();
        assert_eq!(answer, &json!({"ok": "new rate limit set successfully"}));
    }

    let ids = send(&client, "tasks.add", |n| vec![json!(n), json!(1)]).await;
    assert_limited(&runs(&server, &ids).await, "celery control rate_limit");

    // An unknown task gets Celery's answer, and the limit can be lifted the same way.
    let unknown = [
        "control",
        "rate_limit",
        "tasks.nope",
        "5/s",
        "--timeout",
        "3",
        "--json",
    ];
    let out = python
        .celery_cli(&server.url(), &server.url(), &unknown)
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unknown task"), "{stdout}");
}

#[taskq::task(name = "test.rate.stamp")]
async fn stamp() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `client.control().rate_limit(..)`: Celery's `app.control.rate_limit`, from Rust; a zero
/// rate lifts the limit; a rate not in Celery's syntax is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sets_and_lifts_a_limit() {
    use taskq::control::ControlOptions;
    use taskq_tests::worker::RunningWorker;

    let server = RedisServer::start();
    let client = taskq_tests::worker::client(&server, |c| c.concurrency = 4);
    let worker = RunningWorker::start(&client, |b| b.hostname("limits@test"));
    let options = ControlOptions::new().timeout(Duration::from_secs(2));
    let control = client.control();
    let mut replies = Vec::new();
    for _ in 0..20 {
        // The worker's mailbox may not be subscribed yet right after start-up.
        replies = control
            .rate_limit("test.rate.stamp", "5/s", &options)
            .await
            .unwrap();
        if !replies.is_empty() {
            break;
        }
    }
    assert_eq!(
        replies[0].reply,
        json!({"ok": "new rate limit set successfully"})
    );
    let mut sent = Vec::new();
    for _ in 0..6 {
        sent.push(client.send(&stamp, (), Options::new()).await.unwrap());
    }
    let mut starts = Vec::new();
    for s in &sent {
        starts.push(s.get(Duration::from_secs(20)).await.unwrap());
    }
    starts.sort_by(f64::total_cmp);
    let span = starts[5] - starts[0];
    assert!(span >= 0.95, "6 runs at 5/s span 1 s, not {span}");

    let replies = control
        .rate_limit("test.rate.stamp", "0", &options)
        .await
        .unwrap();
    assert_eq!(
        replies[0].reply,
        json!({"ok": "rate limit disabled successfully"})
    );
    let refused = control
        .rate_limit("test.rate.stamp", "5/d", &options)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("s, m or h"), "{refused}");
    worker.stop().await;
}

#[taskq::task(name = "test.rate.one_a_second", rate_limit = "1/s")]
async fn one_a_second(n: u64) -> u64 {
    n
}

/// A worker with idle slots fetches four calls of a task limited to one run a second: the
/// fetch marks them started (they have slots to start in), but three wait for their turns,
/// so their marks are taken back until their turns come: were the worker lost meanwhile,
/// their recovery must not count a crash of a task that never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_their_turn_are_not_marked_started() {
    use taskq::keys::BrokerKeys;
    use taskq_tests::worker::RunningWorker;

    let server = RedisServer::start();
    let client = taskq_tests::worker::client(&server, |c| c.concurrency = 4);
    let worker = RunningWorker::start(&client, |b| b);
    let sent = client
        .send_many(&one_a_second, (0..4).map(|n| (n,)), Options::new())
        .await
        .unwrap();
    let started = BrokerKeys::default().started();
    let mut most_marked = 0;
    let mut finished = 0;
    while finished < sent.len() {
        let marked: usize = query(&server.url(), &["SCARD", &started]);
        most_marked = most_marked.max(marked);
        finished = 0;
        for call in &sent {
            if call.state().await.unwrap().is_ready() {
                finished += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("at most {most_marked} of 4 calls marked started at once");
    assert!(
        most_marked <= 1,
        "{most_marked} calls marked started at once, with one run a second"
    );
    worker.stop().await;
}
