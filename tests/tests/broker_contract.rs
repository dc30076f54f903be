//! The broker contract, run against every broker: `memory://`, a Redis server this test
//! starts, and a Redis Cluster it starts (one master, the queues in one shard, so that the
//! order of a fetch is the contract's; shards over several masters are
//! `tests/tests/cluster.rs`'s). Every contract below is one async function over `&dyn Broker`;
//! the `contracts!` macro makes a test of it for each broker, so a `memory://` test cannot
//! pass on behaviour Redis does not have, nor the other way round.
//!
//! What is pinned: the order of a fetch (priority, then queue, then arrival), the refusals
//! and their dead-letter reasons, settling (ack, requeue, defer, dead-letter) only by the
//! holder of a message's tag, recovery (a new tag, counts in the headers, `redelivered`),
//! fencing (a lost lease is reported and cannot settle), crash counting for poison
//! detection, ETA parking, dead-letter replay, revokes, and both kinds of exchange.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskq::broker::{Broker, DeadLetterMatch, Delivery, Outgoing, RecoverAfter};
use taskq::keys::BrokerKeys;
use taskq::protocol::names::{field, header, property};
use taskq::protocol::{DecodeErrorKind, NewMessage};
use taskq::{Client, Config, TaskState};
use taskq_tests::cluster::RedisCluster;
use taskq_tests::worker::{eventually, RunningWorker};
use taskq_tests::RedisServer;

/// Lease lapse used to recover everything held: every lease is at least this old.
const LAPSED: Duration = Duration::ZERO;
/// Size limit of a fetch that refuses nothing in these tests.
const ANY_SIZE: usize = 1 << 20;

/// A broker under test, the result store beside it, and the Redis server behind both when
/// there is one.
struct Subject {
    broker: Arc<dyn Broker>,
    backend_url: String,
    _server: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
}

impl Subject {
    fn memory(test: &str, keys: BrokerKeys) -> Self {
        let url = format!("memory://contract-{test}");
        Self {
            broker: taskq::broker::open_with_keys(&url, keys).unwrap(),
            backend_url: url,
            _server: None,
            _cluster: None,
        }
    }

    fn redis(keys: BrokerKeys) -> Self {
        let server = RedisServer::start();
        Self {
            broker: taskq::broker::open_with_keys(&server.url(), keys).unwrap(),
            backend_url: server.url_db(1),
            _server: Some(server),
            _cluster: None,
        }
    }

    fn cluster(keys: BrokerKeys) -> Self {
        let cluster = RedisCluster::start(1, 0);
        let url = format!("{}?shards=1", cluster.cluster_url());
        Self {
            broker: taskq::broker::open_with_keys(&url, keys).unwrap(),
            backend_url: cluster.cluster_url(),
            _server: None,
            _cluster: Some(cluster),
        }
    }

    /// A client on this broker and result store.
    fn client(&self) -> Client {
        let backend = taskq::backend::open(&self.backend_url, None).unwrap();
        Client::with_parts(self.broker.clone(), backend, Config::default())
    }
}

/// A Celery task message for `queue` with task id `id`, at `priority`.
fn message(queue: &str, id: &str, priority: u8) -> Outgoing {
    let mut message = NewMessage::new("tasks.contract", id);
    message.priority = priority;
    Outgoing {
        queue: queue.to_owned(),
        priority,
        envelope: message.encode(queue).unwrap(),
    }
}

/// A raw envelope, as a foreign or broken producer may write it.
fn raw(queue: &str, envelope: &str) -> Outgoing {
    Outgoing {
        queue: queue.to_owned(),
        priority: 0,
        envelope: envelope.to_owned(),
    }
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|q| (*q).to_owned()).collect()
}

fn envelope(delivery: &Delivery) -> Value {
    serde_json::from_str(&delivery.raw).unwrap()
}

fn task_id(delivery: &Delivery) -> String {
    envelope(delivery)[field::HEADERS][header::ID]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(task_id).collect()
}

fn count(delivery: &Delivery, name: &str) -> u64 {
    envelope(delivery)[field::HEADERS][name]
        .as_u64()
        .unwrap_or(0)
}

/// The tag a message is held under in its store: the delivery's tag, less the shard index a
/// cluster broker puts in front of it (`2|<tag>`).
fn held_tag(delivery: &Delivery) -> &str {
    match delivery.tag.split_once('|') {
        Some((shard, tag)) if shard.parse::<usize>().is_ok() => tag,
        _ => &delivery.tag,
    }
}

fn tag_in_envelope(delivery: &Delivery) -> String {
    envelope(delivery)[field::PROPERTIES][property::DELIVERY_TAG]
        .as_str()
        .unwrap()
        .to_owned()
}

fn redelivered(delivery: &Delivery) -> bool {
    envelope(delivery)[field::PROPERTIES][property::DELIVERY_INFO][property::REDELIVERED]
        .as_bool()
        .unwrap_or(false)
}

async fn fetch(broker: &dyn Broker, names: &[&str], max: usize) -> Vec<Delivery> {
    let fetched = broker.fetch(&queues(names), max, ANY_SIZE).await.unwrap();
    assert!(fetched.refused.is_empty(), "{:?}", fetched.refused);
    fetched.deliveries
}

async fn fetch_one(broker: &dyn Broker, queue: &str) -> Delivery {
    let mut taken = fetch(broker, &[queue], 1).await;
    assert_eq!(taken.len(), 1, "one message expected in {queue}");
    taken.remove(0)
}

// ---------------------------------------------------------------------------------------
// The contracts.
// ---------------------------------------------------------------------------------------

