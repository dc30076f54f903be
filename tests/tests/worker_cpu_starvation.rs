//! A CPU-bound task that blocks its worker's runtime must not lose its lease: renewal runs on
//! a thread of its own, so another worker's recovery does not take the message and run it a
//! second time.

use std::time::Duration;
use taskq_tests::keys;

use taskq::Options;
use taskq_tests::worker::{client, count_run, query, wait_until_taken, RunningWorker};
use taskq_tests::RedisServer;

#[taskq::task(name = "test.cpu.hog")]
async fn hog(key: String) -> u32 {
    let run = count_run(&key);
    // Blocks the runtime thread outright, as CPU-heavy code without spawn_blocking does.
    std::thread::sleep(Duration::from_millis(3000));
    run
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cpu_bound_task_keeps_its_lease_while_another_worker_runs_recovery() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(800);
    // Worker A on a runtime with one thread, which the task will block.
    let rt_a = runtime();
    let client_a = rt_a.block_on(async { client(&server, |_| {}) });
    let worker_a = rt_a.block_on(async {
        RunningWorker::start(&client_a, |b| b.concurrency(1).visibility_timeout(timeout))
    });
    let key = uuid::Uuid::new_v4().to_string();
    let sent = rt_a
        .block_on(client_a.send(&hog, (key.clone(),), Options::new()))
        .unwrap();
    wait_until_taken(&server, Duration::from_secs(10));

    // Worker B on another runtime, running recovery every 0.2 s.
    let rt_b = runtime();
    let client_b = rt_b.block_on(async { client(&server, |_| {}) });
    let worker_b = rt_b.block_on(async {
        RunningWorker::start(&client_b, |b| b.concurrency(1).visibility_timeout(timeout))
    });

    let run = rt_a.block_on(sent.get(Duration::from_secs(20))).unwrap();
    assert_eq!(run, 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count_run(&key),
        2,
        "the task ran a second time: its lease lapsed"
    );
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        0
    );
    rt_b.block_on(worker_b.stop());
    rt_a.block_on(worker_a.stop());
}
