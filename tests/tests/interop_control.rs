//! Celery's remote control against a taskq worker: the real `celery inspect …` and
//! `celery control revoke` commands, and `AsyncResult.revoke(terminate=True)` from Python,
//! answered by taskq on the `celery.pidbox` fanout exchange. Revokes also hold for workers
//! started after them.

use std::process::Output;
use std::time::{Duration, Instant};
use taskq_tests::keys;

use serde_json::{json, Value};
use taskq::{Client, Options};
use taskq_tests::python::{PythonEnv, CELERY_LATEST, CELERY_LINES};
use taskq_tests::worker::{client, eventually, meta_key, query, RunningWorker};
use taskq_tests::{spawn_example_worker, RedisServer};

const NODE: &str = "taskq@control-test";
const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.control.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.control.sleep")]
async fn sleep(millis: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    millis
}

/// A redis-server, a taskq worker named [`NODE`] with two slots, and a client.
struct Setup {
    server: RedisServer,
    client: Client,
    worker: RunningWorker,
}

fn setup() -> Setup {
    let server = RedisServer::start();
    let client = client(&server, |c| c.concurrency = 2);
    let worker = RunningWorker::start(&client, |b| {
        b.hostname(NODE).shutdown_grace(Duration::from_secs(1))
    });
    Setup {
        server,
        client,
        worker,
    }
}

/// Runs `python -m celery -A celery_app <args>` against the setup's Redis.
async fn celery(python: &PythonEnv, server: &RedisServer, args: &[&str]) -> Output {
    python
        .celery_cli(&server.url(), &server.url_db(1), args)
        .await
}

