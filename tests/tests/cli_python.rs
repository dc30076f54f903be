//! The `taskq` command line against a real Python Celery worker (the newest Celery line,
//! installed from PyPI on first use): remote control replies come back through kombu's own
//! reply routing, and tasks sent by `taskq call` run in Python.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::taskq_cli::taskq;
use taskq_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_drives_a_python_celery_worker() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, backend) = (server.url(), server.url_db(1));
    let log = dir.path().join("celery.log");
    let _worker = tokio::task::spawn_blocking(move || {
        python.start_worker(&broker, &backend, &["celery"], &log)
    })
    .await
    .unwrap();

    // The node answers once its pidbox consumer is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let run = taskq(&server, &["status", "--json"]).await;
        if run.status.success() {
            break run.json();
        }
        assert!(Instant::now() < deadline, "no Python node answered: {run}");
    };
    assert_eq!(status["online"], 1, "{status}");
    let node = status["nodes"][0]["node"].as_str().unwrap().to_owned();
    assert!(node.starts_with("py@"), "{status}");
    assert_eq!(status["nodes"][0]["reply"], json!({"ok": "pong"}));

    let registered = taskq(&server, &["inspect", "registered", "-d", &node, "--json"])
        .await
        .success()
        .json();
    let names: Vec<&str> = registered[node.as_str()]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"py.add"), "{registered}");
    let queues = taskq(&server, &["inspect", "active_queues", "-d", &node])
        .await
        .success();
    assert!(
        queues.stdout.starts_with(&format!("->  {node}: OK\n")),
        "{queues}"
    );
    assert!(queues.stdout.contains(r#""name":"celery""#), "{queues}");
    let stats = taskq(&server, &["inspect", "stats", "-d", &node, "--json"])
        .await
        .success()
        .json();
    assert!(stats[node.as_str()]["pid"].is_u64(), "{stats}");

    let id = taskq(&server, &["call", "py.add", "--args", "[20, 22]"])
        .await
        .success()
        .stdout
        .trim()
        .to_owned();
    let record = taskq(&server, &["result", &id, "--wait", "30", "--json"])
        .await
        .success()
        .json();
    assert_eq!(record["status"], "SUCCESS", "{record}");
    assert_eq!(record["result"], 42);

    let revoked = taskq(
        &server,
        &["control", "revoke", "some-id", "-d", &node, "--json"],
    )
    .await
    .success()
    .json();
    let ok = revoked[node.as_str()]["ok"].as_str().unwrap_or_default();
    assert!(
        ok.contains("some-id") && ok.contains("revoked"),
        "{revoked}"
    );
    let ids = taskq(&server, &["inspect", "revoked", "-d", &node, "--json"])
        .await
        .success()
        .json();
    assert!(
        ids[node.as_str()]
            .as_array()
            .unwrap()
            .contains(&json!("some-id")),
        "{ids}"
    );
    let events = taskq(
        &server,
        &["control", "enable_events", "-d", &node, "--json"],
    )
    .await
    .success()
    .json();
    assert!(events[node.as_str()]["ok"].is_string(), "{events}");
}
