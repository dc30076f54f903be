//! No task lost when a worker is killed: a SIGKILLed worker's messages stay in `unacked`, and
//! once their leases lapse (the visibility timeout) recovery returns them to their queue for
//! another worker. A live worker renews its leases, so its long tasks are never taken.

use std::time::{Duration, Instant};
use taskq_tests::{keys, wait_for_log};

use serde_json::json;
use taskq::Options;
use taskq_tests::worker::{
    client, count_run, ledger_runs, query, send_push, wait_nothing_unacked, wait_until_taken,
    RunningWorker,
};
use taskq_tests::{redis_cmd, spawn_example_worker, wait_until, ChildGuard, RedisServer};

const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.recovery.long")]
async fn long(key: String, ms: u64) -> u32 {
    let run = count_run(&key);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    run
}

/// The example worker with a 2 s visibility timeout and a 3 s push notification task.
fn example_worker(server: &RedisServer, dir: &std::path::Path, log: &str) -> ChildGuard {
    let envs = [
        ("TASKQ_VISIBILITY_TIMEOUT", "2"),
        ("TASKQ_EXAMPLE_DELAY_MS", "3000"),
        ("TASKQ_SHUTDOWN_GRACE", "1"),
    ];
    spawn_example_worker(server, dir, log, &envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_killed_worker_runs_on_the_next_one() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    let mut first = example_worker(&server, dir.path(), "first.log");
    let sent = send_push(&client, "dev-killed").await;
    let url = server.url();
    wait_until_taken(&server, WAIT);
    wait_for_log(&dir.path().join("first.log"), "] received", 1, WAIT); // its 3 s run began
    first.kill(); // SIGKILL: no shutdown, no requeue
    assert_eq!(
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]),
        1,
        "the message must still be in Redis"
    );

    let killed_at = Instant::now();
    let _second = example_worker(&server, dir.path(), "second.log");
    sent.get(WAIT)
        .await
        .expect("the second worker runs the task");
    println!("recovered and ran {:?} after the kill", killed_at.elapsed());
    let log = std::fs::read_to_string(dir.path().join("notification.log")).unwrap();
    assert_eq!(
        log, "Successfully sent push notification to: dev-killed\n",
        "exactly one completed run"
    );
    wait_until(WAIT, "the message to be acknowledged", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_worker_keeps_its_long_task_however_long_it_runs() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let timeout = Duration::from_millis(800);
    let a = RunningWorker::start(&client, |b| b.concurrency(2).visibility_timeout(timeout));
    let b = RunningWorker::start(&client, |b| b.concurrency(2).visibility_timeout(timeout));
    let key = uuid::Uuid::new_v4().to_string();
    // Runs for 4 visibility timeouts while two workers run recovery.
    let sent = client
        .send(&long, (key.clone(), 3200), Options::new())
        .await
        .unwrap();
    assert_eq!(
        sent.get(WAIT).await.unwrap(),
        1,
        "exactly one run: the lease was renewed"
    );
    assert_eq!(count_run(&key), 2, "no second run started meanwhile");
    wait_nothing_unacked(&server, WAIT);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_orphaned_unacked_entries_are_cleaned_up_not_dropped() {
    let server = RedisServer::start();
    let url = server.url();
    redis_cmd(
        &url,
        &[
            "HSET",
            &keys::broker().unacked(),
            "broken-tag",
            "not an [envelope, exchange, routing_key]",
        ],
    );
    // Left by a taskq worker that died: leased, and the lease long lapsed.
    for tag in ["broken-tag", "ghost-tag"] {
        redis_cmd(&url, &["ZADD", &keys::broker().unacked_index(), "1", tag]);
        redis_cmd(&url, &["ZADD", &keys::broker().leases(), "1", tag]);
    }
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.visibility_timeout(Duration::from_secs(1)));
    wait_until(WAIT, "recovery to run", || {
        query::<i64>(&url, &["ZCARD", &keys::broker().unacked_index()]) == 0
    });
    wait_nothing_unacked(&server, WAIT);
    let dead = client.broker().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].reason.contains("unacked entry"), "{dead:?}");
    assert_eq!(dead[0].payload, "not an [envelope, exchange, routing_key]");
    worker.stop().await;
}