/// One queue hands its messages out in the order they were sent; a fetch takes at most `max`
/// and returns at once, empty, from empty queues.
async fn messages_of_one_queue_come_in_arrival_order(broker: &dyn Broker) {
    assert!(fetch(broker, &["celery"], 10).await.is_empty());
    let sent: Vec<_> = (0..5)
        .map(|n| message("celery", &format!("m{n}"), 0))
        .collect();
    broker.publish(&sent).await.unwrap();
    assert_eq!(ids(&fetch(broker, &["celery"], 2).await), ["m0", "m1"]);
    assert_eq!(
        ids(&fetch(broker, &["celery"], 10).await),
        ["m2", "m3", "m4"]
    );
    assert!(fetch(broker, &["celery"], 10).await.is_empty());
}

/// A fetch takes by priority (0 first) across all its queues, and within one priority in
/// the order the queues are named.
async fn a_fetch_takes_by_priority_then_by_queue_order(broker: &dyn Broker) {
    broker
        .publish(&[
            message("low", "low-9", 9),
            message("low", "low-0", 0),
            message("high", "high-3", 3),
            message("high", "high-0", 0),
            message("low", "low-6", 6),
        ])
        .await
        .unwrap();
    let taken = fetch(broker, &["high", "low"], 10).await;
    assert_eq!(ids(&taken), ["high-0", "low-0", "high-3", "low-6", "low-9"]);
    let queues: Vec<_> = taken.iter().map(|d| d.queue.as_str()).collect();
    assert_eq!(queues, ["high", "low", "high", "low", "low"]);
}

/// With custom priority steps, every priority lands in a list a fetch reads.
async fn custom_priority_steps_leave_no_priority_behind(broker: &dyn Broker) {
    let sent: Vec<_> = (0..=9)
        .rev()
        .map(|p| message("celery", &format!("p{p}"), p))
        .collect();
    broker.publish(&sent).await.unwrap();
    let taken = fetch(broker, &["celery"], 20).await;
    // Steps [0, 5, 7]: 0–4 share the first list, 5–6 the second, 7–9 the last, each in
    // arrival order (highest number sent first).
    assert_eq!(
        ids(&taken),
        ["p4", "p3", "p2", "p1", "p0", "p6", "p5", "p9", "p8", "p7"]
    );
}

/// What a fetch cannot hand over goes to the dead-letter list with its reason, and the fetch
/// names it, with the task id when the text has one: too large, not JSON, no delivery tag.
async fn refused_messages_are_dead_lettered_with_their_reason(broker: &dyn Broker) {
    let large = message("celery", "too-large", 0);
    let size = large.envelope.len();
    let untagged = r#"{"headers": {"task": "t", "id": "untagged"}, "properties": {}}"#;
    broker
        .publish(&[
            large,
            raw("celery", "not json"),
            raw("celery", untagged),
            message("celery", "fine", 0),
        ])
        .await
        .unwrap();
    let fetched = broker
        .fetch(&queues(&["celery"]), 10, size - 1)
        .await
        .unwrap();
    assert_eq!(ids(&fetched.deliveries), ["fine"]);
    let refused: Vec<_> = fetched
        .refused
        .iter()
        .map(|r| (r.queue.as_str(), r.refusal.kind(), r.refusal.task_id()))
        .collect();
    assert_eq!(
        refused,
        [
            ("celery", DecodeErrorKind::TooLarge, Some("too-large")),
            ("celery", DecodeErrorKind::Undecodable, None),
            ("celery", DecodeErrorKind::Invalid, Some("untagged")),
        ]
    );

    let dead = broker.dead_letters(10).await.unwrap();
    let reasons: Vec<_> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0], "message has no properties.delivery_tag");
    assert!(
        reasons[1].starts_with("message is not JSON"),
        "{}",
        reasons[1]
    );
    assert_eq!(
        reasons[2],
        format!(
            "message is {size} bytes, over the limit of {} (TASKQ_MAX_MESSAGE_SIZE)",
            size - 1
        )
    );
    assert_eq!(dead[1].payload, "not json");
    assert!(dead.iter().all(|d| d.queue == "celery" && d.time > 0.0));
}

/// An acknowledged message is gone: nothing recovers it, and renewing its tag reports it lost.
async fn an_acked_message_is_gone(broker: &dyn Broker) {
    broker.publish(&[message("celery", "a", 0)]).await.unwrap();
    let held = fetch_one(broker, "celery").await;
    assert_eq!(held_tag(&held), tag_in_envelope(&held));
    assert_eq!(
        broker.renew(std::slice::from_ref(&held.tag)).await.unwrap(),
        [] as [String; 0]
    );
    broker.ack(std::slice::from_ref(&held.tag)).await.unwrap();
    assert_eq!(
        broker.renew(std::slice::from_ref(&held.tag)).await.unwrap(),
        [held.tag]
    );
    assert_eq!(
        broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap(),
        0
    );
    assert!(fetch(broker, &["celery"], 10).await.is_empty());
}

/// A requeued message goes back to the front of the list it came from, unchanged.
async fn a_requeued_message_is_next(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "a", 0), message("celery", "b", 0)])
        .await
        .unwrap();
    let a = fetch_one(broker, "celery").await;
    broker.requeue(std::slice::from_ref(&a)).await.unwrap();
    let again = fetch(broker, &["celery"], 10).await;
    assert_eq!(ids(&again), ["a", "b"]);
    assert_eq!(again[0].raw, a.raw);
    assert_eq!(again[0].tag, a.tag);
}

