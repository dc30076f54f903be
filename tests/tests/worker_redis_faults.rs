//! Redis faults: after Redis restarts (here: killed and started again on the same port, with
//! no data kept), a running worker and a producer resume on their own.

use std::time::{Duration, Instant};

use taskq::Options;
use taskq_tests::worker::{client, eventually, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.faults.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Sends `add(args)`, retrying while the client reconnects; fails the test after `WAIT`.
async fn send_until_reconnected(
    client: &taskq::Client,
    args: (i64, i64),
    since: Instant,
) -> taskq::AsyncResult<i64> {
    loop {
        match client.send(&add, args, Options::new()).await {
            Ok(sent) => return sent,
            Err(e) => {
                assert!(
                    since.elapsed() < WAIT,
                    "the producer never reconnected: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumes_after_redis_restarts() {
    let mut server = RedisServer::start();
    let client = client(&server, |config| config.result_backend = server.url());
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    let before = client.send(&add, (1, 2), Options::new()).await.unwrap();
    assert_eq!(before.get(WAIT).await.unwrap(), 3);

    server.restart(); // SIGKILL, then a new server on the same port: connections break
    let restarted = Instant::now();

    // The producer's next sends may fail while it reconnects; they must succeed soon.
    let after = send_until_reconnected(&client, (20, 22), restarted).await;
    // The worker, blocked waiting for messages when Redis went away, picks it up, and the
    // result is published to a waiter on a fresh subscription.
    assert_eq!(after.get(WAIT).await.unwrap(), 42);
    println!("resumed {:?} after the restart", restarted.elapsed());
    assert!(worker.is_alive());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumes_after_redis_is_down_for_a_while() {
    let mut server = RedisServer::start();
    let client = client(&server, |config| config.result_backend = server.url());
    let worker = RunningWorker::start(&client, |b| b.concurrency(2));
    assert_eq!(
        client
            .send(&add, (1, 1), Options::new())
            .await
            .unwrap()
            .get(WAIT)
            .await
            .unwrap(),
        2
    );

    server.stop();
    // Meanwhile a producer gets an error quickly rather than hanging.
    let started = Instant::now();
    let error = match client.send(&add, (0, 0), Options::new()).await {
        Ok(_) => panic!("a send to a stopped Redis succeeded"),
        Err(e) => e,
    };
    // Something else listening on the freed port (another test's server) would answer
    // instead of refusing: say so, so that a slow failure names its cause.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a send to a dead Redis took {:?} and failed with: {error}; port {} accepts \
         connections now: {}",
        started.elapsed(),
        server.port(),
        taskq_tests::port_is_open(server.port())
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart();

    let restarted = Instant::now();
    let after = send_until_reconnected(&client, (40, 2), restarted).await;
    assert_eq!(after.get(WAIT).await.unwrap(), 42);
    println!("resumed {:?} after Redis came back", restarted.elapsed());
    worker.stop().await;
}

/// Waits (with the harness's `eventually`) until `condition` holds; returns how long it took.
async fn time_until(what: &str, condition: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    eventually(WAIT, what, || std::future::ready(condition())).await;
    started.elapsed()
}

/// Freezes or thaws `server` (SIGSTOP/SIGCONT): the kernel keeps its connections open and
/// buffers what clients send, but nothing answers, as on a path that went silent.
fn freeze(server: &RedisServer, frozen: bool) {
    let pid = server.pid().expect("redis-server pid").to_string();
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_makes_sends_fail_fast_and_the_worker_report_a_stall() {
    let server = RedisServer::start();
    // Producer and worker with a 1 s socket timeout.
    let client = client(&server, |config| {
        config.broker_url = format!("{}?socket_timeout=1", server.url());
        config.result_backend = format!("{}?socket_timeout=1", server.url_db(1));
    });
    let worker = taskq::Worker::builder(client.clone())
        .banner(false)
        .queues(["celery"])
        .stall_after(Duration::from_secs(2))
        .build();
    let health = worker.health();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until(std::future::pending()));
    let sum = client.send(&add, (1, 2), Options::new()).await.unwrap();
    assert_eq!(sum.get(WAIT).await.unwrap(), 3);
    assert!(health.check().healthy);

    // Redis goes silent: connections stay open, nothing answers.
    freeze(&server, true);
    let started = Instant::now();
    let send = client.send(&add, (0, 0), Options::new()).await;
    let failed_after = started.elapsed();
    assert!(send.is_err(), "a send into silence must fail, not hang");
    assert!(
        failed_after < Duration::from_secs(4),
        "the send failed only after {failed_after:?}"
    );
    let stalled_after =
        time_until("the worker to report a stall", || !health.check().healthy).await;
    println!(
        "silent Redis: send failed after {failed_after:?}; worker unhealthy {:?} after Redis \
         froze (stall limit 2 s)",
        failed_after + stalled_after
    );

    // Redis answers again: the worker resumes on its own and is healthy again.
    freeze(&server, false);
    let healed = time_until("the worker to be healthy again", || health.check().healthy).await;
    println!("healthy again {healed:?} after Redis thawed");
    let after = send_until_reconnected(&client, (40, 2), Instant::now()).await;
    assert_eq!(after.get(WAIT).await.unwrap(), 42);
    stop.shutdown();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops within 10 s")
        .unwrap()
        .unwrap();
    assert!(!health.check().running);
}