/// Leaves a message in `unacked` as a taskq worker that died while holding it would, its
/// lease long lapsed. It was
/// recovered `recoveries` times before, `crashes` of them while its task ran; `running` says
/// whether its task had started in this last holder.
fn plant_held_message(
    server: &RedisServer,
    id: &str,
    recoveries: u32,
    crashes: u32,
    running: bool,
) {
    let raw = taskq::protocol::NewMessage::new("test.recovery.long", id)
        .args(vec![json!(id), json!(10)])
        .encode("celery")
        .unwrap();
    let mut envelope: serde_json::Value = serde_json::from_str(&raw).unwrap();
    envelope["headers"]["taskq_recoveries"] = json!(recoveries);
    envelope["headers"]["taskq_crashes"] = json!(crashes);
    let tag = envelope["properties"]["delivery_tag"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = format!(r#"[{envelope}, "", "celery"]"#);
    redis_cmd(
        &server.url(),
        &["HSET", &keys::broker().unacked(), &tag, &held],
    );
    redis_cmd(
        &server.url(),
        &["ZADD", &keys::broker().unacked_index(), "1", &tag],
    );
    redis_cmd(
        &server.url(),
        &["ZADD", &keys::broker().leases(), "1", &tag],
    );
    if running {
        redis_cmd(&server.url(), &["SADD", &keys::broker().started(), &tag]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_killing_its_worker_is_dead_lettered() {
    let server = RedisServer::start();
    let (poison, fine) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    // Lost twice while running (this time included): it is what kills its workers.
    plant_held_message(&server, &poison, 1, 1, true);
    // Recovered three times, but only ever prefetched by the workers that died: innocent.
    plant_held_message(&server, &fine, 3, 0, false);
    let client = client(&server, |config| config.max_recoveries = 2);
    let worker = RunningWorker::start(&client, |b| b.visibility_timeout(Duration::from_secs(1)));

    // Its second crash counted, the poison message is not run again.
    let err = client.result::<u32>(&poison).get(WAIT).await.unwrap_err();
    let failure = err.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "WorkerLostError", "{failure}");
    assert_eq!(count_run(&poison), 1, "the poison task did not run");
    let url = server.url();
    wait_until(WAIT, "the poison message to be dead-lettered", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    let dead = client.broker().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .reason
            .contains("died or froze 2 times while running it"),
        "{dead:?}"
    );
    // The message that was only ever prefetched runs normally.
    assert_eq!(client.result::<u32>(&fine).get(WAIT).await.unwrap(), 1);
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_kills_every_worker_is_stopped_after_max_recoveries_crashes_first_run_included()
{
    const MAX_RECOVERIES: usize = 2;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    let sent = send_push(&client, "dev-poison").await;
    let url = server.url();
    let log = dir.path().join("workers.log");
    let runs_started = || {
        std::fs::read_to_string(&log)
            .map(|log| log.matches("received").count())
            .unwrap_or_default()
    };
    let dead_lettered = || query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1;
    // Each worker takes the message (its earlier holder's lease lapsed) and dies while
    // running it, as a task that aborts the process would make it, until one refuses it.
    let mut crashes = 0;
    loop {
        let mut worker = spawn_example_worker(
            &server,
            dir.path(),
            "workers.log",
            &[
                ("TASKQ_VISIBILITY_TIMEOUT", "2"),
                ("TASKQ_EXAMPLE_DELAY_MS", "3000"),
                ("TASKQ_MAX_RECOVERIES", "2"),
            ],
        );
        wait_until(WAIT, "the worker to run or refuse the message", || {
            runs_started() > crashes || dead_lettered()
        });
        if dead_lettered() {
            break;
        }
        worker.kill(); // SIGKILL mid-run
        crashes += 1;
        assert!(crashes <= MAX_RECOVERIES + 1, "the crash loop goes on");
    }
    assert_eq!(
        crashes, MAX_RECOVERIES,
        "TASKQ_MAX_RECOVERIES=2 allows two crashes, the first run's included"
    );
    let err = sent.get(WAIT).await.unwrap_err();
    let failure = err.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "WorkerLostError", "{failure}");
    assert!(
        !dir.path().join("notification.log").exists(),
        "no run completed"
    );
    wait_until(WAIT, "nothing to be held or marked", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
            && query::<i64>(&url, &["SCARD", &keys::broker().started()]) == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_copies_of_one_envelope_are_held_apart_and_all_survive_a_kill() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let id = uuid::Uuid::new_v4().to_string();
    let raw = taskq::protocol::NewMessage::new("tasks.send_push_notification", &id)
        .args(vec![json!("dev-copy")])
        .encode("celery")
        .unwrap();
    for _ in 0..3 {
        redis_cmd(&url, &["LPUSH", "celery", &raw]); // one envelope, one delivery tag
    }
    let envs = [
        ("TASKQ_VISIBILITY_TIMEOUT", "2"),
        ("TASKQ_EXAMPLE_DELAY_MS", "3000"),
        ("TASKQ_CONCURRENCY", "4"),
    ];
    let mut first = spawn_example_worker(&server, dir.path(), "first.log", &envs);
    wait_until(WAIT, "the worker to take all three", || {
        query::<i64>(&url, &["LLEN", "celery"]) == 0
    });
    wait_for_log(&dir.path().join("first.log"), "] received", 3, WAIT); // their 3 s runs began
    first.kill();
    assert_eq!(
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]),
        3,
        "each copy must be held under a tag of its own"
    );

    let _second = spawn_example_worker(&server, dir.path(), "second.log", &envs);
    wait_until(WAIT, "all three copies to run", || {
        std::fs::read_to_string(dir.path().join("notification.log"))
            .is_ok_and(|log| log.lines().count() == 3)
    });
    wait_until(WAIT, "everything to be acknowledged", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_that_wakes_up_cannot_release_the_new_holders_message() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    let frozen = example_worker(&server, dir.path(), "frozen.log");
    let sent = send_push(&client, "dev-zombie").await;
    let url = server.url();
    wait_until_taken(&server, WAIT);
    wait_for_log(&dir.path().join("frozen.log"), "] received", 1, WAIT);
    frozen.signal("STOP"); // frozen mid-task: it renews nothing, its lease lapses

    let _second = example_worker(&server, dir.path(), "second.log");
    wait_until(WAIT, "the second worker to take the recovered task", || {
        std::fs::read_to_string(dir.path().join("second.log"))
            .is_ok_and(|log| log.contains("received"))
    });
    frozen.signal("CONT"); // wakes up, finishes its (elapsed) run and acknowledges its tag
    wait_for_log(&dir.path().join("frozen.log"), "] succeeded", 1, WAIT);
    // Its ack follows the result store in the same settling step.
    std::thread::sleep(Duration::from_millis(300));
    // The second worker still runs the task, and its claim is still in Redis: if it died now,
    // recovery would still find the message.
    assert_eq!(
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]),
        1,
        "the zombie's ack released the new holder's message"
    );
    sent.get(WAIT).await.unwrap();
    wait_until(WAIT, "the second run to finish", || {
        std::fs::read_to_string(dir.path().join("notification.log"))
            .is_ok_and(|log| log.lines().count() == 2)
    });
    wait_until(WAIT, "everything to be acknowledged", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_does_not_start_its_prefetch_after_its_leases_lapsed() {
    const TASKS: usize = 16;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    // 4 slots and 4 messages reserved per slot: 4 tasks run, 12 wait prefetched.
    let frozen = spawn_example_worker(
        &server,
        dir.path(),
        "frozen.log",
        &[
            ("TASKQ_VISIBILITY_TIMEOUT", "2"),
            ("TASKQ_EXAMPLE_DELAY_MS", "3000"),
            ("TASKQ_CONCURRENCY", "4"),
            ("TASKQ_PREFETCH_MULTIPLIER", "4"),
        ],
    );
    let mut sent = Vec::new();
    for i in 0..TASKS {
        sent.push(send_push(&client, &format!("dev-{i}")).await);
    }
    let url = server.url();
    wait_until(WAIT, "the worker to hold every message", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == TASKS as i64
    });
    wait_for_log(&dir.path().join("frozen.log"), "] received", 4, WAIT); // one per slot
    frozen.signal("STOP"); // its leases lapse; its prefetch must never start after this

    // Another worker recovers all 16 and runs them.
    let _rescuer = spawn_example_worker(
        &server,
        dir.path(),
        "rescuer.log",
        &[
            ("TASKQ_VISIBILITY_TIMEOUT", "2"),
            ("TASKQ_EXAMPLE_DELAY_MS", "3000"),
            ("TASKQ_CONCURRENCY", "16"),
        ],
    );
    for result in &sent {
        result.get(WAIT).await.expect("the rescuer runs every task");
    }
    frozen.signal("CONT");
    let frozen_log = dir.path().join("frozen.log");
    // Each of the 12 prefetched messages is either given up (logged) or run a second time.
    wait_until(WAIT, "the woken worker to settle its prefetch", || {
        let given_up = std::fs::read_to_string(&frozen_log)
            .map(|log| log.matches("not started").count())
            .unwrap_or_default();
        let second_runs = ledger_runs(dir.path())
            .values()
            .filter(|n| **n == 2)
            .count();
        given_up + second_runs.saturating_sub(4) >= TASKS - 4
    });
    // Long enough for a wrongly started task to finish and show in the ledger.
    std::thread::sleep(Duration::from_millis(3500));
    let runs = ledger_runs(dir.path());
    let twice = runs.values().filter(|n| **n == 2).count();
    let given_up = std::fs::read_to_string(&frozen_log)
        .unwrap_or_default()
        .matches("not started")
        .count();
    println!(
        "after the thaw: {twice} of {TASKS} tasks ran twice (those running at the freeze), \
         {given_up} prefetched ones given up unstarted"
    );
    assert_eq!(runs.len(), TASKS, "every task ran: {runs:?}");
    assert!(runs.values().all(|n| *n <= 2), "{runs:?}");
    assert!(
        twice <= 4,
        "only the 4 tasks running at the freeze may run twice: {runs:?}"
    );
    wait_until(WAIT, "everything to be acknowledged", || {
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_recoverers_at_once_return_each_of_1000_lapsed_messages_once() {
    const MESSAGES: usize = 1000;
    const RECOVERERS: usize = 10;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let mut ids = std::collections::HashSet::new();
    for i in 0..MESSAGES {
        let sent = client
            .send(&long, (format!("k{i}"), 0), Options::new())
            .await
            .unwrap();
        ids.insert(sent.id().to_owned());
    }
    // A worker that took them all, then died: everything is in `unacked` with a lease.
    let mut taken = 0;
    while taken < MESSAGES {
        taken += client
            .broker()
            .fetch(&["celery".to_owned()], 256, usize::MAX)
            .await
            .unwrap()
            .deliveries
            .len();
    }
    assert_eq!(
        query::<i64>(&server.url(), &["ZCARD", &keys::broker().leases()]),
        MESSAGES as i64
    );
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Ten recoverers, each on its own connection, each in batches of 50, all at once.
    let after = taskq::broker::RecoverAfter::new(Duration::from_millis(10));
    let recoverers: Vec<_> = (0..RECOVERERS)
        .map(|_| {
            let broker = taskq::broker::open(&server.url()).unwrap();
            tokio::spawn(async move {
                let mut restored = 0;
                loop {
                    match broker.recover(after, 50).await.unwrap() {
                        0 => return restored,
                        n => restored += n,
                    }
                }
            })
        })
        .collect();
    let mut per_recoverer = Vec::new();
    for recoverer in recoverers {
        per_recoverer.push(recoverer.await.unwrap());
    }
    println!("messages restored by each of {RECOVERERS} recoverers: {per_recoverer:?}");
    assert_eq!(per_recoverer.iter().sum::<usize>(), MESSAGES);

    let queued: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    assert_eq!(queued.len(), MESSAGES, "each message queued once");
    let queued_ids: std::collections::HashSet<String> = queued
        .iter()
        .map(|raw| {
            let envelope: serde_json::Value = serde_json::from_str(raw).unwrap();
            envelope["headers"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(queued_ids, ids, "no message twice, none missing");
    taskq_tests::worker::assert_nothing_unacked(&server);
}