/// A message whose lease lapsed returns to the front of its list under a new tag
/// (`<tag>.<n>`), counted in `taskq_recoveries` and marked redelivered; a lease renewed
/// within the timeout keeps it held.
async fn a_lapsed_lease_is_recovered_under_a_new_tag(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "a", 0), message("celery", "b", 0)])
        .await
        .unwrap();
    let first = fetch_one(broker, "celery").await;
    assert!(!redelivered(&first));
    assert_eq!(
        broker
            .recover(RecoverAfter::new(Duration::from_secs(60)), 10)
            .await
            .unwrap(),
        0
    );

    assert_eq!(
        broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap(),
        1
    );
    let second = fetch_one(broker, "celery").await;
    assert_eq!(task_id(&second), "a", "recovered to the front of its list");
    assert_eq!(second.tag, format!("{}.1", first.tag));
    assert_eq!(tag_in_envelope(&second), held_tag(&second));
    assert_eq!(count(&second, header::TASKQ_RECOVERIES), 1);
    assert_eq!(count(&second, header::TASKQ_CRASHES), 0);
    assert!(redelivered(&second));

    assert_eq!(
        broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap(),
        1
    );
    let third = fetch_one(broker, "celery").await;
    assert_eq!(count(&third, header::TASKQ_RECOVERIES), 2);
    assert_eq!(third.tag, format!("{}.2", second.tag));
}

/// Fencing: once recovered, the old holder learns it lost the message (renew reports its
/// tag) and nothing it does with the old tag settles the new holder's message.
async fn a_holder_that_lost_its_lease_cannot_settle_the_message(broker: &dyn Broker) {
    broker.publish(&[message("celery", "a", 0)]).await.unwrap();
    let old = fetch_one(broker, "celery").await;
    broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap();
    let new = fetch_one(broker, "celery").await;

    let lost = broker
        .renew(&[old.tag.clone(), new.tag.clone()])
        .await
        .unwrap();
    assert_eq!(lost, [old.tag.as_str()]);

    broker.ack(std::slice::from_ref(&old.tag)).await.unwrap();
    broker.requeue(std::slice::from_ref(&old)).await.unwrap();
    broker.defer(&old, 0.0).await.unwrap();
    broker.dead_letter(&old, "stale holder").await.unwrap();
    assert!(broker.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(broker.promote_due(10).await.unwrap().moved, 0);
    assert!(fetch(broker, &["celery"], 10).await.is_empty());
    assert_eq!(
        broker.renew(std::slice::from_ref(&new.tag)).await.unwrap(),
        [] as [String; 0]
    );
}

/// A message lost while its task ran counts a crash (`taskq_crashes`), which is what poison
/// detection reads; one lost before it started, or whose start mark was taken back, does not.
async fn only_a_started_message_counts_a_crash(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "a", 0), message("celery", "b", 0)])
        .await
        .unwrap();
    let fetched = broker
        .fetch_marking(&queues(&["celery"]), 2, ANY_SIZE, 1)
        .await
        .unwrap();
    assert_eq!(ids(&fetched.deliveries), ["a", "b"]);
    broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap();
    let taken = fetch(broker, &["celery"], 10).await;
    let counts: Vec<_> = taken
        .iter()
        .map(|d| {
            (
                task_id(d),
                count(d, header::TASKQ_RECOVERIES),
                count(d, header::TASKQ_CRASHES),
            )
        })
        .collect();
    // Both go back to the front of the list; "a" was marked started by the fetch.
    assert!(counts.contains(&("a".to_owned(), 1, 1)), "{counts:?}");
    assert!(counts.contains(&("b".to_owned(), 1, 0)), "{counts:?}");

    let a = taken.iter().find(|d| task_id(d) == "a").unwrap();
    let b = taken.iter().find(|d| task_id(d) == "b").unwrap();
    broker
        .mark_started(&[a.tag.clone(), b.tag.clone()])
        .await
        .unwrap();
    broker
        .unmark_started(std::slice::from_ref(&b.tag))
        .await
        .unwrap();
    broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap();
    let again = fetch(broker, &["celery"], 10).await;
    let a = again.iter().find(|d| task_id(d) == "a").unwrap();
    let b = again.iter().find(|d| task_id(d) == "b").unwrap();
    assert_eq!(count(a, header::TASKQ_CRASHES), 2);
    assert_eq!(count(b, header::TASKQ_CRASHES), 0);
    assert_eq!(count(b, header::TASKQ_RECOVERIES), 2);
}

/// Settling a message clears its start mark: a later copy under the same tag is not taken
/// for a crashed run.
async fn settling_clears_the_start_mark(broker: &dyn Broker) {
    let sent = message("celery", "a", 0);
    broker.publish(std::slice::from_ref(&sent)).await.unwrap();
    let held = broker
        .fetch_marking(&queues(&["celery"]), 1, ANY_SIZE, 1)
        .await
        .unwrap()
        .deliveries
        .remove(0);
    broker.ack(&[held.tag]).await.unwrap();
    broker.publish(&[sent]).await.unwrap();
    fetch_one(broker, "celery").await;
    broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap();
    let again = fetch_one(broker, "celery").await;
    assert_eq!(count(&again, header::TASKQ_CRASHES), 0);
}

/// Two copies of one envelope held at once get tags of their own (`<tag>+<n>`), so settling
/// or losing one never takes the other with it.
async fn copies_of_one_envelope_are_held_apart(broker: &dyn Broker) {
    let sent = message("celery", "a", 0);
    broker.publish(&[sent.clone(), sent.clone()]).await.unwrap();
    let held = fetch(broker, &["celery"], 10).await;
    assert_eq!(held.len(), 2);
    assert_eq!(held[1].tag, format!("{}+1", held[0].tag));
    assert_eq!(tag_in_envelope(&held[1]), held_tag(&held[1]));
    broker
        .ack(std::slice::from_ref(&held[0].tag))
        .await
        .unwrap();
    assert_eq!(
        broker
            .renew(std::slice::from_ref(&held[1].tag))
            .await
            .unwrap(),
        [] as [String; 0]
    );
    assert_eq!(
        broker.recover(RecoverAfter::new(LAPSED), 10).await.unwrap(),
        1
    );
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["a"]);
}

