//! Periodic tasks: three example workers run the scheduler (`-B`), one leads; the leader is
//! SIGKILLed mid-run and another takes over. Every slot between the first and the last is
//! sent exactly once, none skipped across the handover (the ledger is the example's
//! `beat.log`, outside Redis, one line per run with the slot and the task id).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use taskq_tests::worker::query;
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
