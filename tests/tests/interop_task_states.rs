//! States a running task reports about itself (Celery's `update_state`, `PROGRESS`) and
//! Celery's `result_extended` fields, written by a taskq worker and read by taskq and by real
//! Python Celery, and written by a Python worker and read by taskq, for every Celery line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use taskq::state::{Progress, ResultMeta};
use taskq::{AsyncResult, Client, Error, Options, TaskState};
use taskq_tests::python::{PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, eventually, meta_key, query, RunningWorker};
use taskq_tests::{ChildGuard, RedisServer};
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(20);

/// The permits a [`stepped`] run waits for, one per step, by gate name: each test opens its
/// own gate, so tests running at once in this process do not step each other's tasks.
fn gate(name: &str) -> Arc<Semaphore> {
    static GATES: Mutex<Option<HashMap<String, Arc<Semaphore>>>> = Mutex::new(None);
    let mut gates = GATES.lock().expect("gates lock");
    gates
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(0)))
        .clone()
}

/// Reports PROGRESS `{"current": step, "total": total}` for each step once its gate lets it,
/// then returns `total` once the gate lets it finish.
#[taskq::task(name = "states.stepped")]
async fn stepped(gate_name: String, total: u64) -> Result<u64, Error> {
    let gate = gate(&gate_name);
    for step in 0..total {
        gate.acquire().await.expect("gate open").forget();
        taskq::request::progress(step, total).await?;
    }
    gate.acquire().await.expect("gate open").forget();
    Ok(total)
}

/// Reports progress, then tries to report SUCCESS itself, which is refused: it fails with the
/// refusal.
#[taskq::task(name = "states.claims_success")]
async fn claims_success() -> Result<u64, Error> {
    taskq::request::progress(1, 2).await?;
    taskq::request::update_state("SUCCESS", 42).await?;
    Ok(0)
}

/// Runs `script` with the Celery app (`celery_app.py`) on `server`, results in db 1; returns
/// its stdout as JSON.
fn python_json(python: &PythonEnv, server: &RedisServer, script: &str) -> Value {
    let out = python
        .command(&server.url(), &server.url_db(1))
        .env("RESULT_EXTENDED", "1")
        .args(["-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

/// What Python's `AsyncResult(id)` says: `[state, info, ready]` and the extended fields
/// `[name, args, kwargs, worker, retries, queue]`.
fn python_reads(python: &PythonEnv, server: &RedisServer, id: &str) -> Value {
    python_json(
        python,
        server,
        &format!(
            "import json; from celery_app import app; r = app.AsyncResult('{id}'); \
             print(json.dumps([[r.state, r.info, r.ready()], \
             [r.name, r.args, r.kwargs, r.worker, r.retries, r.queue]]))"
        ),
    )
}

fn stored(server: &RedisServer, id: &str) -> String {
    query(&server.url_db(1), &["GET", &meta_key(id)])
}

/// Collects the `status` of every record published on `id`'s result channel, from before the
/// task is sent until a ready one: proof that each report is PUBLISHed, as Python's waiters
/// need.
fn listen(server: &RedisServer, id: &str) -> std::thread::JoinHandle<Vec<String>> {
    let (url, channel) = (server.url_db(1), meta_key(id));
    let (subscribed, is_subscribed) = std::sync::mpsc::channel();
    let listener = std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).unwrap();
        pubsub.set_read_timeout(Some(WAIT)).unwrap();
        subscribed.send(()).unwrap();
        let mut statuses = Vec::new();
        while let Ok(message) = pubsub.get_message() {
            let text: String = message.get_payload().unwrap();
            let meta = ResultMeta::from_json(&text).unwrap();
            statuses.push(meta.status.to_string());
            if meta.status.is_ready() {
                break;
            }
        }
        statuses
    });
    is_subscribed.recv().unwrap();
    listener
}

