//! An idle worker waits for messages with one blocking `BLMOVE` per watched list (a queue's
//! priority lists, several queues) and wakes when the first list gets one. The waits on the
//! other lists are still blocked in Redis then: the next wait must take them over, not queue
//! another command behind each. Queued behind a blocked one, each would block in turn, and a
//! worker woken by a trickle of tasks grew its connections' backlog, and its own and Redis's
//! memory, with every task.

use std::time::Duration;

use taskq::Options;
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.idle.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// The query buffer (commands Redis has not run yet) of every connection blocked in `BLMOVE`.
fn blocked_backlogs(url: &str) -> Vec<usize> {
    let clients: String = query(url, &["CLIENT", "LIST"]);
    clients
        .lines()
        .filter(|line| line.contains("cmd=blmove"))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("qbuf="))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waking_for_a_trickle_of_tasks_leaves_no_backlog_of_blocked_waits() {
    const TASKS: i64 = 300;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    // One task at a time, each awaited: the worker goes idle and wakes for every one.
    for n in 0..TASKS {
        let sent = client.send(&add, (n, 1), Options::new()).await.unwrap();
        assert_eq!(sent.get(WAIT).await.unwrap(), n + 1);
    }
    let backlogs = blocked_backlogs(&server.url());
    println!("after {TASKS} wakes, unread bytes behind each blocked wait: {backlogs:?}");
    assert!(!backlogs.is_empty(), "the worker waits on its lists");
    // One BLMOVE command is under 100 bytes: anything more is a backlog.
    assert!(
        backlogs.iter().all(|bytes| *bytes < 100),
        "waits pile up behind blocked ones: {backlogs:?}"
    );
    worker.stop().await;
}
