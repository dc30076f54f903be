//! Periodic tasks: three example workers run the scheduler (`-B`), one leads; the leader is
//! SIGKILLed mid-run and another takes over. Every slot between the first and the last is
//! sent exactly once, none skipped across the handover (the ledger is the example's
//! `beat.log`, outside Redis, one line per run with the slot and the task id).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use taskq::beat::{Beat, Entry, Schedule};
use taskq::canvas::Sig;
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::worker::{client, query};
use taskq_tests::{keys, wait_until, ChildGuard, RedisServer};

const TICK_MS: i64 = 300;

fn spawn(server: &RedisServer, dir: &Path, n: usize) -> ChildGuard {
    let tick = TICK_MS.to_string();
    let envs = [
        ("TASKQ_EXAMPLE_TICK_MS", tick.as_str()),
        // A tick running on the killed worker comes back quickly.
        ("TASKQ_VISIBILITY_TIMEOUT", "1"),
        ("TASKQ_CONCURRENCY", "4"),
        ("RUST_LOG", "info"),
    ];
    let mut cmd =
        taskq_tests::example_command("worker", server, dir, &format!("worker-{n}.log"), &envs);
    cmd.args(["-B", "-n", &format!("beat{n}@%h")]);
    ChildGuard::spawn(&mut cmd)
}

fn log(dir: &Path, n: usize) -> String {
    std::fs::read_to_string(dir.join(format!("worker-{n}.log"))).unwrap_or_default()
}

/// Slot → the distinct task ids that ran it.
fn ledger(dir: &Path) -> BTreeMap<DateTime<Utc>, Vec<String>> {
    let text = std::fs::read_to_string(dir.join("beat.log")).unwrap_or_default();
    let mut slots: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some("tick"), Some(slot), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad beat.log line {line:?}");
        };
        let ids = slots.entry(slot.parse().unwrap()).or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    slots
}

#[test]
fn every_slot_is_sent_once_across_a_leader_killed_mid_run() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut workers: Vec<ChildGuard> = (0..3).map(|n| spawn(&server, dir.path(), n)).collect();

    wait_until(
        Duration::from_secs(20),
        "a scheduler to lead and ticks to run",
        || ledger(dir.path()).len() >= 5,
    );
    let leader = (0..3)
        .find(|n| log(dir.path(), *n).contains("beat: this scheduler leads"))
        .expect("one worker leads");
    let killed_at = Instant::now();
    workers[leader].kill();
    let before = ledger(dir.path()).len();

    // Another worker takes the lead once the lease lapses, then sends what was missed.
    let successor = wait_for_successor(dir.path(), leader);
    let handover = killed_at.elapsed();
    wait_until(Duration::from_secs(20), "ticks after the handover", || {
        ledger(dir.path()).len() >= before + 15
    });
    for (n, worker) in workers.iter().enumerate() {
        if n != leader {
            worker.terminate();
        }
    }
    // Nothing left to run: every sent tick is in the ledger.
    wait_until(
        Duration::from_secs(10),
        "the queue and unacked to empty",
        || {
            query::<i64>(&server.url(), &["LLEN", "celery"]) == 0
                && query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]) == 0
        },
    );

    let slots = ledger(dir.path());
    let times: Vec<DateTime<Utc>> = slots.keys().copied().collect();
    for pair in times.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            TICK_MS,
            "a slot was skipped between {} and {}",
            pair[0],
            pair[1]
        );
    }
    let sent_twice: Vec<_> = slots.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        sent_twice.is_empty(),
        "slots sent more than once: {sent_twice:?}"
    );
    assert!(
        times.iter().all(|t| t.timestamp_millis() % TICK_MS == 0),
        "{times:?}"
    );
    println!(
        "{} slots from {} to {}, each sent once; worker {leader} killed, worker {successor} led {:?} later",
        times.len(),
        times[0],
        times[times.len() - 1],
        handover
    );
}

