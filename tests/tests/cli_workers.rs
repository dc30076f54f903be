//! The `taskq` command line against a running taskq worker (in the test process, on the
//! test's own Redis): `status`, `inspect`, `control`, `result` and `events`, in both
//! people's and `--json` output.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq::{Client, Options};
use taskq_tests::taskq_cli::{taskq, CliRun};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

const NODE: &str = "taskq@cli-test";
const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.cli.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.cli.sleep")]
async fn sleep(millis: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    millis
}

struct Setup {
    server: RedisServer,
    client: Client,
    _worker: RunningWorker,
}

/// A Redis, a worker named [`NODE`] with two slots (events on when `events`), and a client;
/// returns once the worker answers `taskq status`.
async fn setup(events: bool) -> Setup {
    let server = RedisServer::start();
    let client = client(&server, |c| c.concurrency = 2);
    let worker = RunningWorker::start(&client, |b| {
        b.hostname(NODE)
            .send_events(events)
            .shutdown_grace(Duration::from_secs(1))
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let run = taskq(&server, &["status", "-d", NODE, "--json"]).await;
        if run.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never answered: {run}"
        );
    }
    Setup {
        server,
        client,
        _worker: worker,
    }
}

/// `taskq inspect <method> -d NODE --json` (done once [`NODE`] answers, not after the
/// timeout): the reply of [`NODE`].
async fn inspect_json(server: &RedisServer, method: &str) -> Value {
    let run = taskq(server, &["inspect", method, "-d", NODE, "--json"])
        .await
        .success();
    let replies = run.json();
    assert_eq!(
        replies.as_object().map(|o| o.len()),
        Some(1),
        "one node: {run}"
    );
    replies[NODE].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_inspect_see_the_worker() {
    let Setup { server, client, .. } = setup(false).await;

    let status = taskq(&server, &["status"]).await.success();
    assert_eq!(
        status.stdout,
        format!("->  {NODE}: OK\n\n1 node online.\n"),
        "{status}"
    );
    let status = taskq(&server, &["status", "--json"]).await.success().json();
    assert_eq!(
        status,
        json!({"online": 1, "nodes": [{"node": NODE, "reply": {"ok": "pong"}}]})
    );

    let ping = taskq(&server, &["inspect", "ping"]).await.success();
    assert_eq!(
        ping.stdout,
        format!("->  {NODE}: OK\n        pong\n\n1 node online.\n")
    );
    assert_eq!(inspect_json(&server, "ping").await, json!({"ok": "pong"}));

    let registered = taskq(&server, &["inspect", "registered"]).await.success();
    assert!(
        registered.stdout.contains("    * test.cli.add\n"),
        "{registered}"
    );
    let names = inspect_json(&server, "registered").await;
    assert!(names.as_array().unwrap().contains(&json!("test.cli.sleep")));

    let long = client.send(&sleep, (5_000,), Options::new()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let active = loop {
        let active = inspect_json(&server, "active").await;
        if !active.as_array().unwrap().is_empty() || Instant::now() > deadline {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(active[0]["id"], long.id());
    assert_eq!(active[0]["name"], "test.cli.sleep");
    let human = taskq(&server, &["inspect", "active"]).await.success();
    assert!(human.stdout.contains(long.id()), "{human}");

    let stats = inspect_json(&server, "stats").await;
    assert_eq!(stats["pool"]["max-concurrency"], 2);
    let human = taskq(&server, &["inspect", "stats"]).await.success();
    assert!(human.stdout.contains("\"max-concurrency\": 2"), "{human}");

    for method in ["reserved", "scheduled"] {
        assert_eq!(inspect_json(&server, method).await, json!([]), "{method}");
        let human = taskq(&server, &["inspect", method]).await.success();
        assert!(human.stdout.contains("    - empty -\n"), "{human}");
    }
    let queues = inspect_json(&server, "active_queues").await;
    assert_eq!(queues[0]["name"], "celery");
    let revoked = inspect_json(&server, "revoked").await;
    assert_eq!(revoked, json!([]));
    let conf = inspect_json(&server, "conf").await;
    assert!(conf.is_object());

    // Only the node named is asked; another node's name gets no reply.
    let named = taskq(&server, &["inspect", "ping", "-d", NODE, "--json"])
        .await
        .success()
        .json();
    assert_eq!(named, json!({NODE: {"ok": "pong"}}));
    let started = Instant::now();
    let nobody = taskq(
        &server,
        &["inspect", "ping", "-d", "celery@elsewhere", "-t", "0.3"],
    )
    .await
    .exit_code(1);
    assert!(
        nobody
            .stderr
            .contains("No nodes replied within time constraint"),
        "{nobody}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let nobody = taskq(&server, &["status", "-d", "celery@elsewhere", "-t", "0.3"])
        .await
        .exit_code(1);
    assert!(nobody.stdout.is_empty(), "{nobody}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_result_run_a_task_end_to_end() {
    let Setup { server, .. } = setup(false).await;

    let id = taskq(&server, &["call", "test.cli.add", "--args", "[2, 3]"])
        .await
        .success()
        .stdout
        .trim()
        .to_owned();
    let done = taskq(&server, &["result", &id, "--wait", "20"])
        .await
        .success();
    assert!(done.stdout.contains("state:  SUCCESS\n"), "{done}");
    assert!(done.stdout.contains("result: 5\n"), "{done}");
    let record = taskq(&server, &["result", &id, "--json"])
        .await
        .success()
        .json();
    assert_eq!(record["status"], "SUCCESS");
    assert_eq!(record["result"], 5);
    assert_eq!(record["task_id"], id.as_str());

    let unknown = taskq(&server, &["result", "no-such-id"]).await.success();
    assert!(unknown.stdout.contains("state:  PENDING"), "{unknown}");
    let waited = taskq(&server, &["result", "no-such-id", "--wait", "0.3"])
        .await
        .exit_code(1);
    assert!(waited.stderr.contains("still PENDING"), "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_revokes_and_switches_events() {
    let Setup { server, client, .. } = setup(false).await;

    let long = client
        .send(&sleep, (30_000,), Options::new())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while inspect_json(&server, "active").await == json!([]) {
        assert!(Instant::now() < deadline, "the task never started");
    }
    let revoked = taskq(&server, &["control", "revoke", long.id(), "--terminate"])
        .await
        .success();
    assert!(
        revoked.stdout.starts_with(&format!("->  {NODE}: OK\n")),
        "{revoked}"
    );
    assert!(revoked.stdout.contains("flagged as revoked"), "{revoked}");
    let record = taskq(&server, &["result", long.id(), "--wait", "20", "--json"])
        .await
        .success()
        .json();
    assert_eq!(record["status"], "REVOKED");
    assert_eq!(record["result"]["exc_message"], json!(["terminated"]));

    let later = client
        .send(
            &add,
            (1, 1),
            Options::new().countdown(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let revoked = taskq(&server, &["control", "revoke", later.id(), "--json"])
        .await
        .success()
        .json();
    assert!(
        revoked[NODE]["ok"].as_str().unwrap().contains(later.id()),
        "{revoked}"
    );
    let ids = inspect_json(&server, "revoked").await;
    assert!(
        ids.as_array().unwrap().contains(&json!(later.id())),
        "{ids}"
    );

    let on = taskq(&server, &["control", "enable_events"])
        .await
        .success();
    assert_eq!(
        on.stdout,
        format!("->  {NODE}: OK\n        task events enabled\n\n1 node online.\n")
    );
    let again = taskq(&server, &["control", "enable-events", "--json"])
        .await
        .success()
        .json();
    assert_eq!(again, json!({NODE: {"ok": "task events already enabled"}}));
    let off = taskq(&server, &["control", "disable_events", "--json"])
        .await
        .success()
        .json();
    assert_eq!(off, json!({NODE: {"ok": "task events disabled"}}));

    let clock = taskq(
        &server,
        &["control", "broadcast", "clock", "-d", NODE, "--json"],
    )
    .await
    .success()
    .json();
    assert!(clock[NODE]["clock"].is_u64(), "{clock}");
    let unknown = taskq(
        &server,
        &[
            "control",
            "broadcast",
            "no_such",
            "-a",
            r#"{"n": 1}"#,
            "-d",
            NODE,
        ],
    )
    .await
    .success();
    assert_eq!(
        unknown.stdout,
        format!("->  {NODE}: ERROR\n        No such command: no_such\n\n1 node online.\n")
    );
    let bad = taskq(&server, &["control", "broadcast", "clock", "-a", "[1]"])
        .await
        .exit_code(1);
    assert!(
        bad.stderr.contains("--arguments must be a JSON object"),
        "{bad}"
    );

    let missing = taskq(&server, &["control", "revoke"]).await.exit_code(2);
    assert!(missing.stderr.contains("<ID>"), "{missing}");
}

/// `taskq events` as a child process, tailing until `limit` events or 20 s.
async fn tail_events(server: &RedisServer, extra: &[&str]) -> CliRun {
    let mut args = vec!["events", "--timeout", "20"];
    args.extend_from_slice(extra);
    taskq(server, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_tailed_as_lines_and_as_json() {
    let Setup { server, client, .. } = setup(true).await;

    // Task events of a task sent while the tail runs, and heartbeats every 2 s.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let sum = client.send(&add, (20, 22), Options::new()).await.unwrap();
            sum.get(WAIT).await.unwrap()
        })
    };
    let tailed = tail_events(&server, &["--json", "--limit", "4"])
        .await
        .success();
    assert_eq!(sender.await.unwrap(), 42);
    let events = tailed.json_lines();
    assert_eq!(events.len(), 4, "{tailed}");
    for event in &events {
        assert_eq!(event["hostname"], NODE, "{event}");
        assert!(event["type"].as_str().is_some(), "{event}");
    }
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types
            .iter()
            .all(|t| t.starts_with("task-") || t.starts_with("worker-")),
        "{types:?}"
    );

    let human = tail_events(&server, &["--limit", "1"]).await.success();
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{human}");
    assert!(lines[0].starts_with(&format!("{NODE} [")), "{human}");
    assert!(
        lines[0].contains("] worker-heartbeat") || lines[0].contains("] task-"),
        "{human}"
    );

    // Without a limit, the timeout ends the tail.
    let started = Instant::now();
    let quiet = taskq(&server, &["events", "--timeout", "0.5", "--json"])
        .await
        .success();
    assert!(started.elapsed() < Duration::from_secs(10), "{quiet}");
}