/// A deferred message waits, parked, until its ETA, then goes to the front of its list with
/// the envelope it was deferred with; `promote_due` tells when the next one is due.
async fn a_deferred_message_waits_for_its_eta(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "later", 0), message("celery", "due", 0)])
        .await
        .unwrap();
    let held = fetch(broker, &["celery"], 2).await;
    let now = broker.server_time().await.unwrap();
    let later_eta = now + 3600.0;
    broker.defer(&held[0], later_eta).await.unwrap();
    let retried = Delivery {
        raw: message("celery", "due-retry", 0).envelope.into(),
        ..held[1].clone()
    };
    broker.defer(&retried, now - 1.0).await.unwrap();
    assert_eq!(
        broker
            .renew(std::slice::from_ref(&held[0].tag))
            .await
            .unwrap(),
        [held[0].tag.clone()]
    );

    let promoted = broker.promote_due(10).await.unwrap();
    assert_eq!(promoted.moved, 1);
    let next = promoted.next_due.expect("the later one is parked");
    assert!((next - later_eta).abs() < 0.001, "{next} vs {later_eta}");
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["due-retry"]);
    assert_eq!(broker.promote_due(10).await.unwrap().moved, 0);
}

/// Dead letters read newest first, keep the message as it was, and replay oldest first to
/// the back of their queues.
async fn dead_letters_are_kept_and_replayed_in_order(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "a", 0), message("celery", "b", 0)])
        .await
        .unwrap();
    let held = fetch(broker, &["celery"], 2).await;
    broker.dead_letter(&held[0], "first reason").await.unwrap();
    broker.dead_letter(&held[1], "second reason").await.unwrap();
    let dead = broker.dead_letters(10).await.unwrap();
    let entries: Vec<_> = dead
        .iter()
        .map(|d| (d.reason.as_str(), d.queue.as_str(), d.payload.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("second reason", "celery", &*held[1].raw),
            ("first reason", "celery", &*held[0].raw),
        ]
    );
    assert_eq!(broker.dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(
        broker
            .renew(std::slice::from_ref(&held[0].tag))
            .await
            .unwrap()
            .len(),
        1
    );

    broker
        .publish(&[message("celery", "waiting", 0)])
        .await
        .unwrap();
    assert_eq!(broker.requeue_dead_letters(1).await.unwrap(), 1);
    assert_eq!(broker.requeue_dead_letters(10).await.unwrap(), 1);
    assert!(broker.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(
        ids(&fetch(broker, &["celery"], 10).await),
        ["waiting", "a", "b"]
    );
}

/// A waiter returns when a message arrives, and after its timeout when none does.
async fn a_waiter_wakes_for_a_message(broker: &dyn Broker) {
    let started = std::time::Instant::now();
    broker
        .wait_for_messages(&queues(&["celery"]), Duration::from_millis(200))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    broker.publish(&[message("celery", "a", 0)]).await.unwrap();
    let started = std::time::Instant::now();
    broker
        .wait_for_messages(&queues(&["celery"]), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["a"]);
}

/// Revokes are kept with the broker's time, and read back from a given time on.
async fn revokes_are_kept_with_their_time(broker: &dyn Broker) {
    broker
        .record_revokes(&["r1".to_owned(), "r2".to_owned()])
        .await
        .unwrap();
    let all = broker.revokes_since(f64::NEG_INFINITY).await.unwrap();
    let mut ids: Vec<_> = all.ids.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["r1", "r2"]);
    assert!(all.ids.iter().all(|(_, at)| *at <= all.now));
    let later = broker.revokes_since(all.now + 1.0).await.unwrap();
    assert!(later.ids.is_empty());
}

/// A fanout message reaches every subscriber whatever its routing key; a direct one reaches
/// the queues bound with its routing key, and only those.
async fn exchanges_route_as_kombu_does(broker: &dyn Broker) {
    let mut first = broker.subscribe_broadcast("celery.pidbox").await.unwrap();
    let mut second = broker.subscribe_broadcast("celery.pidbox").await.unwrap();
    broker
        .broadcast("celery.pidbox", "some.key", "{\"n\": 1}")
        .await
        .unwrap();
    for sub in [&mut first, &mut second] {
        let got = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await;
        assert_eq!(got.unwrap().as_deref(), Some("{\"n\": 1}"));
    }

    broker
        .bind("reply.celery.pidbox", "oid-1", "oid-1.reply")
        .await
        .unwrap();
    broker
        .bind("reply.celery.pidbox", "oid-1", "oid-1.reply")
        .await
        .unwrap();
    broker
        .bind("reply.celery.pidbox", "oid-2", "oid-2.reply")
        .await
        .unwrap();
    let reply = message("oid-1.reply", "reply", 0).envelope;
    let delivered = broker
        .publish_direct("reply.celery.pidbox", "oid-1", &reply)
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    assert_eq!(ids(&fetch(broker, &["oid-1.reply"], 10).await), ["reply"]);
    assert!(fetch(broker, &["oid-2.reply"], 10).await.is_empty());
    let nobody = broker
        .publish_direct("reply.celery.pidbox", "oid-3", &reply)
        .await
        .unwrap();
    assert_eq!(nobody, 0);
}

