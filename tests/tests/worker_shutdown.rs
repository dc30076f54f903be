//! Worker shutdown: messages not finished go back to their queues (never lost, never left in
//! `unacked`), running tasks get their grace period, and the worker exits promptly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use taskq_tests::keys;

use taskq::{Options, TaskState};
use taskq_tests::worker::{assert_nothing_unacked, client, eventually, query, RunningWorker};
use taskq_tests::RedisServer;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn queue_contents(server: &RedisServer) -> Vec<String> {
    query(&server.url(), &["LRANGE", "celery", "0", "-1"])
}

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

/// While false, `long` sleeps 30 s; once true, 20 ms.
static LONG_FAST: AtomicBool = AtomicBool::new(false);
static LONG_STARTS: AtomicUsize = AtomicUsize::new(0);
static LONG_FINISHED: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.shutdown.long")]
async fn long(n: u32) -> u32 {
    LONG_STARTS.fetch_add(1, Ordering::SeqCst);
    let nap = if LONG_FAST.load(Ordering::SeqCst) {
        Duration::from_millis(20)
    } else {
        Duration::from_secs(30)
    };
    tokio::time::sleep(nap).await;
    LONG_FINISHED.fetch_add(1, Ordering::SeqCst);
    n
}

static BRIEF_STARTS: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.shutdown.brief")]
async fn brief(n: u32) -> u32 {
    BRIEF_STARTS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    n
}

#[taskq::task(name = "test.shutdown.quick")]
async fn quick(n: u32) -> u32 {
    n
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_puts_unfinished_messages_back() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let mut sent = Vec::new();
    for n in 0..6 {
        sent.push(client.send(&long, (n,), Options::new()).await.unwrap());
    }
    let originals: HashSet<String> = queue_contents(&server).into_iter().collect();
    assert_eq!(originals.len(), 6);

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_millis(500)));
    eventually(WAIT, "a long task to be running", || async {
        LONG_STARTS.load(Ordering::SeqCst) >= 1
    })
    .await;
    // One running, the prefetched ones reserved in unacked, the rest still queued.
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        4
    );
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 2);

    let took = worker.stop().await;
    assert!(
        took < Duration::from_secs(2),
        "the worker took {took:?} to stop"
    );
    assert!(
        took >= Duration::from_millis(450),
        "the grace period was skipped: {took:?}"
    );
    assert_eq!(LONG_FINISHED.load(Ordering::SeqCst), 0);
    assert_eq!(
        LONG_STARTS.load(Ordering::SeqCst),
        1,
        "only one task started"
    );

    // Nothing stored, nothing lost, nothing left in unacked: all six are queued again, as
    // they were sent.
    for s in &sent {
        assert_eq!(s.state().await.unwrap(), TaskState::Pending);
    }
    assert_eq!(query::<i64>(&server.url_db(1), &["DBSIZE"]), 0);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 6);
    assert_nothing_unacked(&server);
    let requeued: HashSet<String> = queue_contents(&server).into_iter().collect();
    assert_eq!(requeued, originals);

    // A second worker runs all six.
    LONG_FAST.store(true, Ordering::SeqCst);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_millis(500)));
    for (n, s) in sent.iter().enumerate() {
        assert_eq!(s.get(WAIT).await.unwrap(), n as u32);
    }
    assert_eq!(LONG_FINISHED.load(Ordering::SeqCst), 6);
    assert_eq!(LONG_STARTS.load(Ordering::SeqCst), 7);
    worker.stop().await;
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    assert_nothing_unacked(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_the_running_task_finish() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let mut sent = Vec::new();
    for n in 0..4 {
        sent.push(client.send(&brief, (n,), Options::new()).await.unwrap());
    }

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_secs(5)));
    eventually(WAIT, "a brief task to be running", || async {
        BRIEF_STARTS.load(Ordering::SeqCst) >= 1
    })
    .await;
    let took = worker.stop().await;
    // It waited for the running task (300 ms), not for the whole grace period.
    assert!(
        took < Duration::from_secs(2),
        "the worker took {took:?} to stop"
    );
    assert_eq!(
        BRIEF_STARTS.load(Ordering::SeqCst),
        1,
        "only one task started"
    );

    // The running one finished and its result is stored; the three that had not started are
    // back in the queue.
    let mut done = 0;
    for s in &sent {
        match s.state().await.unwrap() {
            TaskState::Success => done += 1,
            TaskState::Pending => {}
            other => panic!("unexpected state {other}"),
        }
    }
    assert_eq!(done, 1);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 3);
    assert_nothing_unacked(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_promptly() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_secs(5)));
    let sent = client.send(&quick, (1,), Options::new()).await.unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 1);

    // Now waiting on an empty queue.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = worker.stop().await;
    assert!(
        took < Duration::from_millis(1500),
        "the worker took {took:?} to stop"
    );
    assert_nothing_unacked(&server);

    // A message sent after the worker stopped stays queued for the next one.
    let later = client.send(&quick, (2,), Options::new()).await.unwrap();
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 1);
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(Duration::from_secs(5)));
    assert_eq!(later.get(WAIT).await.unwrap(), 2);
    worker.stop().await;
}

static CHURN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[taskq::task(name = "test.shutdown.churn")]
async fn churn(n: u32) -> u32 {
    CHURN_RUNS.fetch_add(1, Ordering::SeqCst);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_at_any_moment_strands_nothing_in_unacked() {
    // Workers with many slots and a steady stream of messages spend their time fetching;
    // shutting them down at arbitrary moments must never leave a fetched message behind in
    // `unacked` (taskq has no visibility-timeout recovery of its own, so such a message would
    // not run again).
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for round in 0..25u32 {
        let worker = RunningWorker::start(&client, |b| {
            b.concurrency(16)
                .prefetch_multiplier(1)
                .shutdown_grace(Duration::from_secs(2))
        });
        // A producer feeding the queue while the worker runs and stops.
        let producing = std::sync::Arc::new(AtomicBool::new(true));
        let producer = {
            let (client, sent, producing) = (client.clone(), sent.clone(), producing.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while producing.load(Ordering::SeqCst) {
                    let s = client
                        .send(&churn, (round * 10_000 + n,), Options::new())
                        .await
                        .unwrap();
                    sent.lock().unwrap().push(s);
                    n += 1;
                }
            })
        };
        let before = CHURN_RUNS.load(Ordering::SeqCst);
        eventually(WAIT, "the worker to start running tasks", || async {
            CHURN_RUNS.load(Ordering::SeqCst) > before + 5
        })
        .await;
        // Vary the moment of the shutdown a little from round to round.
        tokio::time::sleep(Duration::from_micros(u64::from(round % 5) * 700)).await;
        worker.stop().await;
        producing.store(false, Ordering::SeqCst);
        producer.await.unwrap();
        let unacked: i64 = query(&server.url(), &["HLEN", &keys::broker().unacked()]);
        assert_eq!(
            unacked, 0,
            "round {round}: {unacked} message(s) left in unacked after a clean shutdown"
        );
    }
    // Every message either has its result or is still queued.
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let mut finished = 0;
    for s in &sent {
        if s.state().await.unwrap() == TaskState::Success {
            finished += 1;
        }
    }
    let queued: i64 = query(&server.url(), &["LLEN", "celery"]);
    assert_eq!(finished + queued as usize, sent.len());
}
