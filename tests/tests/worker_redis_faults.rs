//! Redis faults: after Redis restarts (here: killed and started again on the same port, with
//! no data kept), a running worker and a producer resume on their own.

use std::time::{Duration, Instant};

use taskq::Options;
use taskq_tests::worker::{client, RunningWorker};
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
    assert!(client.send(&add, (0, 0), Options::new()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a send to a dead Redis took {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart();

    let restarted = Instant::now();
    let after = send_until_reconnected(&client, (40, 2), restarted).await;
    assert_eq!(after.get(WAIT).await.unwrap(), 42);
    println!("resumed {:?} after Redis came back", restarted.elapsed());
    worker.stop().await;
}