/// Dead letters whose reason contains a text are replayed, oldest first; the others stay.
async fn dead_letters_are_requeued_by_reason(broker: &dyn Broker) {
    broker
        .publish(&[
            message("celery", "a", 0),
            message("celery", "b", 0),
            message("celery", "c", 0),
        ])
        .await
        .unwrap();
    let held = fetch(broker, &["celery"], 3).await;
    broker
        .dead_letter(&held[0], "NotRegistered: x")
        .await
        .unwrap();
    broker.dead_letter(&held[1], "too large").await.unwrap();
    broker
        .dead_letter(&held[2], "NotRegistered: y")
        .await
        .unwrap();

    let none = broker
        .requeue_dead_letters_matching(10, &reason("notregistered"))
        .await
        .unwrap();
    assert_eq!(none, 0, "the match is case-sensitive");
    let moved = broker
        .requeue_dead_letters_matching(1, &reason("NotRegistered"))
        .await
        .unwrap();
    assert_eq!(moved, 1, "at most max");
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["a"]);
    let moved = broker
        .requeue_dead_letters_matching(10, &reason("NotRegistered"))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let left: Vec<_> = broker
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect();
    assert_eq!(left, ["too large"]);
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["c"]);
}

fn reason(text: &str) -> DeadLetterMatch {
    DeadLetterMatch::ReasonContains(text.to_owned())
}

/// One task's dead letter is replayed by its id, and no other.
async fn a_dead_letter_is_requeued_by_task_id(broker: &dyn Broker) {
    broker
        .publish(&[message("celery", "a", 0), message("celery", "b", 0)])
        .await
        .unwrap();
    let held = fetch(broker, &["celery"], 2).await;
    for delivery in &held {
        broker.dead_letter(delivery, "NotRegistered").await.unwrap();
    }
    let by_id = |id: &str| DeadLetterMatch::TaskId(id.to_owned());
    let dead = broker.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].task_id().as_deref(), Some("b"), "newest first");

    let none = broker
        .requeue_dead_letters_matching(10, &by_id("nope"))
        .await
        .unwrap();
    assert_eq!(none, 0);
    let moved = broker
        .requeue_dead_letters_matching(10, &by_id("b"))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["b"]);
    let left: Vec<_> = broker.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].task_id().as_deref(), Some("a"));
}

/// A plain queue pops oldest first, waits for a message up to its timeout, and a removed
/// binding routes nothing.
async fn a_reply_queue_pops_in_order_and_unbinds(broker: &dyn Broker) {
    let queue = taskq::keys::pidbox_reply_queue("oid-pop");
    broker
        .bind("reply.celery.pidbox", "oid-pop", &queue)
        .await
        .unwrap();
    for n in ["1", "2"] {
        let sent = broker
            .publish_direct("reply.celery.pidbox", "oid-pop", n)
            .await
            .unwrap();
        assert_eq!(sent, 1);
    }
    let first = broker.pop(&queue, Duration::ZERO).await.unwrap();
    let second = broker.pop(&queue, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        (first.as_deref(), second.as_deref()),
        (Some("1"), Some("2"))
    );

    let started = std::time::Instant::now();
    let nothing = broker
        .pop(&queue, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(nothing, None);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(broker.pop(&queue, Duration::ZERO).await.unwrap(), None);

    let late = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker
            .publish_direct("reply.celery.pidbox", "oid-pop", "late")
            .await
            .unwrap()
    };
    let (popped, _) = tokio::join!(broker.pop(&queue, Duration::from_secs(10)), late);
    assert_eq!(popped.unwrap().as_deref(), Some("late"));

    broker
        .unbind("reply.celery.pidbox", "oid-pop", &queue)
        .await
        .unwrap();
    let nobody = broker
        .publish_direct("reply.celery.pidbox", "oid-pop", "3")
        .await
        .unwrap();
    assert_eq!(nobody, 0);
}

/// A purge deletes what waits in every priority list of the queues named, and only that.
async fn a_purge_empties_every_priority_list(broker: &dyn Broker) {
    broker
        .publish(&[
            message("celery", "low", 0),
            message("celery", "high", 9),
            message("celery", "held", 0),
            message("other", "kept", 0),
        ])
        .await
        .unwrap();
    let held = fetch(broker, &["celery"], 1).await;
    assert_eq!(ids(&held), ["low"]);
    assert_eq!(broker.purge(&queues(&["celery"])).await.unwrap(), 2);
    assert_eq!(broker.purge(&queues(&["celery"])).await.unwrap(), 0);
    assert!(fetch(broker, &["celery"], 10).await.is_empty());
    assert_eq!(ids(&fetch(broker, &["other"], 10).await), ["kept"]);
    assert!(broker
        .renew(&[held[0].tag.clone()])
        .await
        .unwrap()
        .is_empty());
}

