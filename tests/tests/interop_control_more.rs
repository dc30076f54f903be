//! The rest of Celery's remote control against a taskq worker, each command sent with the
//! real `celery inspect …` / `celery control …` and its effect checked on the worker:
//! reserved, scheduled and query_task list what it holds; conf shows its settings;
//! time_limit stops a sleeping task; pool_grow / pool_shrink / autoscale change how many run
//! at once; add_consumer / cancel_consumer change what it fetches; shutdown stops the process.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq::control::ControlOptions;
use taskq::{Client, Options, WorkerBuilder};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::worker::{client, eventually, query, RunningWorker};
use taskq_tests::{spawn_example_worker, RedisServer};

const NODE: &str = "taskq@control-more";
const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.control_more.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.control_more.sleep")]
async fn sleep(millis: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    millis
}

/// A redis-server, a client with `concurrency` slots, and a taskq worker named [`NODE`],
/// built further by `configure`.
async fn setup(
    concurrency: usize,
    configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
) -> (PythonEnv, RedisServer, Client, RunningWorker) {
    let python = PythonEnv::load(CELERY_LATEST).await;
    let server = RedisServer::start();
    let client = client(&server, |c| c.concurrency = concurrency);
    let worker = RunningWorker::start(&client, |b| {
        configure(b.hostname(NODE).shutdown_grace(Duration::from_secs(1)))
    });
    inspect(&python, &server, &["ping"]).await; // the worker listens
    (python, server, client, worker)
}

/// Runs `python -m celery -A celery_app <args>` against `server`.
async fn celery(python: &PythonEnv, server: &RedisServer, args: &[&str]) -> Output {
    python
        .celery_cli(&server.url(), &server.url_db(1), args)
        .await
}

/// `celery inspect <args> -j`, retried until [`NODE`] answers; its reply. Inspecting twice
/// changes nothing, so a retry is harmless.
async fn inspect(python: &PythonEnv, server: &RedisServer, args: &[&str]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (reply, said) = ask(python, server, "inspect", args).await;
        if let Some(reply) = reply {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "no reply to inspect {args:?}: {said}"
        );
    }
}

/// `celery control <args> -j`, sent once (a command must not act twice): [`NODE`]'s reply.
/// The worker listens already ([`setup`] waited for its `ping`).
async fn control(python: &PythonEnv, server: &RedisServer, args: &[&str]) -> Value {
    let (reply, said) = ask(python, server, "control", args).await;
    reply.unwrap_or_else(|| panic!("no reply to control {args:?}: {said}"))
}

/// Runs `celery <kind> <args> -j`: [`NODE`]'s reply if it answered, and what the CLI said.
/// `inspect -j` prints `{node: reply}`, `control -j` a list of them.
async fn ask(
    python: &PythonEnv,
    server: &RedisServer,
    kind: &str,
    args: &[&str],
) -> (Option<Value>, String) {
    let mut all = vec![kind];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-j", "--timeout", "2"]);
    let out = celery(python, server, &all).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let replies: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    let reply = match &replies {
        Value::Array(replies) => replies.iter().find_map(|r| r.get(NODE)).cloned(),
        replies => replies.get(NODE).cloned(),
    };
    (reply, said)
}

