//! Workflows built in Rust (`taskq::canvas`): run by taskq workers on Redis and in memory,
//! and by real Python Celery workers, whose results taskq reads typed.

use std::time::Duration;

use taskq::canvas::{chain, chord, group, GroupResult, Partial, Sig};
use taskq::{Client, Config, Error, TaskState};
use taskq_tests::python::{PythonEnv, CELERY_LINES};
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::{ChildGuard, RedisServer};

const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "canvas.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "canvas.describe")]
async fn describe(n: i64, unit: String) -> String {
    format!("{n} {unit}")
}

#[taskq::task(name = "canvas.total")]
async fn total(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[taskq::task(name = "canvas.refuse")]
async fn refuse(what: String) -> Result<i64, Refused> {
    Err(Refused(what))
}

#[taskq::task(name = "canvas.failed_id")]
async fn failed_id(task_id: String) -> String {
    task_id
}

/// Every workflow kind on `client`, with a taskq worker running.
async fn run_every_kind(client: &Client) {
    // add(2, 2) → add(4, 4) → describe(8, "apples"); an immutable step ignores what it is given.
    let described = chain(add.s(2, 2))
        .then(add.partial(4))
        .then(describe.partial("apples".to_owned()))
        .apply_async(client)
        .await
        .unwrap();
    assert_eq!(described.get(WAIT).await.unwrap(), "8 apples");
    let ignored = chain(add.s(1, 1))
        .then(add.si(10, 10))
        .apply_async(client)
        .await
        .unwrap();
    assert_eq!(ignored.get(WAIT).await.unwrap(), 20);

    let sums = group((0..100).map(|i| add.s(i, i)))
        .apply_async(client)
        .await
        .unwrap();
    let expected: Vec<i64> = (0..100).map(|i| i * 2).collect();
    assert_eq!(sums.get(WAIT).await.unwrap(), expected);
    sums.save().await.unwrap();
    let restored = GroupResult::<i64>::restore(client, sums.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.get(WAIT).await.unwrap(), expected);
    assert_eq!(restored.completed_count().await.unwrap(), 100);

    let header = group((1..=10).map(|i| add.s(i, 0)));
    let summed = chord(header, total.partial())
        .apply_async(client)
        .await
        .unwrap();
    assert_eq!(summed.get(WAIT).await.unwrap(), 55);

    // A callback gets the result; an errback the failed task's id.
    let callback_id = uuid::Uuid::new_v4().to_string();
    let linked = add.s(2, 2).link(add.partial(10).task_id(&callback_id));
    assert_eq!(
        linked
            .apply_async(client)
            .await
            .unwrap()
            .get(WAIT)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        client.result::<i64>(&callback_id).get(WAIT).await.unwrap(),
        14
    );
    let errback_id = uuid::Uuid::new_v4().to_string();
    let failing = refuse
        .s("no".to_owned())
        .link_error(failed_id.partial().task_id(&errback_id))
        .apply_async(client)
        .await
        .unwrap();
    assert!(matches!(failing.get(WAIT).await, Err(Error::TaskFailed(_))));
    let got: String = client.result(&errback_id).get(WAIT).await.unwrap();
    assert_eq!(got, failing.id());

    // A failed part fails the chord's body with Celery's ChordError.
    let header = group([add.s(1, 1), refuse.s("part".to_owned()).queue("celery")]);
    let body = chord(header, total.partial())
        .apply_async(client)
        .await
        .unwrap();
    let Err(Error::TaskFailed(failure)) = body.get(WAIT).await else {
        panic!("the chord did not fail");
    };
    assert_eq!(
        (failure.exc_type(), failure.exc_module()),
        ("ChordError", "celery.exceptions")
    );
    assert!(
        failure.message().contains("Refused('refused: part')"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_workflows_run_on_taskq_workers_on_redis() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(8));
    run_every_kind(&client).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_workflows_run_in_memory() {
    let mut config = Config::default();
    config.broker_url = "memory://canvas-rust".into();
    config.result_backend = "memory://canvas-rust".into();
    let client = Client::from_config(config).unwrap();
    let worker = RunningWorker::start(&client, |b| b.concurrency(8));
    run_every_kind(&client).await;
    worker.stop().await;
}

#[test]
fn a_step_given_as_a_complete_call_is_immutable_in_the_chain() {
    let chained = chain(add.s(1, 1)).then(add.s(2, 2)).into_signature();
    let steps = chained.members().unwrap();
    assert!(!steps[0].immutable && steps[1].immutable);
    assert_eq!(chained.subtask_type.as_deref(), Some("chain"));
}

/// Rust-built workflows of Python tasks, run by a real `celery worker`, read by taskq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_workflows_of_python_tasks_run_on_celery_workers() {
    for line in CELERY_LINES {
        let python = PythonEnv::load(line).await;
        let version = python.celery_version();
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let (broker, backend, log) = (server.url(), server.url_db(1), dir.path().join("py.log"));
        let py = python.clone();
        let _worker: ChildGuard = tokio::task::spawn_blocking(move || {
            py.start_worker(&broker, &backend, &["celery"], &log)
        })
        .await
        .unwrap();
        let client = client(&server, |_| {});

        let py_add = |x: i64, y: i64| Sig::<i64>::by_name("py.add", (x, y));
        let then_add = |y: i64| Partial::<i64, i64>::by_name("py.add", (y,));
        let five = (1..=4).fold(chain(py_add(1, 1)), |c, _| c.then(then_add(1)));
        assert_eq!(
            five.apply_async(&client)
                .await
                .unwrap()
                .get(WAIT)
                .await
                .unwrap(),
            6,
            "Celery {version}"
        );

        let header = group((1..=10).map(|i| py_add(i, i)));
        let summed = chord(header, Partial::<Vec<i64>, i64>::by_name("py.tsum", ()));
        let summed = summed.apply_async(&client).await.unwrap();
        assert_eq!(summed.get(WAIT).await.unwrap(), 110, "Celery {version}");

        // A group taskq saved, restored by Python's GroupResult.restore.
        let sums = group((0..5).map(|i| py_add(i, 1)))
            .apply_async(&client)
            .await
            .unwrap();
        sums.save().await.unwrap();
        let script = format!(
            "from celery_app import app\nfrom celery.result import GroupResult\n\
             r = GroupResult.restore({:?}, app=app)\nprint(r.get(timeout=20))",
            sums.id()
        );
        let out = python
            .command(&server.url(), &server.url_db(1))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "[1, 2, 3, 4, 5]",
            "Celery {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            client
                .result::<i64>(sums.ids()[0].clone())
                .state()
                .await
                .unwrap(),
            TaskState::Success
        );
    }
}