/// Queue stats count waiting, held, parked and dead-lettered messages per queue, for the
/// queues asked or every queue published to.
async fn queue_stats_count_each_state(broker: &dyn Broker) {
    broker
        .publish(&[
            message("celery", "w1", 0),
            message("celery", "w2", 6),
            message("celery", "h1", 0),
            message("celery", "h2", 0),
            message("celery", "h3", 0),
            message("reports", "r1", 0),
        ])
        .await
        .unwrap();
    // Fetch order: priority first, so w2 (priority 6) comes last.
    let held = fetch(broker, &["celery"], 4).await;
    assert_eq!(ids(&held), ["w1", "h1", "h2", "h3"]);
    let now = broker.server_time().await.unwrap();
    broker.defer(&held[1], now + 3600.0).await.unwrap();
    broker.dead_letter(&held[2], "boom").await.unwrap();
    broker
        .bind("reply.celery.pidbox", "oid-s", "oid-s.reply.celery.pidbox")
        .await
        .unwrap();

    let all = broker.queue_stats(&[]).await.unwrap();
    let celery = taskq::broker::QueueStats {
        queue: "celery".into(),
        waiting: 1,
        unacked: 2,
        scheduled: 1,
        dead_letters: 1,
    };
    let reports = taskq::broker::QueueStats {
        queue: "reports".into(),
        waiting: 1,
        ..Default::default()
    };
    assert_eq!(all, [celery.clone(), reports.clone()]);
    let asked = broker
        .queue_stats(&queues(&["reports", "nothing"]))
        .await
        .unwrap();
    let nothing = taskq::broker::QueueStats {
        queue: "nothing".into(),
        ..Default::default()
    };
    assert_eq!(asked, [nothing, reports]);
}

async fn a_periodic_slot_is_sent_once_and_only_after_the_last(broker: &dyn Broker) {
    assert_eq!(broker.last_fired("tick").await.unwrap(), None);
    broker.start_schedule("tick", 1_000).await.unwrap();
    broker.start_schedule("tick", 5_000).await.unwrap(); // a start never moves a record
    assert_eq!(broker.last_fired("tick").await.unwrap(), Some(1_000));
    assert!(broker
        .fire_scheduled("tick", 2_000, &message("celery", "s2", 0))
        .await
        .unwrap());
    // The same slot again, or an earlier one: refused, nothing sent.
    assert!(!broker
        .fire_scheduled("tick", 2_000, &message("celery", "s2-again", 0))
        .await
        .unwrap());
    assert!(!broker
        .fire_scheduled("tick", 1_500, &message("celery", "s1", 0))
        .await
        .unwrap());
    assert!(broker
        .fire_scheduled("tick", 3_000, &message("celery", "s3", 6))
        .await
        .unwrap());
    assert_eq!(broker.last_fired("tick").await.unwrap(), Some(3_000));
    assert_eq!(ids(&fetch(broker, &["celery"], 10).await), ["s2", "s3"]);
}

async fn one_scheduler_leads_until_it_resigns_or_its_lease_lapses(broker: &dyn Broker) {
    let lease = Duration::from_millis(300);
    assert!(broker.lead("a", lease).await.unwrap());
    assert!(!broker.lead("b", lease).await.unwrap());
    assert!(broker.lead("a", lease).await.unwrap(), "the holder renews");
    broker.resign("b").await.unwrap(); // not b's to give up
    assert!(!broker.lead("b", lease).await.unwrap());
    broker.resign("a").await.unwrap();
    assert!(broker.lead("b", lease).await.unwrap());
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert!(broker.lead("a", lease).await.unwrap(), "b's lease lapsed");
}

async fn rate_limit_turns_are_one_interval_apart(broker: &dyn Broker) {
    let interval = Duration::from_millis(100);
    let mut turns = Vec::new();
    for _ in 0..4 {
        turns.push(
            broker
                .take_turns("tasks.limited", interval, 1)
                .await
                .unwrap(),
        );
    }
    // Two at once: the first is given, the second follows it.
    turns.push(
        broker
            .take_turns("tasks.limited", interval, 2)
            .await
            .unwrap(),
    );
    let after_two = broker
        .take_turns("tasks.limited", interval, 1)
        .await
        .unwrap();
    assert!(
        after_two.saturating_sub(turns[4]) > Duration::from_millis(160),
        "two turns taken: {turns:?} then {after_two:?}"
    );
    assert!(
        turns[0] < Duration::from_millis(20),
        "the first turn is now: {turns:?}"
    );
    for pair in turns.windows(2) {
        let gap = pair[1].saturating_sub(pair[0]);
        // Each turn is one interval after the one before, less the time between the asks.
        assert!(
            gap > Duration::from_millis(60) && gap <= interval,
            "turns {turns:?}"
        );
    }
    let other = broker.take_turns("tasks.other", interval, 1).await.unwrap();
    assert!(
        other < Duration::from_millis(20),
        "each task has its own turns"
    );
    tokio::time::sleep(after_two + interval).await;
    let later = broker
        .take_turns("tasks.limited", interval, 1)
        .await
        .unwrap();
    assert!(
        later < Duration::from_millis(20),
        "turns do not pile up while idle: {later:?}"
    );
}

async fn a_unique_call_is_queued_once_until_released_or_lapsed(broker: &dyn Broker) {
    let lock = Duration::from_millis(400);
    let first = broker
        .publish_unique("tasks.u:1", "u1", lock, &message("celery", "u1", 0))
        .await
        .unwrap();
    assert_eq!(first, None, "queued");
    let second = broker
        .publish_unique("tasks.u:1", "u2", lock, &message("celery", "u2", 0))
        .await
        .unwrap();
    assert_eq!(second.as_deref(), Some("u1"), "the holder's id comes back");
    broker.release_unique("tasks.u:1", "u2").await.unwrap(); // not u2's to release
    let third = broker
        .publish_unique("tasks.u:1", "u3", lock, &message("celery", "u3", 0))
        .await
        .unwrap();
    assert_eq!(third.as_deref(), Some("u1"));
    broker.release_unique("tasks.u:1", "u1").await.unwrap();
    let fourth = broker
        .publish_unique("tasks.u:1", "u4", lock, &message("celery", "u4", 0))
        .await
        .unwrap();
    assert_eq!(fourth, None, "released");
    tokio::time::sleep(lock + Duration::from_millis(100)).await;
    let fifth = broker
        .publish_unique("tasks.u:1", "u5", lock, &message("celery", "u5", 0))
        .await
        .unwrap();
    assert_eq!(fifth, None, "lapsed");
    assert_eq!(
        ids(&fetch(broker, &["celery"], 10).await),
        ["u1", "u4", "u5"]
    );
}

