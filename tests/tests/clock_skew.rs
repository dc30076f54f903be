//! Clock skew: a worker whose clock is 10 minutes fast and a producer whose clock is 10
//! minutes slow (both under libfaketime), beside a worker with the right time. Every time that
//! decides when a task runs is judged on Redis's clock: countdowns fire when due by Redis's
//! time, and no worker takes a live worker's long task early, whatever its own clock says.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use taskq::TaskState;
use taskq_tests::worker::{client, ledger_runs, wait_nothing_unacked};
use taskq_tests::{example_command, spawn_example_worker, ChildGuard, RedisServer};

const COUNTDOWN_SECS: f64 = 3.0;
const TASK_SECS: f64 = 2.0;
const TASKS: usize = 6;

/// libfaketime, preloaded into a process directly: the `faketime` wrapper would leave the
/// real process running when the test kills the wrapper.
fn libfaketime() -> String {
    let per_arch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"));
    per_arch
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
        .expect("libfaketime is missing: install Debian's `faketime` package (.ci/run does)")
}

/// `envs` plus what shifts a process's clock by `offset` (e.g. `+600s`); its monotonic
/// clock (timers) is left alone.
fn shifted<'a>(
    lib: &'a str,
    offset: &'a str,
    envs: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = envs.to_vec();
    all.extend([
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);
    all
}

const WORKER_ENVS: [(&str, &str); 4] = [
    ("TASKQ_VISIBILITY_TIMEOUT", "1"),
    ("TASKQ_EXAMPLE_DELAY_MS", "2000"),
    ("TASKQ_CONCURRENCY", "2"),
    ("RUST_LOG", "warn"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdowns_and_leases_follow_redis_time_whatever_the_local_clocks_say() {
    let lib = libfaketime();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _fast_worker = ChildGuard::spawn(&mut example_command(
        "worker",
        &server,
        dir.path(),
        "fast-worker.log",
        &shifted(&lib, "+600s", &WORKER_ENVS),
    ));
    let _right_worker = spawn_example_worker(&server, dir.path(), "right-worker.log", &WORKER_ENVS);
    let client = client(&server, |config| config.result_backend = server.url());

    // The slow producer sends each task with a 3 s countdown.
    let countdown = COUNTDOWN_SECS.to_string();
    let producer_envs = shifted(&lib, "-600s", &[]);
    let mut sent = Vec::new();
    for i in 0..TASKS {
        let token = format!("[\"skewed-{i}\"]");
        let output = example_command("send", &server, dir.path(), "producer.log", &producer_envs)
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
        "libfaketime did not shift the producer's clock: {producer_log}"
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
