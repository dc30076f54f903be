//! The exact bytes taskq reads and writes in Redis, compared with what Python Celery and kombu
//! write (the wire spec, `celery-redis-wire.md` §3.4, §4.2–4.3, §5.2–5.4): task envelopes,
//! queue and priority list names, bindings, the `unacked` bookkeeping, and result records.

use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use taskq::state::ResultMeta;
use taskq::{Options, TaskFailure, TaskState};
use taskq_tests::worker::{client, meta_key, query, RunningWorker};
use taskq_tests::{wait_until, RedisServer};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// This file's workers get 1 s to finish their tasks on shutdown.
const GRACE: Duration = Duration::from_secs(1);

fn list(server: &RedisServer, key: &str) -> Vec<String> {
    query(&server.url(), &["LRANGE", key, "0", "-1"])
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Whether `text` is `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, as Python's `isoformat()` writes UTC.
fn is_celery_utc_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.clone().all(|i| b[i].is_ascii_digit());
    b.len() == 32
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && &text[26..] == "+00:00"
}

/// Splits a stored result record `<prefix>"date_done": "<date>", <suffix>` around its date and
/// checks the date's format; returns the text with the date replaced by `DATE`.
fn with_date_masked(stored: &str) -> String {
    let marker = r#""date_done": ""#;
    let start = stored
        .find(marker)
        .unwrap_or_else(|| panic!("no string date_done in {stored}"))
        + marker.len();
    let end = start
        + stored[start..]
            .find('"')
            .unwrap_or_else(|| panic!("unterminated date_done in {stored}"));
    let date = &stored[start..end];
    assert!(is_celery_utc_time(date), "date_done {date:?} in {stored}");
    format!("{}DATE{}", &stored[..start], &stored[end..])
}

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[taskq::task(name = "test.wire.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.wire.report", queue = "reports")]
async fn report(user_id: u64) -> u64 {
    user_id
}

#[derive(Debug)]
struct WireError {
    code: u32,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wire broke: {}", self.code)
    }
}

#[taskq::task(name = "test.wire.fail")]
async fn fail(code: u32) -> Result<u32, WireError> {
    Err(WireError { code })
}

// ---------------------------------------------------------------------------
// The task envelope
// ---------------------------------------------------------------------------

const SPEC_ID: &str = "890ebb03-5a96-424e-a471-d215a7f7201c";

/// The message of spec §3.4 (`add.delay(2, 3)` from Celery 5.6.2), exactly as stored, on one
/// line.
const SPEC_ENVELOPE: &str = concat!(
    r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "#,
    r#""content-encoding": "utf-8", "content-type": "application/json", "#,
    r#""headers": {"lang": "py", "task": "tasks.add", "id": "890ebb03-5a96-424e-a471-d215a7f7201c", "#,
    r#""shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "#,
    r#""retries": 0, "timelimit": [null, null], "#,
    r#""root_id": "890ebb03-5a96-424e-a471-d215a7f7201c", "parent_id": null, "#,
    r#""argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen14698@vm", "#,
    r#""ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "#,
    r#""properties": {"correlation_id": "890ebb03-5a96-424e-a471-d215a7f7201c", "#,
    r#""reply_to": "82826158-5f96-3278-b94e-818a922c954e", "#,
    r#""delivery_mode": 2, "#,
    r#""delivery_info": {"exchange": "", "routing_key": "celery"}, "#,
    r#""priority": 0, "#,
    r#""body_encoding": "base64", "#,
    r#""delivery_tag": "823731d2-bddc-4011-955d-e725266caf6e"}}"#,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_is_celery_protocol_2_byte_for_byte() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let sent = client
        .send(&add, (2, 3), Options::new().task_id(SPEC_ID))
        .await
        .unwrap();
    assert_eq!(sent.id(), SPEC_ID);

    let stored = list(&server, "celery");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let raw = &stored[0];
    let envelope: Value = serde_json::from_str(raw).expect("the envelope is JSON");

    // The process-specific values have the right shape.
    let origin = envelope["headers"]["origin"].as_str().expect("origin");
    assert!(
        origin.starts_with(&format!("gen{}@", std::process::id())) && origin.len() > 5,
        "{origin}"
    );
    let reply_to = envelope["properties"]["reply_to"]
        .as_str()
        .expect("reply_to");
    uuid::Uuid::parse_str(reply_to).expect("reply_to is a UUID");
    let tag = envelope["properties"]["delivery_tag"]
        .as_str()
        .expect("delivery_tag");
    uuid::Uuid::parse_str(tag).expect("delivery_tag is a UUID");

    // The whole structure.
    let expected = json!({
        "body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "test.wire.add", "id": SPEC_ID,
            "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null,
            "retries": 0, "timelimit": [null, null],
            "root_id": SPEC_ID, "parent_id": null,
            "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": origin,
            "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}
        },
        "properties": {
            "correlation_id": SPEC_ID,
            "reply_to": reply_to,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": tag
        }
    });
    assert_eq!(envelope, expected);

    // The body, byte for byte.
    let body = base64::engine::general_purpose::STANDARD
        .decode(envelope["body"].as_str().unwrap())
        .expect("the body is base64");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#
    );

    // The raw text: Python's separators and key order, identical to Celery's apart from the
    // values that name the producing process and the delivery.
    let normalized = raw
        .replace(
            &format!(r#""origin": "{origin}""#),
            r#""origin": "gen14698@vm""#,
        )
        .replace(
            &format!(r#""reply_to": "{reply_to}""#),
            r#""reply_to": "82826158-5f96-3278-b94e-818a922c954e""#,
        )
        .replace(
            &format!(r#""delivery_tag": "{tag}""#),
            r#""delivery_tag": "823731d2-bddc-4011-955d-e725266caf6e""#,
        )
        .replace(r#""task": "test.wire.add""#, r#""task": "tasks.add""#);
    assert_eq!(normalized, SPEC_ENVELOPE);

    // kombu's binding of the default queue on the default exchange.
    let members: Vec<String> = query(&server.url(), &["SMEMBERS", "_kombu.binding.celery"]);
    assert_eq!(members, ["celery\x06\x16\x06\x16celery"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_gets_a_fresh_delivery_tag() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    for _ in 0..3 {
        client
            .send(&add, (1, 1), Options::new().task_id(SPEC_ID))
            .await
            .unwrap();
    }
    let tags: std::collections::HashSet<String> = list(&server, "celery")
        .iter()
        .map(|raw| {
            let v: Value = serde_json::from_str(raw).unwrap();
            v["properties"]["delivery_tag"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tags.len(), 3);
}

// ---------------------------------------------------------------------------
// Queue lists
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_map_to_kombu_priority_lists() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let cases: [(u8, &str); 6] = [
        (0, "celery"),
        (3, "celery\x06\x163"),
        (5, "celery\x06\x163"),
        (6, "celery\x06\x166"),
        (9, "celery\x06\x169"),
        (12, "celery\x06\x169"),
    ];
    let mut ids = Vec::new();
    for (priority, _) in cases {
        let sent = client
            .send(&add, (1, 2), Options::new().priority(priority))
            .await
            .unwrap();
        ids.push(sent.id().to_owned());
    }
    for (key, len) in [
        ("celery", 1),
        ("celery\x06\x163", 2),
        ("celery\x06\x166", 1),
        ("celery\x06\x169", 2),
    ] {
        assert_eq!(
            query::<i64>(&server.url(), &["LLEN", key]),
            len,
            "LLEN {key:?}"
        );
    }
    for ((priority, key), id) in cases.iter().zip(&ids) {
        let found = list(&server, key).into_iter().find_map(|raw| {
            let v: Value = serde_json::from_str(&raw).unwrap();
            (v["headers"]["id"] == json!(id)).then_some(v)
        });
        let v = found.unwrap_or_else(|| panic!("priority {priority} is not in {key:?}"));
        assert_eq!(v["properties"]["priority"], json!((*priority).min(9)));
        assert_eq!(
            v["properties"]["delivery_info"],
            json!({"exchange": "", "routing_key": "celery"})
        );
    }
    // One binding for the queue, whatever the priority.
    let members: Vec<String> = query(&server.url(), &["SMEMBERS", "_kombu.binding.celery"]);
    assert_eq!(members, ["celery\x06\x16\x06\x16celery"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_queues_get_their_own_list_and_binding() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let by_option = client
        .send(&add, (1, 2), Options::new().queue("reports"))
        .await
        .unwrap();
    let by_attribute = client.send(&report, (7,), Options::new()).await.unwrap();
    let overridden = client
        .send(&report, (8,), Options::new().queue("other"))
        .await
        .unwrap();

    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    let reports = list(&server, "reports");
    assert_eq!(reports.len(), 2);
    let ids: Vec<String> = reports
        .iter()
        .rev() // LPUSH: the oldest is last
        .map(|raw| {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(
                v["properties"]["delivery_info"],
                json!({"exchange": "", "routing_key": "reports"})
            );
            v["headers"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, [by_option.id(), by_attribute.id()]);

    let other = list(&server, "other");
    assert_eq!(other.len(), 1);
    let v: Value = serde_json::from_str(&other[0]).unwrap();
    assert_eq!(v["headers"]["id"], json!(overridden.id()));
    assert_eq!(v["properties"]["delivery_info"]["routing_key"], "other");

    let members: Vec<String> = query(&server.url(), &["SMEMBERS", "_kombu.binding.reports"]);
    assert_eq!(members, ["reports\x06\x16\x06\x16reports"]);
    let members: Vec<String> = query(&server.url(), &["SMEMBERS", "_kombu.binding.other"]);
    assert_eq!(members, ["other\x06\x16\x06\x16other"]);
}

// ---------------------------------------------------------------------------
// unacked / unacked_index
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_moves_to_unacked_and_ack_removes() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    client.send(&add, (2, 3), Options::new()).await.unwrap();
    let raw = list(&server, "celery").remove(0);

    let before = unix_now();
    let fetched = client
        .broker()
        .fetch(&["celery".to_owned()], 10, usize::MAX)
        .await
        .expect("fetch");
    assert_eq!(fetched.deliveries.len(), 1);
    assert!(
        (fetched.now - before).abs() < 5.0,
        "broker clock {}",
        fetched.now
    );
    let delivery = &fetched.deliveries[0];
    assert_eq!(&*delivery.raw, raw.as_str());
    assert_eq!(delivery.queue, "celery");
    assert_eq!(delivery.source, "celery");
    let envelope: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(envelope["properties"]["delivery_tag"], json!(delivery.tag));

    // Out of the queue, into kombu's unacked hash and index, in kombu's layout.
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    let entry: String = query(&server.url(), &["HGET", "unacked", &delivery.tag]);
    assert_eq!(entry, format!(r#"[{raw}, "", "celery"]"#));
    let parsed: Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(parsed[0], envelope);
    let score: f64 = query(&server.url(), &["ZSCORE", "unacked_index", &delivery.tag]);
    assert!(
        score >= before - 1.0 && score <= unix_now() + 1.0,
        "unacked_index score {score}, now {}",
        unix_now()
    );
    assert!(
        score.fract() != 0.0,
        "the score keeps sub-second precision: {score}"
    );
    // The taskq lease, which tells recovery that a taskq worker holds it and renews it.
    let lease: f64 = query(&server.url(), &["ZSCORE", "taskq.leases", &delivery.tag]);
    assert_eq!(lease, score);

    // An empty fetch returns nothing and does not wait.
    let empty = client
        .broker()
        .fetch(&["celery".to_owned()], 10, usize::MAX)
        .await
        .unwrap();
    assert!(empty.deliveries.is_empty());

    client
        .broker()
        .ack(std::slice::from_ref(&delivery.tag))
        .await
        .expect("ack");
    assert_eq!(query::<i64>(&server.url(), &["HLEN", "unacked"]), 0);
    assert_eq!(query::<i64>(&server.url(), &["ZCARD", "unacked_index"]), 0);
    assert_eq!(query::<i64>(&server.url(), &["ZCARD", "taskq.leases"]), 0);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reads_tags_in_any_json_spelling() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let envelope = |tag: &str, routing_key: &str| {
        json!({
            "body": "W1tdLCB7fSwge31d",
            "headers": {"task": "x", "id": "i", "argsrepr": "('\"delivery_tag\": \"fake\"',)"},
            "properties": {
                "delivery_info": {"exchange": "ex", "routing_key": routing_key},
                "delivery_tag": tag,
            },
        })
    };
    // Compact separators (serde), Python's separators, and a tag with an escaped quote.
    let compact = envelope("tag-compact", "celery").to_string();
    let python = taskq::pyjson::to_string(&envelope("tag-python", "celery")).unwrap();
    let escaped = envelope("tag-\"quoted\"", "celery").to_string();
    // The script looks near the end first, where kombu puts `properties`: a long envelope
    // with them last, and one where a long field follows them.
    let mut long = envelope("tag-long", "celery");
    long["headers"]["argsrepr"] = json!("x".repeat(4000));
    let long = long.to_string();
    let mut followed = envelope("tag-followed", "celery");
    followed["zzz"] = json!("y".repeat(4000));
    let followed = followed.to_string();
    for raw in [&compact, &python, &escaped, &long, &followed] {
        let _: i64 = query(&server.url(), &["LPUSH", "celery", raw]);
    }
    let fetched = client
        .broker()
        .fetch(&["celery".to_owned()], 10, usize::MAX)
        .await
        .unwrap();
    let tags: Vec<&str> = fetched.deliveries.iter().map(|d| d.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "tag-compact",
            "tag-python",
            "tag-\"quoted\"",
            "tag-long",
            "tag-followed"
        ]
    );
    let entry: String = query(&server.url(), &["HGET", "unacked", "tag-followed"]);
    assert_eq!(entry, format!(r#"[{followed}, "ex", "celery"]"#));
    let entry: String = query(&server.url(), &["HGET", "unacked", "tag-python"]);
    assert_eq!(entry, format!(r#"[{python}, "ex", "celery"]"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_puts_the_message_back_at_the_front() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    for i in 0..3 {
        client
            .send(&add, (i, 0), Options::new().priority(4))
            .await
            .unwrap();
    }
    let key = "celery\x06\x163";
    let fetched = client
        .broker()
        .fetch(&["celery".to_owned()], 1, usize::MAX)
        .await
        .unwrap();
    assert_eq!(fetched.deliveries.len(), 1);
    let first = fetched.deliveries[0].clone();
    assert_eq!(first.source, key);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", key]), 2);

    client
        .broker()
        .requeue(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(query::<i64>(&server.url(), &["HLEN", "unacked"]), 0);
    assert_eq!(query::<i64>(&server.url(), &["ZCARD", "unacked_index"]), 0);
    // Back at the right end, the next to be popped, unchanged.
    let back: Vec<String> = query(&server.url(), &["LRANGE", key, "-1", "-1"]);
    assert_eq!(back, [first.raw.to_string()]);
    let again = client
        .broker()
        .fetch(&["celery".to_owned()], 1, usize::MAX)
        .await
        .unwrap();
    assert_eq!(again.deliveries[0].tag, first.tag);
}

// ---------------------------------------------------------------------------
// Result records
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_record_is_celerys_text() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let sent = client.send(&add, (2, 3), Options::new()).await.unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 5);
    worker.stop().await;

    let key = meta_key(sent.id());
    let stored: String = query(&server.url_db(1), &["GET", &key]);
    assert_eq!(
        with_date_masked(&stored),
        format!(
            r#"{{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "DATE", "task_id": "{}"}}"#,
            sent.id()
        )
    );
    let ttl: i64 = query(&server.url_db(1), &["TTL", &key]);
    assert!((86_395..=86_400).contains(&ttl), "TTL {ttl}");
    // Only the result: nothing else in the result db.
    assert_eq!(query::<i64>(&server.url_db(1), &["DBSIZE"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_record_is_celerys_text() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let sent = client.send(&fail, (3,), Options::new()).await.unwrap();
    let err = sent.get(WAIT).await.unwrap_err();
    assert_eq!(err.task_failure().unwrap().exc_type(), "WireError");
    worker.stop().await;

    let key = meta_key(sent.id());
    let stored: String = query(&server.url_db(1), &["GET", &key]);
    assert_eq!(
        with_date_masked(&stored),
        format!(
            concat!(
                r#"{{"status": "FAILURE", "result": {{"exc_type": "WireError", "exc_message": ["wire broke: 3"], "exc_module": "taskq.exceptions"}}, "#,
                r#""traceback": "WireError {{ code: 3 }}", "children": [], "date_done": "DATE", "task_id": "{}"}}"#
            ),
            sent.id()
        )
    );
    let ttl: i64 = query(&server.url_db(1), &["TTL", &key]);
    assert!((86_395..=86_400).contains(&ttl), "TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_published_on_their_channel() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let id = uuid::Uuid::new_v4().to_string();
    let channel = meta_key(&id);

    // A plain Redis subscriber, as Python's AsyncResult.get() is.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (payload_tx, payload_rx) = mpsc::channel();
    let mut con = server.connection();
    let sub_channel = channel.clone();
    let subscriber = std::thread::spawn(move || {
        let mut pubsub = con.as_pubsub();
        pubsub.subscribe(&sub_channel).expect("subscribe");
        pubsub
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let msg = pubsub.get_message().expect("a published message");
        assert_eq!(msg.get_channel_name(), sub_channel);
        let payload: String = msg.get_payload().unwrap();
        payload_tx.send(payload).unwrap();
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the subscriber is ready");
    let url = server.url();
    wait_until(
        Duration::from_secs(5),
        "one subscriber on the channel",
        || {
            let reply: Vec<redis::Value> = query(&url, &["PUBSUB", "NUMSUB", &channel]);
            reply.get(1).is_some_and(|v| *v == redis::Value::Int(1))
        },
    );

    let worker = RunningWorker::start(&client, |b| b.shutdown_grace(GRACE));
    let sent = client
        .send(&add, (20, 22), Options::new().task_id(id.as_str()))
        .await
        .unwrap();
    let published = payload_rx
        .recv_timeout(WAIT)
        .expect("the result is published");
    subscriber.join().unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), 42);
    worker.stop().await;

    let stored: String = query(&server.url_db(1), &["GET", &channel]);
    assert_eq!(published, stored);
    assert!(published.starts_with(r#"{"status": "SUCCESS", "result": 42, "#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_success_is_never_overwritten() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let backend = client.backend();
    let id = uuid::Uuid::new_v4().to_string();
    let key = meta_key(&id);

    backend
        .store(&[ResultMeta::success(&id, json!(5))])
        .await
        .unwrap();
    let first: String = query(&server.url_db(1), &["GET", &key]);
    backend
        .store(&[ResultMeta::failure(
            &id,
            &TaskFailure::new("ValueError", "builtins", "late duplicate"),
        )])
        .await
        .unwrap();
    backend
        .store(&[ResultMeta::started(&id, "itest@wire")])
        .await
        .unwrap();
    let after: String = query(&server.url_db(1), &["GET", &key]);
    assert_eq!(after, first);
    let meta = backend.get(&id).await.unwrap().expect("a record");
    assert_eq!(meta.status, TaskState::Success);
    assert_eq!(meta.result, json!(5));

    // Anything but a SUCCESS may be replaced (a retried task's FAILURE by its SUCCESS).
    let other = uuid::Uuid::new_v4().to_string();
    backend
        .store(&[ResultMeta::failure(
            &other,
            &TaskFailure::new("ValueError", "builtins", "first try"),
        )])
        .await
        .unwrap();
    backend
        .store(&[ResultMeta::success(&other, json!("second try"))])
        .await
        .unwrap();
    let meta = backend.get(&other).await.unwrap().expect("a record");
    assert_eq!(meta.status, TaskState::Success);
    assert_eq!(meta.result, json!("second try"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_written_records_read_back() {
    // Records exactly as Python Celery writes them (spec §5.3) are read by AsyncResult.
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let ok_id = "50fa43b2-aac0-4e52-9593-92b6f7515f02";
    let failed_id = "b588f618-684e-4441-81e3-859cd7422b65";
    let ok = format!(
        r#"{{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-11-21T04:47:50.842153+00:00", "task_id": "{ok_id}"}}"#
    );
    let failed = format!(
        r#"{{"status": "FAILURE", "result": {{"exc_type": "ValueError", "exc_message": ["bad thing", 42], "exc_module": "builtins"}}, "traceback": "Traceback (most recent call last):\nValueError: ('bad thing', 42)\n", "children": [], "date_done": "2026-11-21T04:47:50.848476+00:00", "task_id": "{failed_id}"}}"#
    );
    let _: () = query(&server.url_db(1), &["SET", &meta_key(ok_id), &ok]);
    let _: () = query(&server.url_db(1), &["SET", &meta_key(failed_id), &failed]);

    assert_eq!(
        client
            .result::<i64>(ok_id)
            .get(Duration::from_secs(1))
            .await
            .unwrap(),
        5
    );
    let err = client
        .result::<i64>(failed_id)
        .get(Duration::from_secs(1))
        .await
        .unwrap_err();
    let failure = err.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "ValueError");
    assert_eq!(failure.exc_module(), "builtins");
    assert_eq!(failure.message(), "bad thing, 42");
    assert!(failure.traceback().unwrap().starts_with("Traceback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_first_countdown_sends_ask_the_broker_time_once() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let _: String = query(&server.url(), &["CONFIG", "RESETSTAT"]);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = client.clone();
        sends.spawn(async move {
            let countdown = Options::new().countdown(Duration::from_secs(60));
            client.send(&add, (i, 0), countdown).await.map(|_| ())
        });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    let stats: String = query(&server.url(), &["INFO", "commandstats"]);
    let time_calls = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_time:calls="))
        .and_then(|rest| rest.split(',').next())
        .map(|calls| calls.parse::<u32>().unwrap());
    assert_eq!(time_calls, Some(1), "{stats}");
}