async fn paused_queues_are_a_set_and_their_messages_stay(broker: &dyn Broker) {
    assert!(broker.paused_queues().await.unwrap().is_empty());
    assert!(broker.pause_queue("reports").await.unwrap());
    assert!(
        !broker.pause_queue("reports").await.unwrap(),
        "paused already"
    );
    assert!(broker.pause_queue("emails").await.unwrap());
    assert_eq!(broker.paused_queues().await.unwrap(), ["emails", "reports"]);
    broker
        .publish(&[message("reports", "r1", 0)])
        .await
        .unwrap();
    assert_eq!(
        broker.queue_stats(&queues(&["reports"])).await.unwrap()[0].waiting,
        1,
        "pausing keeps what is queued"
    );
    assert!(broker.resume_queue("reports").await.unwrap());
    assert!(!broker.resume_queue("reports").await.unwrap(), "not paused");
    assert_eq!(broker.paused_queues().await.unwrap(), ["emails"]);
    assert_eq!(ids(&fetch(broker, &["reports"], 10).await), ["r1"]);
}

// ---------------------------------------------------------------------------------------
// Poison detection, where it acts: a worker reading the crash count.
// ---------------------------------------------------------------------------------------

#[taskq::task(name = "tasks.contract")]
async fn contract_task() -> Result<(), std::convert::Infallible> {
    Ok(())
}

/// A message whose task crashed its workers `TASKQ_MAX_RECOVERIES` times is not run again:
/// a worker dead-letters it with the reason and stores `WorkerLostError` for its caller.
async fn a_worker_dead_letters_a_message_that_crashed_too_often(subject: &Subject) {
    let client = subject.client();
    let max = client.config().max_recoveries;
    let mut poison = message("celery", "poison", 0);
    let mut envelope: Value = serde_json::from_str(&poison.envelope).unwrap();
    envelope[field::HEADERS][header::TASKQ_CRASHES] = max.into();
    poison.envelope = envelope.to_string();
    subject
        .broker
        .publish(&[poison, message("celery", "healthy", 0)])
        .await
        .unwrap();

    let worker = RunningWorker::start(&client, |b| b);
    let healthy = client.result::<()>("healthy");
    healthy.get(Duration::from_secs(30)).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the poison message dead-lettered",
        || async { !subject.broker.dead_letters(1).await.unwrap().is_empty() },
    )
    .await;
    worker.stop().await;

    let dead = subject.broker.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("WorkerLostError"),
        "{}",
        dead[0].reason
    );
    let poisoned = client.result::<()>("poison");
    assert_eq!(poisoned.state().await.unwrap(), TaskState::Failure);
    let failure = poisoned.failure().await.unwrap().unwrap();
    assert_eq!(failure.exc_type(), "WorkerLostError");
}

/// Remote control from the client reaches a worker, which answers by node name; the
/// caller's reply queue and its binding are gone afterwards.
async fn remote_control_reaches_a_worker_and_cleans_up(subject: &Subject) {
    use taskq::control::ControlOptions;

    let client = subject.client();
    let worker = RunningWorker::start(&client, |b| b.hostname("taskq@contract"));
    let options = ControlOptions::new().timeout(Duration::from_secs(1));
    // The worker's subscription may not be in place at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pong = loop {
        let pong = client.control().ping(&options).await.unwrap();
        if !pong.is_empty() || std::time::Instant::now() > deadline {
            break pong;
        }
    };
    assert_eq!(pong[0].node, "taskq@contract");
    assert_eq!(pong[0].reply, serde_json::json!({"ok": "pong"}));

    let limited = ControlOptions::new()
        .timeout(Duration::from_secs(30))
        .limit(1);
    let started = std::time::Instant::now();
    let registered = client
        .control()
        .inspect("registered", &limited)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the limit ends the wait"
    );
    let names = registered[0].reply.as_array().unwrap();
    assert!(names.iter().any(|n| n == "tasks.contract"), "{names:?}");

    let elsewhere = options.clone().destination(["celery@elsewhere"]);
    assert!(client.control().ping(&elsewhere).await.unwrap().is_empty());
    let toggled = client.control().enable_events(&options).await.unwrap();
    assert_eq!(
        toggled[0].reply,
        serde_json::json!({"ok": "task events enabled"})
    );
    let revoked = client
        .control()
        .revoke(&["gone-1".to_owned()], false, &options)
        .await
        .unwrap();
    assert!(revoked[0].reply["ok"].as_str().unwrap().contains("gone-1"));
    let recorded = subject
        .broker
        .revokes_since(f64::NEG_INFINITY)
        .await
        .unwrap();
    assert!(recorded.ids.iter().any(|(id, _)| id == "gone-1"));
    worker.stop().await;

    // Nothing routes to a reply queue of a finished call any more.
    let stats = subject.broker.queue_stats(&[]).await.unwrap();
    assert!(
        stats
            .iter()
            .all(|s| !s.queue.contains("reply.celery.pidbox")),
        "{stats:?}"
    );
    let routed = subject
        .broker
        .publish_direct("reply.celery.pidbox", "any", "x")
        .await
        .unwrap();
    assert_eq!(routed, 0);
}

