//! SIGTERM during a burst (a deploy): the worker stops taking tasks, lets running ones finish
//! within the grace period, puts back what it had reserved, and exits; another worker then
//! runs the rest. Every task runs exactly once, none is lost.

use std::time::{Duration, Instant};
use taskq_tests::keys;
use taskq_tests::wait_for_log;

use taskq_tests::worker::{client, ledger_runs, query, send_push};
use taskq_tests::{spawn_example_worker, wait_until, RedisServer};

const TASKS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_loses_nothing_and_runs_nothing_twice() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    let envs = [
        ("TASKQ_EXAMPLE_DELAY_MS", "50"),
        ("TASKQ_CONCURRENCY", "4"),
        ("TASKQ_SHUTDOWN_GRACE", "1"),
        ("RUST_LOG", "info"),
    ];
    let mut first = spawn_example_worker(&server, dir.path(), "first.log", &envs);
    let mut sent = Vec::new();
    for i in 0..TASKS {
        let token = format!("burst-{i}");
        let result = send_push(&client, &token).await;
        sent.push((token, result));
    }
    // Mid-burst: some tasks have run, most wait.
    wait_for_log(
        &dir.path().join("first.log"),
        "] succeeded",
        20,
        Duration::from_secs(30),
    );
    first.terminate();
    let signalled = Instant::now();
    let status = first
        .wait_timeout(Duration::from_secs(10))
        .expect("the worker exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    println!(
        "first worker exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    let url = server.url();
    assert_eq!(
        query::<i64>(&url, &["HLEN", &keys::broker().unacked()]),
        0,
        "the stopping worker put everything back"
    );

    let _second = spawn_example_worker(&server, dir.path(), "second.log", &envs);
    for (token, result) in &sent {
        assert!(
            result.get(Duration::from_secs(60)).await.is_ok(),
            "{token} did not succeed"
        );
    }
    wait_until(
        Duration::from_secs(20),
        "every message to be acknowledged",
        || query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 0,
    );
    let runs = ledger_runs(dir.path());
    assert_eq!(runs.len(), TASKS, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks run twice: {twice:?}");
    let first_log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    let done_by_first = first_log.matches("succeeded").count();
    println!("{TASKS} tasks: {done_by_first} by the first worker, the rest by the second; 0 lost, 0 twice");
}
