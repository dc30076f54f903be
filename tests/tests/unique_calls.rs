//! Unique calls: a call whose key (task name and arguments by default) is queued or running
//! queues nothing, atomically with the enqueue. 64 producers, each with its own client and
//! connection, send the same call at once: one message is queued and every handle follows
//! it. The lock holds while the task runs, is released when it is done, and lapses by itself.

use std::sync::Arc;
use std::time::Duration;

use taskq::{Client, Options};
use taskq_tests::keys;
use taskq_tests::worker::{client, eventually, query, RunningWorker};
use taskq_tests::RedisServer;
use tokio::sync::Barrier;

const PRODUCERS: usize = 64;
const WAIT: Duration = Duration::from_secs(20);

#[taskq::task(name = "test.unique.report", unique_for = 60)]
async fn report(user_id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(800)).await;
    user_id
}

#[taskq::task(name = "test.unique.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn queued(server: &RedisServer) -> i64 {
    query(&server.url(), &["LLEN", "celery"])
}

fn unique_locks(server: &RedisServer) -> Vec<String> {
    let pattern = format!("{}*", keys::broker().unique_lock(""));
    query(&server.url(), &["KEYS", &pattern])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_producers_sending_one_call_queue_one_message() {
    let server = RedisServer::start();
    let clients: Vec<Client> = (0..PRODUCERS).map(|_| client(&server, |_| {})).collect();
    for c in &clients {
        // Each producer has its connection open before the race starts.
        c.broker().describe();
        c.send(&add, (0, 0), Options::new()).await.unwrap();
    }
    let before = queued(&server);
    let start = Arc::new(Barrier::new(PRODUCERS));
    let sends = clients.into_iter().map(|c| {
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            c.send(&report, (42,), Options::new()).await.unwrap()
        })
    });
    let mut handles = Vec::new();
    for send in sends.collect::<Vec<_>>() {
        handles.push(send.await.unwrap());
    }

    assert_eq!(queued(&server) - before, 1, "one message queued");
    let queued_ids: Vec<&str> = handles
        .iter()
        .filter(|h| !h.deduplicated())
        .map(|h| h.id())
        .collect();
    assert_eq!(queued_ids.len(), 1, "one send queued its call");
    assert!(
        handles.iter().all(|h| h.id() == queued_ids[0]),
        "every handle follows the queued call"
    );
    assert_eq!(unique_locks(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_holds_while_the_call_runs_and_is_released_when_it_is_done() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let first = client.send(&report, (7,), Options::new()).await.unwrap();
    assert!(!first.deduplicated());
    let worker = RunningWorker::start(&client, |b| b);

    // Running now: a second call follows it.
    let url = server.url();
    eventually(WAIT, "the call to be taken", || {
        let taken = query::<i64>(&url, &["HLEN", &keys::broker().unacked()]) == 1;
        async move { taken }
    })
    .await;
    let second = client.send(&report, (7,), Options::new()).await.unwrap();
    assert!(second.deduplicated());
    assert_eq!(second.id(), first.id());
    // Another user's report is another call.
    let other = client.send(&report, (8,), Options::new()).await.unwrap();
    assert!(!other.deduplicated());

    assert_eq!(second.get(WAIT).await.unwrap(), 7);
    assert_eq!(other.get(WAIT).await.unwrap(), 8);
    eventually(WAIT, "the locks to be released", || {
        let none = unique_locks(&server).is_empty();
        async move { none }
    })
    .await;
    let third = client.send(&report, (7,), Options::new()).await.unwrap();
    assert!(!third.deduplicated(), "done: the next call is queued");
    assert_ne!(third.id(), first.id());
    assert_eq!(third.get(WAIT).await.unwrap(), 7);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_key_and_lock_time_apply_per_call_and_the_lock_lapses() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let options = || {
        Options::new()
            .unique_for(Duration::from_millis(500))
            .unique_key("nightly-sum")
    };
    let first = client.send(&add, (1, 2), options()).await.unwrap();
    // Other arguments, same key: one call.
    let second = client.send(&add, (3, 4), options()).await.unwrap();
    assert!(!first.deduplicated() && second.deduplicated());
    assert_eq!(second.id(), first.id());
    // Without the options, the task is not unique.
    let plain = client.send(&add, (1, 2), Options::new()).await.unwrap();
    assert!(!plain.deduplicated());

    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = client.send(&add, (1, 2), options()).await.unwrap();
    assert!(
        !after.deduplicated(),
        "the lock lapsed with no worker to release it"
    );
    assert_eq!(queued(&server), 3);

    let refused = client
        .send(&add, (1, 2), Options::new().unique_key("k"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("unique_for"), "{refused}");
    let refused = client
        .send_many(&report, [(1,), (2,)], Options::new())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("unique"), "{refused}");
}