/// A queue paused before a worker starts is skipped from its first fetch; one paused while
/// it runs is skipped from the broadcast on; resuming takes it up again.
async fn a_worker_skips_paused_queues_until_resumed(subject: &Subject) {
    use taskq::control::ControlOptions;

    let client = subject.client();
    let options = ControlOptions::new().timeout(Duration::from_millis(500));
    client
        .control()
        .pause_queue("held", &options)
        .await
        .unwrap();
    let worker = RunningWorker::start(&client, |b| {
        b.hostname("taskq@paused")
            .queues(["celery", "held", "later"])
    });
    let held = client
        .send(&contract_task, (), taskq::Options::new().queue("held"))
        .await
        .unwrap();
    let runs = client
        .send(&contract_task, (), taskq::Options::new())
        .await
        .unwrap();
    runs.get(Duration::from_secs(20)).await.unwrap();
    let waiting = |queue: &'static str| async move {
        subject
            .broker
            .queue_stats(&[queue.to_owned()])
            .await
            .unwrap()[0]
            .waiting
    };
    assert_eq!(
        waiting("held").await,
        1,
        "a queue paused at start is skipped"
    );

    // Paused while the worker runs: once a worker answered, it skips the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client
        .control()
        .pause_queue("later", &options)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no worker answered pause_queue"
        );
    }
    client
        .send(&contract_task, (), taskq::Options::new().queue("later"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        waiting("later").await,
        1,
        "a queue paused at run time is skipped"
    );

    let resumed = client
        .control()
        .resume_queue("held", &options)
        .await
        .unwrap();
    assert_eq!(
        resumed[0].reply,
        serde_json::json!({"ok": "queue held resumed"})
    );
    held.get(Duration::from_secs(20)).await.unwrap();
    assert_eq!(client.control().paused_queues().await.unwrap(), ["later"]);

    // A resume whose broadcast the worker missed (written to the broker only, as when the
    // worker was starting or its Pub/Sub connection was down) holds once the worker reads the
    // paused set again, within its resync period (5 s).
    let resumed_at = std::time::Instant::now();
    assert!(subject.broker.resume_queue("later").await.unwrap());
    eventually(
        Duration::from_secs(10),
        "the missed resume to hold",
        || async { waiting("later").await == 0 },
    )
    .await;
    println!(
        "a resume without its broadcast held after {:.1} s",
        resumed_at.elapsed().as_secs_f64()
    );
    worker.stop().await;
}

// ---------------------------------------------------------------------------------------
// Each contract, on each broker.
// ---------------------------------------------------------------------------------------

/// Kombu's default priority steps.
fn default_keys() -> BrokerKeys {
    BrokerKeys::default()
}

/// Steps a Celery app may configure instead (`priority_steps`).
fn custom_steps() -> BrokerKeys {
    BrokerKeys::default().with_priority_steps(&[0, 5, 7])
}

/// Makes, for each `contract with keys`, a test on `memory://` and one on Redis. A contract
/// takes `&dyn Broker`; one marked `(worker)` takes the whole [`Subject`].
macro_rules! contracts {
    ($($contract:ident with $keys:ident;)* $((worker) $worker_contract:ident;)*) => {
        mod on_memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let subject = Subject::memory(stringify!($contract), $keys());
                    super::$contract(subject.broker.as_ref()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $worker_contract() {
                    let subject = Subject::memory(stringify!($worker_contract), default_keys());
                    super::$worker_contract(&subject).await;
                }
            )*
        }

        mod on_redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let subject = Subject::redis($keys());
                    super::$contract(subject.broker.as_ref()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $worker_contract() {
                    let subject = Subject::redis(default_keys());
                    super::$worker_contract(&subject).await;
                }
            )*
        }

        mod on_cluster {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let subject = Subject::cluster($keys());
                    super::$contract(subject.broker.as_ref()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $worker_contract() {
                    let subject = Subject::cluster(default_keys());
                    super::$worker_contract(&subject).await;
                }
            )*
        }
    };
}

contracts! {
    messages_of_one_queue_come_in_arrival_order with default_keys;
    a_fetch_takes_by_priority_then_by_queue_order with default_keys;
    custom_priority_steps_leave_no_priority_behind with custom_steps;
    refused_messages_are_dead_lettered_with_their_reason with default_keys;
    an_acked_message_is_gone with default_keys;
    a_requeued_message_is_next with default_keys;
    a_lapsed_lease_is_recovered_under_a_new_tag with default_keys;
    a_holder_that_lost_its_lease_cannot_settle_the_message with default_keys;
    only_a_started_message_counts_a_crash with default_keys;
    settling_clears_the_start_mark with default_keys;
    copies_of_one_envelope_are_held_apart with default_keys;
    a_deferred_message_waits_for_its_eta with default_keys;
    dead_letters_are_kept_and_replayed_in_order with default_keys;
    a_waiter_wakes_for_a_message with default_keys;
    revokes_are_kept_with_their_time with default_keys;
    exchanges_route_as_kombu_does with default_keys;
    dead_letters_are_requeued_by_reason with default_keys;
    a_dead_letter_is_requeued_by_task_id with default_keys;
    a_reply_queue_pops_in_order_and_unbinds with default_keys;
    a_purge_empties_every_priority_list with custom_steps;
    queue_stats_count_each_state with default_keys;
    a_periodic_slot_is_sent_once_and_only_after_the_last with custom_steps;
    one_scheduler_leads_until_it_resigns_or_its_lease_lapses with default_keys;
    rate_limit_turns_are_one_interval_apart with default_keys;
    a_unique_call_is_queued_once_until_released_or_lapsed with default_keys;
    paused_queues_are_a_set_and_their_messages_stay with default_keys;
    (worker) a_worker_dead_letters_a_message_that_crashed_too_often;
    (worker) remote_control_reaches_a_worker_and_cleans_up;
    (worker) a_worker_skips_paused_queues_until_resumed;
}