/// Waits until `sent` reports PROGRESS `step` of `total`, read both ways.
async fn expect_progress<T>(sent: &taskq::AsyncResult<T>, step: u64, total: u64) {
    let expected = Progress {
        current: step,
        total,
    };
    eventually(WAIT, &format!("PROGRESS {step} of {total}"), || async {
        sent.progress().await.unwrap() == Some(expected)
    })
    .await;
    assert_eq!(sent.info::<Progress>().await.unwrap(), Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_of_a_taskq_task_is_read_by_taskq_and_python_while_it_runs() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let server = RedisServer::start();
        let client = client(&server, |_| {});
        let worker = RunningWorker::start(&client, |b| b.concurrency(2).track_started(true));
        let gate_name = format!("taskq-progress-{}", line.name);
        let id = format!("progress-{}", line.name);
        let published = listen(&server, &id);
        let sent = client
            .send(
                &stepped,
                (gate_name.clone(), 3),
                Options::new().task_id(&id),
            )
            .await
            .unwrap();

        // track_started still writes STARTED first; the task's own reports replace it.
        eventually(WAIT, "STARTED", || async {
            sent.state().await.unwrap() == TaskState::Started
        })
        .await;
        for step in 0..3 {
            gate(&gate_name).add_permits(1);
            expect_progress(&sent, step, 3).await;
            assert_eq!(
                stored(&server, &id),
                format!(
                    r#"{{"status": "PROGRESS", "result": {{"current": {step}, "total": 3}}, "traceback": null, "children": [], "date_done": null, "task_id": "{id}"}}"#
                ),
                "Celery {}: update_state's record, byte for byte",
                line.name
            );
        }
        assert!(
            matches!(
                sent.get(Duration::from_millis(300)).await,
                Err(Error::Timeout(_))
            ),
            "get() waits past PROGRESS"
        );
        let running = python_reads(&python, &server, &id);
        assert_eq!(
            running[0],
            json!(["PROGRESS", {"current": 2, "total": 3}, false]),
            "Celery {}",
            line.name
        );
        assert_eq!(running[1], json!([null, null, null, null, null, null]));

        gate(&gate_name).add_permits(1);
        assert_eq!(sent.get(WAIT).await.unwrap(), 3);
        assert_eq!(sent.state().await.unwrap(), TaskState::Success);
        assert_eq!(sent.progress().await.unwrap(), None, "SUCCESS replaced it");
        assert_eq!(
            python_reads(&python, &server, &id)[0],
            json!(["SUCCESS", 3, true])
        );
        assert_eq!(
            published.join().unwrap(),
            ["STARTED", "PROGRESS", "PROGRESS", "PROGRESS", "SUCCESS"]
        );
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_alone_stores_ready_states_and_its_failure_replaces_progress() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b);
    let id = "claims-success";
    let published = listen(&server, id);
    let sent = client
        .send(&claims_success, (), Options::new().task_id(id))
        .await
        .unwrap();

    let failure = match sent.get(WAIT).await {
        Err(Error::TaskFailed(failure)) => failure,
        other => panic!("expected the refusal as the task's failure, got {other:?}"),
    };
    assert!(
        failure.message().contains("cannot report state SUCCESS"),
        "{failure}"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    assert_eq!(published.join().unwrap(), ["PROGRESS", "FAILURE"]);
    worker.stop().await;
}

/// A Python `celery worker` with `result_extended` on, consuming `celery`, on its own
/// redis-server; the gate directory for `py.progress`.
struct PythonWorker {
    server: RedisServer,
    client: Client,
    gates: tempfile::TempDir,
    _worker: ChildGuard,
}

async fn python_worker(python: &PythonEnv) -> PythonWorker {
    let server = RedisServer::start();
    let gates = tempfile::tempdir().unwrap();
    let (broker, backend, log) = (
        server.url(),
        server.url_db(1),
        gates.path().join("celery.log"),
    );
    let py = python.clone();
    let worker = tokio::task::spawn_blocking(move || {
        py.start_worker_with(
            &broker,
            &backend,
            &["celery"],
            &log,
            &[("RESULT_EXTENDED", "1")],
        )
    })
    .await
    .unwrap();
    PythonWorker {
        client: client(&server, |_| {}),
        server,
        gates,
        _worker: worker,
    }
}

fn open_gate(dir: &Path, step: u64) {
    std::fs::write(dir.join(step.to_string()), b"").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_extended_fields_of_a_python_task_are_read_by_taskq() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let fleet = python_worker(&python).await;
        let gates = fleet.gates.path().to_str().unwrap().to_owned();
        let sent: AsyncResult<u64> = fleet
            .client
            .send_by_name(
                "py.progress",
                vec![json!(gates), json!(2)],
                Map::new(),
                Options::new(),
            )
            .await
            .unwrap()
            .typed();
        for step in 0..2 {
            expect_progress(&sent, step, 2).await;
            // Python's record is the one taskq writes: it reads back to the same text.
            let text = stored(&fleet.server, sent.id());
            assert_eq!(ResultMeta::from_json(&text).unwrap().to_json(), text);
            assert_eq!(sent.name().await.unwrap().as_deref(), Some("py.progress"));
            open_gate(fleet.gates.path(), step);
        }
        assert_eq!(sent.get(WAIT).await.unwrap(), 2, "Celery {}", line.name);

        let text = stored(&fleet.server, sent.id());
        let extended = ResultMeta::from_json(&text).unwrap().extended.unwrap();
        assert_eq!(ResultMeta::from_json(&text).unwrap().to_json(), text);
        assert_eq!(extended.name.as_deref(), Some("py.progress"));
        assert_eq!(
            sent.args().await.unwrap(),
            Some(vec![json!(gates), json!(2)])
        );
        assert_eq!(sent.kwargs().await.unwrap(), Some(Map::new()));
        assert!(
            extended
                .worker
                .as_deref()
                .is_some_and(|w| w.starts_with("py@")),
            "{text}"
        );
        assert_eq!(
            (extended.retries, extended.queue.as_deref()),
            (Some(0), Some("celery"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskq_worker_with_result_extended_writes_celerys_fields_for_python() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let server = RedisServer::start();
        let client = client(&server, |_| {});
        let worker = RunningWorker::start(&client, |b| {
            b.concurrency(2)
                .result_extended(true)
                .hostname("itest@states")
        });
        let gate_name = format!("taskq-extended-{}", line.name);
        let sent: AsyncResult<u64> = client
            .send_by_name(
                "states.stepped",
                vec![json!(gate_name)],
                kwargs_total(1),
                Options::new(),
            )
            .await
            .unwrap()
            .typed();
        let id = sent.id().to_owned();
        let fields = format!(
            r#""name": "states.stepped", "args": ["{gate_name}"], "kwargs": {{"total": 1}}, "worker": "itest@states", "retries": 0, "queue": "celery", "task_id": "{id}"}}"#
        );

        gate(&gate_name).add_permits(1);
        eventually(WAIT, "PROGRESS", || async {
            sent.state().await.unwrap().as_str() == "PROGRESS"
        })
        .await;
        assert_eq!(
            stored(&server, &id),
            format!(
                r#"{{"status": "PROGRESS", "result": {{"current": 0, "total": 1}}, "traceback": null, "children": [], "date_done": null, {fields}"#
            ),
            "the task's own reports carry the extended fields too, as in Celery"
        );
        let running = python_reads(&python, &server, &id);
        assert_eq!(
            running[1],
            json!(["states.stepped", [gate_name], {"total": 1}, "itest@states", 0, "celery"]),
            "Celery {}",
            line.name
        );

        gate(&gate_name).add_permits(1);
        assert_eq!(sent.get(WAIT).await.unwrap(), 1);
        let text = stored(&server, &id);
        assert!(
            text.starts_with(
                r#"{"status": "SUCCESS", "result": 1, "traceback": null, "children": [], "date_done": ""#
            ) && text.ends_with(&format!(r#"+00:00", {fields}"#)),
            "{text}"
        );
        assert_eq!(
            sent.name().await.unwrap().as_deref(),
            Some("states.stepped")
        );
        assert_eq!(sent.kwargs().await.unwrap(), Some(kwargs_total(1)));
        let done = python_reads(&python, &server, &id);
        assert_eq!(done[0], json!(["SUCCESS", 1, true]));
        assert_eq!(done[1], running[1], "Celery {}", line.name);
        worker.stop().await;
    }
}

fn kwargs_total(total: u64) -> Map<String, Value> {
    [("total".to_owned(), json!(total))].into_iter().collect()
}