/// How many tasks the worker runs now, asked through taskq's own client (quicker than
/// starting Python for each look).
async fn running(client: &Client) -> usize {
    let options = ControlOptions::new()
        .timeout(Duration::from_secs(2))
        .limit(1);
    let replies = client.control().inspect("active", &options).await.unwrap();
    replies
        .first()
        .and_then(|r| r.reply.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The most tasks seen running at once while `count` sleeps of `millis` run, all sent at
/// once; waits for their results.
async fn most_at_once(client: &Client, count: usize, millis: u64) -> usize {
    let mut sent = Vec::new();
    for _ in 0..count {
        sent.push(
            client
                .send(&sleep, (millis,), Options::new())
                .await
                .unwrap(),
        );
    }
    let mut most = 0;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        most = most.max(running(client).await);
        let url = client.config().result_backend.clone();
        let done: Vec<Option<String>> = sent
            .iter()
            .map(|r| query(&url, &["GET", &taskq_tests::worker::meta_key(r.id())]))
            .collect();
        if done.iter().all(Option::is_some) {
            break;
        }
    }
    for result in sent {
        assert_eq!(result.get(WAIT).await.unwrap(), millis);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_scheduled_and_query_task_show_what_the_worker_holds() {
    let (python, server, client, worker) = setup(1, |b| b).await;
    // Long enough to outlast the `celery inspect` runs below; terminated at the end.
    let long = client
        .send(&sleep, (60_000,), Options::new())
        .await
        .unwrap();
    let waiting = client.send(&add, (1, 2), Options::new()).await.unwrap();
    let later = Options::new().countdown(Duration::from_secs(60));
    let parked = client.send(&add, (3, 4), later).await.unwrap();
    eventually(WAIT, "the long task to run", || async {
        running(&client).await == 1
    })
    .await;

    let reserved = inspect(&python, &server, &["reserved"]).await;
    let request = &reserved[0];
    assert_eq!(reserved.as_array().unwrap().len(), 1, "{reserved}");
    assert_eq!(request["id"], waiting.id());
    assert_eq!(request["name"], "test.control_more.add");
    assert_eq!(request["type"], "test.control_more.add");
    assert_eq!(request["args"], json!([1, 2]));
    assert_eq!(request["hostname"], NODE);
    assert_eq!(request["delivery_info"]["routing_key"], "celery");
    assert!(request["time_start"].is_null() && request["worker_pid"].is_null());
    assert_eq!(request["acknowledged"], false);

    let scheduled = inspect(&python, &server, &["scheduled"]).await;
    assert_eq!(scheduled.as_array().unwrap().len(), 1, "{scheduled}");
    assert_eq!(scheduled[0]["priority"], 6);
    assert_eq!(scheduled[0]["request"]["id"], parked.id());
    let eta = scheduled[0]["eta"].as_str().unwrap();
    assert!(eta.ends_with("+00:00") && eta.contains('T'), "{eta}");

    let unknown = "00000000-0000-4000-8000-000000000000";
    let ids = [long.id(), waiting.id(), parked.id(), unknown];
    let mut args = vec!["query_task"];
    args.extend_from_slice(&ids);
    let found = inspect(&python, &server, &args).await;
    assert_eq!(found[long.id()][0], "active", "{found}");
    assert_eq!(found[long.id()][1]["args"], json!([60000]));
    assert!(found[long.id()][1]["time_start"].as_f64().unwrap() > 0.0);
    assert_eq!(found[waiting.id()][0], "reserved");
    assert_eq!(found[parked.id()][0], "scheduled");
    assert!(found.get(unknown).is_none(), "unknown ids are left out");

    client.terminate(long.id()).await.unwrap();
    assert_eq!(waiting.get(WAIT).await.unwrap(), 3);
    let reserved = inspect(&python, &server, &["reserved"]).await;
    assert_eq!(reserved, json!([]), "a started task is no longer reserved");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_shows_the_settings_under_celerys_names() {
    let (python, server, _client, worker) = setup(3, |b| b.prefetch_multiplier(2)).await;
    let conf = inspect(&python, &server, &["conf"]).await;
    assert_eq!(conf["broker_url"], server.url(), "{conf}");
    assert_eq!(conf["result_backend"], server.url_db(1));
    assert_eq!(conf["worker_concurrency"], 3);
    assert_eq!(conf["worker_prefetch_multiplier"], 2);
    assert_eq!(conf["task_acks_late"], true);
    assert!(
        conf.get("task_track_started").is_none(),
        "a Celery default is left out"
    );
    let all = inspect(&python, &server, &["conf", "true"]).await;
    assert_eq!(all["task_track_started"], false, "{all}");
    assert_eq!(all["task_default_queue"], "celery");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_stops_a_task_started_afterwards() {
    let (python, server, client, worker) = setup(1, |b| b).await;
    let set = control(
        &python,
        &server,
        &["time_limit", "test.control_more.sleep", "0", "1"],
    )
    .await;
    assert_eq!(set, json!({"ok": "time limits set successfully"}));
    let started = Instant::now();
    let slow = client
        .send(&sleep, (10_000,), Options::new())
        .await
        .unwrap();
    let failure = slow.get(WAIT).await.unwrap_err();
    assert!(
        format!("{failure:?}").contains("TimeLimitExceeded"),
        "{failure:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8), "stopped at 1 s");

    let unknown = control(&python, &server, &["time_limit", "no.such.task", "1", "2"]).await;
    assert_eq!(unknown, json!({"error": "unknown task"}));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_grow_and_shrink_change_how_many_tasks_run_at_once() {
    let (python, server, client, worker) = setup(1, |b| b).await;
    let grown = control(&python, &server, &["pool_grow", "2"]).await;
    assert_eq!(grown, json!({"ok": "pool will grow"}));
    let stats = inspect(&python, &server, &["stats"]).await;
    assert_eq!(stats["pool"]["max-concurrency"], 3, "{stats}");
    assert_eq!(most_at_once(&client, 3, 1_500).await, 3);

    // Shrinking while tasks run lets them finish; fewer start afterwards.
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(client.send(&sleep, (2_000,), Options::new()).await.unwrap());
    }
    eventually(WAIT, "three to run", || async {
        running(&client).await == 3
    })
    .await;
    let shrunk = control(&python, &server, &["pool_shrink", "2"]).await;
    assert_eq!(shrunk, json!({"ok": "pool will shrink"}));
    for result in sent {
        assert_eq!(result.get(WAIT).await.unwrap(), 2_000);
    }
    assert_eq!(most_at_once(&client, 3, 700).await, 1);
    let stats = inspect(&python, &server, &["stats"]).await;
    assert_eq!(stats["pool"]["max-concurrency"], 1);

    let refused = control(&python, &server, &["pool_shrink", "1"]).await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("keeps at least one"),
        "{refused}"
    );
    let not_enabled = control(&python, &server, &["autoscale", "4", "1"]).await;
    assert_eq!(
        not_enabled,
        json!({"error": "ValueError('Autoscale not enabled')"})
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaling_worker_grows_with_its_work_and_shrinks_when_idle() {
    let keepalive = Duration::from_secs(2);
    let (python, server, client, worker) =
        setup(1, |b| b.autoscale(4, 1).autoscale_keepalive(keepalive)).await;
    let stats = inspect(&python, &server, &["stats"]).await;
    assert_eq!(
        stats["autoscaler"],
        json!({"max": 4, "min": 1, "current": 1, "qty": 0}),
        "{stats}"
    );
    let refused = control(&python, &server, &["pool_grow", "1"]).await;
    assert_eq!(
        refused,
        json!({"error": "pool_grow is not supported with autoscale. Adjust autoscale range instead."})
    );

    assert_eq!(most_at_once(&client, 6, 3_000).await, 4, "grows up to max");
    eventually(WAIT, "the pool to shrink back to min", || async {
        let stats = client
            .control()
            .inspect("stats", &ControlOptions::new())
            .await
            .unwrap();
        stats
            .first()
            .is_some_and(|s| s.reply["pool"]["max-concurrency"] == 1)
    })
    .await;

    let changed = control(&python, &server, &["autoscale", "6", "2"]).await;
    assert_eq!(changed, json!({"ok": "autoscale now max=6 min=2"}));
    let stats = inspect(&python, &server, &["stats"]).await;
    assert_eq!(stats["autoscaler"]["current"], 2, "{stats}");
    assert_eq!(stats["prefetch_count"], 24, "reservations follow the max");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_cancel_consumer_change_what_the_worker_fetches() {
    let (python, server, client, worker) = setup(1, |b| b).await;
    let added = control(&python, &server, &["add_consumer", "extra"]).await;
    assert_eq!(added, json!({"ok": "add consumer extra"}));
    let queues = inspect(&python, &server, &["active_queues"]).await;
    let names: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["celery", "extra"]);
    let ran = client
        .send(&add, (5, 5), Options::new().queue("extra"))
        .await
        .unwrap();
    assert_eq!(ran.get(WAIT).await.unwrap(), 10);

    let cancelled = control(&python, &server, &["cancel_consumer", "extra"]).await;
    assert_eq!(cancelled, json!({"ok": "no longer consuming from extra"}));
    let queues = inspect(&python, &server, &["active_queues"]).await;
    assert_eq!(queues.as_array().unwrap().len(), 1, "{queues}");
    client
        .send(&add, (6, 6), Options::new().queue("extra"))
        .await
        .unwrap();
    let still = client.send(&add, (1, 1), Options::new()).await.unwrap();
    assert_eq!(
        still.get(WAIT).await.unwrap(),
        2,
        "the other queue is consumed"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let left: i64 = query(&server.url(), &["LLEN", "extra"]);
    assert_eq!(left, 1, "a message sent to a cancelled queue stays queued");
    worker.stop().await;
}

/// `celery control shutdown` stops a taskq worker process as SIGTERM does: it finishes the
/// running task and exits with status 0. Celery's workers send no reply to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_control_shutdown_stops_the_worker_process() {
    let python = PythonEnv::load(CELERY_LATEST).await;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = "shutdown@control-more";
    let mut process = spawn_example_worker(
        &server,
        dir.path(),
        "worker.log",
        &[("TASKQ_HOSTNAME", node), ("TASKQ_CONCURRENCY", "2")],
    );
    let client = client(&server, |c| c.result_backend = server.url());
    let deadline = Instant::now() + WAIT;
    let options = ControlOptions::new().timeout(Duration::from_secs(1));
    while client.control().ping(&options).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the example worker never answered ping"
        );
    }
    let running = client
        .send_by_name(
            "tasks.add",
            vec![json!(2), json!(3)],
            Default::default(),
            Options::new(),
        )
        .await
        .unwrap();
    let _: Value = running.get(WAIT).await.unwrap();

    let out = celery(
        &python,
        &server,
        &["control", "shutdown", "-d", node, "--timeout", "1"],
    )
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("No nodes replied"),
        "Celery's CLI gets no reply: {said}"
    );
    let status = tokio::task::spawn_blocking(move || process.wait_timeout(WAIT))
        .await
        .unwrap()
        .expect("the worker process exits after `celery control shutdown`");
    assert!(status.success(), "exits cleanly: {status}");
    let log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap();
    assert!(
        log.contains("Got shutdown from remote") && log.contains("worker stopped"),
        "{log}"
    );
}
