//! Clock skew: a worker whose clock is 10 minutes fast and a producer whose clock is 10
//! minutes slow (both under `faketime`), beside a worker with the right time. Every time that
//! decides when a task runs is judged on Redis's clock: countdowns fire when due by Redis's
//! time, and no worker takes a live worker's long task early, whatever its own clock says.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use taskq::TaskState;
use taskq_tests::worker::{client, ledger_runs, wait_nothing_unacked};
use taskq_tests::{example_command, spawn_example_worker, ChildGuard, RedisServer};

const COUNTDOWN_SECS: f64 = 3.0;
const TASK_SECS: f64 = 2.0;
const TASKS: usize = 6;

/// `faketime` with a fixed offset; the monotonic clock (timers) is left alone.
fn faketime(offset: &str) -> [&str; 3] {
    assert!(
        Command::new("faketime")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok(),
        "faketime is missing: install Debian's `faketime` package (.ci/run does)"
    );
    ["faketime", "-f", offset]
}

fn worker_envs() -> [(&'static str, &'static str); 5] {
    [
        ("TASKQ_VISIBILITY_TIMEOUT", "1"),
        ("TASKQ_EXAMPLE_DELAY_MS", "2000"),
        ("TASKQ_CONCURRENCY", "2"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("RUST_LOG", "warn"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdowns_and_leases_follow_redis_time_whatever_the_local_clocks_say() {
    let fast = faketime("+600s");
    let slow = faketime("-600s");
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _fast_worker = ChildGuard::spawn(&mut example_command(
        "worker",
        &fast,
        &server,
        dir.path(),
        "fast-worker.log",
        &worker_envs(),
    ));
    let _right_worker =
        spawn_example_worker(&server, dir.path(), "right-worker.log", &worker_envs());
    let client = client(&server, |config| config.result_backend = server.url());

    // The slow producer sends each task with a 3 s countdown.
    let countdown = COUNTDOWN_SECS.to_string();
    let mut sent = Vec::new();
    for i in 0..TASKS {
        let token = format!("[\"skewed-{i}\"]");
        let output = example_command(
            "send",
            &slow,
            &server,
            dir.path(),
            "producer.log",
            &[("FAKETIME_DONT_FAKE_MONOTONIC", "1")],
        )
        .args([
            "tasks.send_push_notification",
            &token,
            "--countdown",
            &countdown,
        ])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
        assert!(output.status.success(), "send failed: {output:?}");
        let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        sent.push((id, Instant::now()));
    }
    let producer_log = std::fs::read_to_string(dir.path().join("producer.log")).unwrap();
    assert!(
        producer_log.contains("clock differs from the broker"),
        "faketime did not shift the producer's clock: {producer_log}"
    );

    for (id, sent_at) in &sent {
        let result = client.result::<serde_json::Value>(id.clone());
        let done = loop {
            if result.state().await.unwrap() == TaskState::Success {
                break sent_at.elapsed();
            }
            assert!(
                sent_at.elapsed() < Duration::from_secs(30),
                "{id} never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let earliest = Duration::from_secs_f64(COUNTDOWN_SECS + TASK_SECS - 1.0);
        println!("task {id}: done {done:?} after it was sent (countdown 3 s + task 2 s)");
        assert!(
            done >= earliest,
            "{id} ran before its countdown: done after {done:?}"
        );
        assert!(
            done < Duration::from_secs(12),
            "{id} done only after {done:?}"
        );
    }
    wait_nothing_unacked(&server, Duration::from_secs(10));
    let runs = ledger_runs(dir.path());
    assert_eq!(runs.len(), TASKS, "{runs:?}");
    assert!(
        runs.values().all(|n| *n == 1),
        "a 2 s task with 1 s leases ran twice: {runs:?}"
    );
}