/// `celery inspect <method> -j`, retried until the taskq node answers (its subscription may
/// not be in place yet right after start-up); returns the node's reply.
async fn inspect(python: &PythonEnv, server: &RedisServer, method: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = celery(python, server, &["inspect", method, "-j", "--timeout", "2"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let replies: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        if let Some(reply) = replies.get(NODE) {
            return reply.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no reply from {NODE} to `inspect {method}`:\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Waits for `id`'s REVOKED ("revoked") record and checks that it stays: a run would have
/// stored SUCCESS, which is never overwritten. Returns the record.
async fn assert_discarded_unrun(server: &RedisServer, id: &str) -> Value {
    let record = wait_for_status(server, id, "REVOKED", WAIT).await;
    assert_eq!(record["result"]["exc_message"], json!(["revoked"]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(meta(server, id)["status"], "REVOKED");
    record
}

/// The stored result record of `id` (results are in db 1), or `Null` while there is none.
fn meta(server: &RedisServer, id: &str) -> Value {
    let text: Option<String> = query(&server.url_db(1), &["GET", &meta_key(id)]);
    text.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap())
}

async fn wait_for_status(server: &RedisServer, id: &str, status: &str, within: Duration) -> Value {
    let url = server.url_db(1);
    eventually(within, &format!("task {id} to be {status}"), || {
        let text: Option<String> = query(&url, &["GET", &meta_key(id)]);
        let ok = text.is_some_and(|t| t.contains(&format!(r#""status": "{status}""#)));
        async move { ok }
    })
    .await;
    meta(server, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_inspect_sees_the_taskq_worker() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let version = python.celery_version();
        let Setup {
            server,
            client,
            worker,
        } = setup();

        let pong = inspect(&python, &server, "ping").await;
        assert_eq!(pong, json!({"ok": "pong"}), "Celery {version}");

        let registered = inspect(&python, &server, "registered").await;
        let names: Vec<&str> = registered
            .as_array()
            .expect("a list of names")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            names.contains(&"test.control.add") && names.contains(&"test.control.sleep"),
            "Celery {version}: {registered}"
        );

        // One finished task for `stats`, one running for `active`.
        let sum = client.send(&add, (2, 3), Options::new()).await.unwrap();
        assert_eq!(sum.get(WAIT).await.unwrap(), 5);
        let long = client.send(&sleep, (4_000,), Options::new()).await.unwrap();

        let deadline = Instant::now() + WAIT;
        let active = loop {
            let active = inspect(&python, &server, "active").await;
            if active.as_array().is_some_and(|a| !a.is_empty()) {
                break active;
            }
            assert!(
                Instant::now() < deadline,
                "the sleep task never showed as active"
            );
        };
        let request = &active[0];
        assert_eq!(request["id"], long.id(), "Celery {version}: {active}");
        assert_eq!(request["name"], "test.control.sleep");
        assert_eq!(request["args"], json!([4000]));
        assert_eq!(request["hostname"], NODE);
        assert_eq!(request["delivery_info"]["routing_key"], "celery");
        assert!(request["time_start"].as_f64().unwrap() > 0.0);

        let stats = inspect(&python, &server, "stats").await;
        assert_eq!(
            stats["total"]["test.control.add"], 1,
            "Celery {version}: {stats}"
        );
        assert_eq!(stats["pool"]["max-concurrency"], 2);
        assert_eq!(stats["pid"], std::process::id());
        assert_eq!(stats["broker"]["port"], server.port());

        assert_eq!(long.get(WAIT).await.unwrap(), 4000);
        worker.stop().await;
        println!("Celery {version}: inspect ping/registered/active/stats answered by {NODE}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_control_revoke_discards_a_task_waiting_for_its_eta() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let Setup {
        server,
        client,
        worker,
    } = setup();
    inspect(&python, &server, "ping").await; // the worker listens

    let sent = client
        .send(
            &add,
            (1, 1),
            Options::new().countdown(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let url = server.url();
    eventually(WAIT, "the ETA task to be parked", || {
        let parked: i64 = query(&url, &["ZCARD", &keys::broker().eta_schedule()]);
        async move { parked == 1 }
    })
    .await;
    let out = celery(
        &python,
        &server,
        &["control", "revoke", sent.id(), "-j", "--timeout", "1"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(NODE) && stdout.contains("flagged as revoked"),
        "celery control revoke: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        meta(&server, sent.id()).is_null(),
        "nothing stored before the ETA"
    );

    let record = assert_discarded_unrun(&server, sent.id()).await;
    assert_eq!(record["result"]["exc_type"], "TaskRevokedError");
    worker.stop().await;
    taskq_tests::worker::assert_nothing_unacked(&server);
}

/// `celery control revoke` reaches a taskq worker that then restarts: the worker that
/// replaces it lists the id in `inspect revoked` and discards the task when it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_control_revoke_holds_for_the_worker_that_replaces_the_one_it_reached() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let Setup {
        server,
        client,
        worker,
    } = setup();
    inspect(&python, &server, "ping").await; // the worker listens
    let id = "0b6f3f7e-3c9a-4f55-9d61-5a3e2c1d0e01";
    let out = celery(
        &python,
        &server,
        &["control", "revoke", id, "-j", "--timeout", "1"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(NODE) && stdout.contains("flagged as revoked"),
        "celery control revoke: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    worker.stop().await;

    let replacement = RunningWorker::start(&client, |b| {
        b.hostname(NODE).shutdown_grace(Duration::from_secs(1))
    });
    let revoked = inspect(&python, &server, "revoked").await;
    assert_eq!(revoked, json!([id]), "inspect revoked on the new worker");
    let sent = client
        .send(
            &add,
            (2, 2),
            Options::new()
                .task_id(id)
                .countdown(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    assert_discarded_unrun(&server, sent.id()).await;
    replacement.stop().await;
    taskq_tests::worker::assert_nothing_unacked(&server);
}

/// A Python worker started after a revoke (sent with taskq's `Client::revoke` while it was not
/// running) learns it from the taskq worker through Celery's mingle (`hello`), and discards
/// the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_started_after_a_revoke_learns_it_from_the_taskq_worker() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let version = python.celery_version();
        let Setup {
            server,
            client,
            worker,
        } = setup();
        inspect(&python, &server, "ping").await; // the taskq worker listens
        let id = uuid::Uuid::new_v4().to_string();
        client.revoke(&id).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("py-worker.log");
        let (py, broker, backend) = (python.clone(), server.url(), server.url_db(1));
        let log_path = log.clone();
        let _py_worker = tokio::task::spawn_blocking(move || {
            py.start_mingling_worker(&broker, &backend, &["pyq"], &log_path)
        })
        .await
        .unwrap();
        let sent = client
            .send_by_name(
                "py.add",
                vec![json!(1), json!(2)],
                serde_json::Map::new(),
                Options::new().queue("pyq").task_id(&id),
            )
            .await
            .unwrap();
        let record = wait_for_status(&server, sent.id(), "REVOKED", WAIT).await;
        assert_eq!(
            record["result"]["exc_type"], "TaskRevokedError",
            "Celery {version}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("Discarding revoked task"),
            "Celery {version}: the Python worker discarded it:\n{text}"
        );
        worker.stop().await;
        println!("Celery {version}: learnt the revoke through mingle");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_revoke_with_terminate_aborts_a_running_task() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let Setup {
        server,
        client,
        worker,
    } = setup();
    inspect(&python, &server, "ping").await;

    let long = client
        .send(&sleep, (60_000,), Options::new())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while inspect(&python, &server, "active")
        .await
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the long task never started");
    }
    let script = format!(
        "from celery_app import app; app.AsyncResult({:?}).revoke(terminate=True)",
        long.id()
    );
    let asked = Instant::now();
    let out = celery_python(&python, &server, &script).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let record = wait_for_status(&server, long.id(), "REVOKED", Duration::from_secs(5)).await;
    assert_eq!(record["result"]["exc_message"], json!(["terminated"]));
    println!("terminated within {:?}", asked.elapsed());

    // The worker goes on with other tasks.
    let sum = client.send(&add, (20, 22), Options::new()).await.unwrap();
    assert_eq!(sum.get(WAIT).await.unwrap(), 42);
    assert!(worker.is_alive());
    worker.stop().await;
    taskq_tests::worker::assert_nothing_unacked(&server);
}

/// Runs a Python snippet in the interop app's directory.
async fn celery_python(python: &PythonEnv, server: &RedisServer, script: &str) -> Output {
    let mut cmd = python.command(&server.url(), &server.url_db(1));
    cmd.args(["-c", script]);
    tokio::task::spawn_blocking(move || cmd.output().expect("cannot run python"))
        .await
        .unwrap()
}

/// Workers configured from the environment on one host are distinct nodes by default (they
/// were all `taskq@<host>`, so `celery inspect` saw one node answering several times), and
/// `TASKQ_HOSTNAME` takes Celery's `-n` templates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_one_host_are_distinct_nodes_and_take_celery_name_templates() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _workers = [
        spawn_example_worker(&server, dir.path(), "a.log", &[]),
        spawn_example_worker(&server, dir.path(), "b.log", &[]),
        spawn_example_worker(
            &server,
            dir.path(),
            "c.log",
            &[("TASKQ_HOSTNAME", "reports@%n")],
        ),
    ];
    let host = hostname::get().unwrap().into_string().unwrap();
    let short = host.split('.').next().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let nodes = loop {
        let out = celery(
            &python,
            &server,
            &["inspect", "ping", "-j", "--timeout", "2"],
        )
        .await;
        let replies: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
            .unwrap_or(Value::Null);
        let nodes: Vec<String> = replies
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        if nodes.len() == 3 || Instant::now() > deadline {
            break nodes;
        }
    };
    println!("celery inspect ping answered by {nodes:?}");
    assert_eq!(nodes.len(), 3, "three distinct nodes: {nodes:?}");
    assert!(nodes.contains(&format!("reports@{short}")), "{nodes:?}");
    let defaults: Vec<&String> = nodes.iter().filter(|n| n.starts_with("taskq-")).collect();
    assert_eq!(defaults.len(), 2, "{nodes:?}");
    assert!(
        defaults.iter().all(|n| n.ends_with(&format!("@{host}"))),
        "{nodes:?}"
    );
}
