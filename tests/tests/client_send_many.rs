//! Bulk sending: `Client::send_many` and the `delay_many` method `#[task]` generates put many
//! calls on the queue in one pipelined round trip, in order, each with its own id, and a worker
//! runs them like calls sent one by one. Every test runs against its own `redis-server`.

use std::collections::HashSet;
use std::time::Duration;
use taskq_tests::keys;

use serde_json::Value;
use taskq::{Error, Options};
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(10);

#[taskq::task(name = "test.send_many.scale")]
async fn scale(x: i64, by: i64) -> i64 {
    x * by
}

#[taskq::task(name = "test.send_many.shout", queue = "loud")]
async fn shout(word: String) -> String {
    word.to_uppercase()
}

/// The `args` of every message waiting in `list`, oldest (next to be taken) first.
fn queued_args(server: &RedisServer, list: &str) -> Vec<Value> {
    let raw: Vec<String> = query(&server.url(), &["LRANGE", list, "0", "-1"]);
    raw.iter()
        .rev()
        .map(|envelope| {
            let envelope: Value = serde_json::from_str(envelope).expect("envelope is JSON");
            let body = envelope["body"].as_str().expect("body is base64 text");
            let body = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
                .expect("body decodes");
            let body: Value = serde_json::from_slice(&body).expect("body is JSON");
            body[0].clone()
        })
        .collect()
}

#[tokio::test]
async fn send_many_queues_every_call_in_order_with_its_own_id() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client
        .send_many(&scale, (0..500).map(|x| (x, 3)), Options::new())
        .await
        .expect("the broker accepts the batch");

    assert_eq!(sent.len(), 500);
    let ids: HashSet<&str> = sent.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 500, "each call has its own task id");
    let args = queued_args(&server, "celery");
    let expected: Vec<Value> = (0..500).map(|x| serde_json::json!([x, 3])).collect();
    assert_eq!(
        args, expected,
        "the queue holds the calls in the order given"
    );
}

#[tokio::test]
async fn a_worker_runs_a_batch_and_each_handle_reads_its_own_result() {
    let server = RedisServer::start();
    let client = client(&server, |c| c.concurrency = 8);
    let worker = RunningWorker::start(&client, |b| b);

    let sent = client
        .send_many(&scale, (1..=200).map(|x| (x, 2)), Options::new())
        .await
        .expect("the broker accepts the batch");

    for (x, result) in (1..=200).zip(&sent) {
        assert_eq!(result.get(WAIT).await.expect("the task succeeds"), x * 2);
    }
    worker.stop().await;
}

#[tokio::test]
async fn delay_many_sends_through_the_current_client_to_the_tasks_queue() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client
        .scope(shout.delay_many(["a", "b", "c"].map(|w| (w.to_owned(),))))
        .await
        .expect("the broker accepts the batch");

    assert_eq!(sent.len(), 3);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "loud"]), 3);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    let worker = RunningWorker::start(&client, |b| b.queues(["loud"]));
    let words: Vec<String> = futures_join(&sent).await;
    assert_eq!(words, ["A", "B", "C"]);
    worker.stop().await;
}

/// Every result of `sent`, in order.
async fn futures_join(sent: &[taskq::AsyncResult<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for result in sent {
        out.push(result.get(WAIT).await.expect("the task succeeds"));
    }
    out
}

#[tokio::test]
async fn options_apply_to_every_call_of_the_batch() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client
        .send_many(
            &scale,
            (0..10).map(|x| (x, 1)),
            Options::new().queue("bulk").priority(9),
        )
        .await
        .expect("the broker accepts the batch");

    assert_eq!(sent.len(), 10);
    // kombu's priority 9 bucket of queue `bulk`.
    assert_eq!(
        query::<i64>(
            &server.url(),
            &["LLEN", &keys::broker().queue_list("bulk", 9)]
        ),
        10
    );
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
}

#[tokio::test]
async fn a_fixed_task_id_is_refused_and_nothing_is_sent() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let err = client
        .send_many(&scale, [(1, 1), (2, 2)], Options::new().task_id("same"))
        .await
        .expect_err("one id cannot name two calls");

    assert!(matches!(err, Error::Config(_)), "{err}");
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client
        .send_many(&scale, std::iter::empty(), Options::new())
        .await
        .expect("nothing to send is fine");

    assert!(sent.is_empty());
    assert_eq!(query::<i64>(&server.url(), &["DBSIZE"]), 0);
}