fn wait_for_successor(dir: &Path, killed: usize) -> usize {
    let mut successor = None;
    wait_until(Duration::from_secs(15), "another scheduler to lead", || {
        successor = (0..3)
            .filter(|n| *n != killed)
            .find(|n| log(dir, *n).contains("beat: this scheduler leads"));
        successor.is_some()
    });
    successor.expect("found above")
}

/// Slots run once each and none skipped, from the first to the last.
fn assert_each_slot_once(slots: &BTreeMap<DateTime<Utc>, Vec<String>>) {
    let times: Vec<&DateTime<Utc>> = slots.keys().collect();
    for pair in times.windows(2) {
        assert_eq!(
            (*pair[1] - *pair[0]).num_milliseconds(),
            TICK_MS,
            "{times:?}"
        );
    }
    assert!(slots.values().all(|ids| ids.len() == 1), "{slots:?}");
}

/// Celery's `celery beat`: the scheduler runs alone (`cargo run --example beat`), a worker
/// without `-B` runs the ticks.
#[test]
fn a_scheduler_of_its_own_drives_plain_workers() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let tick = TICK_MS.to_string();
    let envs = [
        ("TASKQ_EXAMPLE_TICK_MS", tick.as_str()),
        ("RUST_LOG", "info"),
    ];
    let _worker = ChildGuard::spawn(&mut taskq_tests::example_command(
        "worker",
        &server,
        dir.path(),
        "worker.log",
        &envs,
    ));
    let beat = ChildGuard::spawn(&mut taskq_tests::example_command(
        "beat",
        &server,
        dir.path(),
        "beat-process.log",
        &envs,
    ));
    wait_until(Duration::from_secs(20), "six ticks run", || {
        ledger(dir.path()).len() >= 6
    });
    beat.terminate();
    let log = || std::fs::read_to_string(dir.path().join("beat-process.log")).unwrap_or_default();
    wait_until(Duration::from_secs(10), "the scheduler to resign", || {
        log().contains("the lead is given up")
    });
    assert!(log().contains("beat: this scheduler leads"), "{}", log());
    let worker_log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap();
    assert!(
        !worker_log.contains("beat:"),
        "the worker runs no scheduler: {worker_log}"
    );
    assert_each_slot_once(&ledger(dir.path()));
}

/// A scheduled send is an ordinary Celery message: a taskq scheduler drives a task that only
/// a Python Celery worker has, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskq_scheduler_drives_a_python_task_by_name() {
    let python = PythonEnv::load(CELERY_LATEST).await;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _python_worker = python.start_worker(
        &server.url(),
        &server.url_db(1),
        &["celery"],
        &dir.path().join("celery.log"),
    );
    let client = client(&server, |_| {});
    let every = Schedule::every(Duration::from_millis(TICK_MS as u64));
    let entry = Entry::new("py-add", every, |slot: DateTime<Utc>| {
        Sig::<i64>::by_name("py.add", (slot.timestamp_millis() / TICK_MS, 1))
    });
    let beat = Beat::start(client, vec![entry]);

    let results = || -> Vec<i64> {
        let keys: Vec<String> = query(&server.url_db(1), &["KEYS", "celery-task-meta-*"]);
        let mut values: Vec<i64> = keys
            .iter()
            .filter_map(|key| {
                let text: String = query(&server.url_db(1), &["GET", key]);
                let record: serde_json::Value = serde_json::from_str(&text).unwrap();
                (record["status"] == "SUCCESS").then(|| record["result"].as_i64().unwrap())
            })
            .collect();
        values.sort_unstable();
        values
    };
    wait_until(Duration::from_secs(30), "five slots run on Python", || {
        results().len() >= 5
    });
    beat.shutdown().await;
    // Each slot's number plus one, consecutive: every slot sent once, none skipped.
    let values = results();
    for pair in values.windows(2) {
        assert_eq!(pair[1] - pair[0], 1, "{values:?}");
    }
}
