//! Celery canvases built in Python (chain, group, chord, link, link_error, chunks, map,
//! starmap) whose steps run on a real Python `celery worker`, on a taskq worker, or on both,
//! each compared with what Celery alone gives for the same canvas, on every Celery line the
//! tests cover.

use serde_json::{json, Value};
use taskq_tests::python::{PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::{ChildGuard, RedisServer};

#[taskq::task(name = "rs.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "rs.tsum")]
async fn tsum(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

#[derive(Debug)]
struct Boom(String);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

#[taskq::task(name = "rs.boom")]
async fn boom(message: String) -> Result<i64, Boom> {
    Err(Boom(message))
}

#[taskq::task(name = "rs.failed_id")]
async fn failed_id(task_id: String) -> String {
    task_id
}

/// A redis-server, a Python worker on `celery` and a taskq worker on `rs`.
struct Fleet {
    python: PythonEnv,
    server: RedisServer,
    worker: RunningWorker,
    _python_worker: ChildGuard,
    _dir: tempfile::TempDir,
}

async fn fleet(python: PythonEnv) -> Fleet {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, backend, log) = (server.url(), server.url_db(1), dir.path().join("py.log"));
    let py = python.clone();
    let python_worker =
        tokio::task::spawn_blocking(move || py.start_worker(&broker, &backend, &["celery"], &log))
            .await
            .unwrap();
    let worker = RunningWorker::start(&client(&server, |_| {}), |b| {
        b.concurrency(8).queues(["rs"])
    });
    Fleet {
        python,
        server,
        worker,
        _python_worker: python_worker,
        _dir: dir,
    }
}

impl Fleet {
    async fn run(&self, jobs: Value) -> Vec<Value> {
        let (py, broker, backend) = (
            self.python.clone(),
            self.server.url(),
            self.server.url_db(1),
        );
        tokio::task::spawn_blocking(move || py.canvas(&broker, &backend, &jobs))
            .await
            .unwrap()
    }
}

/// Each scenario with every step on Python (what Celery alone gives), then with the
/// language mixes listed: the same answers.
const SCENARIOS: &[(&str, &[&[&str]])] = &[
    ("chain2", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("chain5", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("immutable", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("link", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("link_error", &[&["rs"], &["rs", "py"]]),
    ("group100", &[&["rs"], &["py", "rs"]]),
    // Header split across both; the body on the side the last header step names.
    ("chord_split", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("chord_failing_part", &[&["rs"], &["py", "rs"]]),
    ("chain_into_chord", &[&["rs"], &["py", "rs"], &["rs", "py"]]),
    ("group_of_chains", &[&["rs"], &["py", "rs"]]),
    ("chunked", &[&["rs"]]),
    ("mapped", &[&["rs"]]),
    ("starmapped", &[&["rs"]]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_canvases_give_the_same_results_on_taskq_workers_as_on_celery_alone() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let version = python.celery_version();
        let fleet = fleet(python).await;
        let mut jobs = Vec::new();
        for (scenario, mixes) in SCENARIOS {
            jobs.push(json!({"scenario": scenario, "langs": ["py"]}));
            for langs in *mixes {
                jobs.push(json!({"scenario": scenario, "langs": langs}));
            }
        }
        let lines = fleet.run(Value::Array(jobs)).await;
        let mut celery_alone = None;
        for line in &lines {
            let langs = &line["langs"];
            assert!(
                line.get("error").is_none(),
                "Celery {version}: {line} failed"
            );
            if langs == &json!(["py"]) {
                celery_alone = Some(line["result"].clone());
                continue;
            }
            let expected = celery_alone.as_ref().expect("the Python run comes first");
            assert_eq!(
                &line["result"], expected,
                "Celery {version}: {} with steps on {langs} differs from Celery alone",
                line["scenario"]
            );
        }
        assert_eq!(
            lines.len(),
            SCENARIOS.iter().map(|(_, m)| m.len() + 1).sum::<usize>()
        );
        spot_check(&lines, &version);
        fleet.worker.stop().await;
    }
}

/// The answers themselves, so that a canvas broken the same way on both sides still fails.
fn spot_check(lines: &[Value], version: &str) {
    let result = |scenario: &str| {
        lines
            .iter()
            .find(|l| l["scenario"] == scenario)
            .map(|l| l["result"].clone())
            .unwrap()
    };
    assert_eq!(result("chain2"), json!(8), "Celery {version}");
    assert_eq!(
        result("chain5"),
        json!({"value": 6, "steps": [6, 5, 4, 3, 2]})
    );
    assert_eq!(result("immutable"), json!(20));
    assert_eq!(
        result("link"),
        json!({"value": 4, "callback": 14, "callback_is_child": true})
    );
    assert_eq!(result("link_error"), json!({"errback_got_failed_id": true}));
    assert_eq!(
        result("group100"),
        json!((0..100).map(|i| i * 2).collect::<Vec<_>>())
    );
    assert_eq!(result("chord_split"), json!(90));
    assert_eq!(
        result("chord_failing_part"),
        json!({"state": "FAILURE", "stored_type": "ChordError"})
    );
    assert_eq!(result("chain_into_chord"), json!(7));
    assert_eq!(result("group_of_chains"), json!([3, 4]));
    assert_eq!(result("chunked"), json!([[0, 2], [4, 6], [8]]));
    assert_eq!(result("mapped"), json!([3, 3]));
    assert_eq!(result("starmapped"), json!([3, 7]));
}
