//! kombu's fanout and direct exchanges on Redis, as taskq writes them: Pub/Sub channel names
//! with the db number and key prefix, binding-table routing of replies, and the envelopes
//! of Celery events a worker publishes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskq::broker::redis::RedisBroker;
use taskq::broker::Broker;
use taskq::keys::{BrokerKeys, DEFAULT_PRIORITY_SEP};
use taskq::protocol::KombuMessage;
use taskq::Options;
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::RedisServer;

const NODE: &str = "taskq@fanout-test";

#[taskq::task(name = "test.fanout.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Everything published on channels matching `pattern` in database `db`, as
/// `(channel, payload)`, read on a plain redis-rs connection like any other kombu peer.
/// Returns once subscribed.
fn collect(
    server: &RedisServer,
    db: u8,
    pattern: &str,
) -> std::sync::mpsc::Receiver<(String, String)> {
    let client = redis::Client::open(server.url_db(db)).unwrap();
    let pattern = pattern.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.psubscribe(&pattern).unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = ready_tx.send(());
        loop {
            match pubsub.get_message() {
                Ok(msg) => {
                    let channel = msg.get_channel_name().to_owned();
                    let payload: String = msg.get_payload().unwrap();
                    if tx.send((channel, payload)).is_err() {
                        return;
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.recv().unwrap();
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_use_kombus_channel_with_db_and_prefix() {
    let server = RedisServer::start();
    let keys = BrokerKeys::new("bpfx:", DEFAULT_PRIORITY_SEP);
    let broker = RedisBroker::with_keys(&server.url_db(2), keys).unwrap();
    let seen = collect(&server, 2, "*");
    broker
        .broadcast("celeryev", "worker.heartbeat", "{\"x\": 1}")
        .await
        .unwrap();
    broker.broadcast("celery.pidbox", "", "{}").await.unwrap();
    let first = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        first,
        (
            "bpfx:/2.celeryev/worker.heartbeat".to_owned(),
            "{\"x\": 1}".to_owned()
        )
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap().0,
        "bpfx:/2.celery.pidbox"
    );

    // Our own subscription gets both shapes of channel of its exchange, and no other.
    let mut sub = broker.subscribe_broadcast("celeryev").await.unwrap();
    broker
        .broadcast("celery.pidbox", "", "other")
        .await
        .unwrap();
    broker.broadcast("celeryev", "", "bare").await.unwrap();
    broker
        .broadcast("celeryev", "task.multi", "keyed")
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await;
        got.push(next.unwrap().unwrap());
    }
    got.sort();
    assert_eq!(got, ["bare", "keyed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_publish_follows_the_binding_table() {
    let server = RedisServer::start();
    let broker = RedisBroker::open(&server.url()).unwrap();
    let url = server.url();
    // What a Python control client declares for its reply queue.
    query::<i64>(
        &url,
        &[
            "SADD",
            "_kombu.binding.reply.celery.pidbox",
            "oid-1\x06\x16\x06\x16oid-1.reply.celery.pidbox",
            "oid-2\x06\x16\x06\x16oid-2.reply.celery.pidbox",
        ],
    );
    let reply = KombuMessage::new(
        "reply.celery.pidbox",
        "oid-1",
        json!({NODE: {"ok": "pong"}}),
    )
    .header("ticket", json!("t-1"))
    .encode()
    .unwrap();
    let delivered = broker
        .publish_direct("reply.celery.pidbox", "oid-1", &reply)
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    let stored: Vec<String> = query(&url, &["LRANGE", "oid-1.reply.celery.pidbox", "0", "-1"]);
    assert_eq!(stored, [reply.as_str()]);
    assert_eq!(
        query::<i64>(&url, &["LLEN", "oid-2.reply.celery.pidbox"]),
        0
    );
    let back = KombuMessage::decode(&stored[0]).unwrap();
    assert_eq!(back.headers["ticket"], "t-1");
    assert_eq!(back.body[NODE]["ok"], "pong");
    assert_eq!(
        broker
            .publish_direct("reply.celery.pidbox", "nobody", &reply)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_events_publishes_celery_events() {
    let server = RedisServer::start();
    let seen = collect(&server, 0, "/0.celeryev/*");
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.hostname(NODE).send_events(true));
    let sent = client.send(&add, (2, 3), Options::new()).await.unwrap();
    assert_eq!(sent.get(Duration::from_secs(10)).await.unwrap(), 5);
    // Long enough for one heartbeat.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    worker.stop().await;

    let mut events: Vec<(String, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok((channel, raw)) = seen.recv_timeout(Duration::from_millis(300)) else {
            if events.iter().any(|(_, e)| e["type"] == "worker-offline") {
                break;
            }
            continue;
        };
        let message = KombuMessage::decode(&raw).unwrap();
        assert_eq!(message.headers["hostname"], NODE);
        assert_eq!(message.exchange, "celeryev");
        assert_eq!(channel, format!("/0.celeryev/{}", message.routing_key));
        match message.body {
            Value::Array(batch) => {
                assert_eq!(message.routing_key, "task.multi");
                events.extend(batch.into_iter().map(|e| (channel.clone(), e)));
            }
            one => events.push((channel, one)),
        }
    }
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|(_, e)| e["type"].as_str())
        .collect();
    for kind in [
        "worker-online",
        "task-received",
        "task-started",
        "task-succeeded",
        "worker-heartbeat",
        "worker-offline",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let event = |kind: &str| {
        events
            .iter()
            .map(|(_, e)| e)
            .find(|e| e["type"] == kind)
            .unwrap()
            .clone()
    };
    let received = event("task-received");
    assert_eq!(received["uuid"], sent.id());
    assert_eq!(received["name"], "test.fanout.add");
    assert_eq!(received["args"], "(2, 3)");
    assert_eq!(received["root_id"], sent.id());
    let succeeded = event("task-succeeded");
    assert_eq!(succeeded["result"], "5");
    assert!(succeeded["runtime"].as_f64().unwrap() >= 0.0);
    let heartbeat = event("worker-heartbeat");
    assert_eq!(heartbeat["freq"], 2.0);
    assert_eq!(heartbeat["sw_ident"], "taskq");
    assert_eq!(heartbeat["processed"], 1);
    assert_eq!(heartbeat["pid"], std::process::id());
    for e in events.iter().map(|(_, e)| e) {
        assert_eq!(e["hostname"], NODE);
        assert!(
            e["timestamp"].as_f64().is_some() && e["clock"].as_u64().is_some(),
            "{e}"
        );
    }
}
