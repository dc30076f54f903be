//! How a worker handles tasks and messages that go wrong: panics, time limits, unknown task
//! names, undecodable messages and badly typed arguments. The worker must store the failure,
//! dead-letter what cannot run, leave nothing in `unacked`, and keep working.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use taskq_tests::keys;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use taskq::{Error, Options, TaskState};
use taskq_tests::worker::{
    assert_nothing_unacked, client, eventually, meta_key, query, wait_nothing_unacked,
    RunningWorker,
};
use taskq_tests::{wait_until, RedisServer};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// This file's workers get 500 ms to finish their tasks on shutdown.
const GRACE: Duration = Duration::from_millis(500);

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[taskq::task(name = "test.failures.boom")]
async fn boom(message: String) -> u32 {
    if !message.is_empty() {
        panic!("{message}");
    }
    0
}

#[taskq::task(name = "test.failures.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// When each limited task started, by test.
static LIMITED_STARTED: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
static LIMITED_FINISHED: AtomicBool = AtomicBool::new(false);

fn started_at(tag: &str) -> Option<Instant> {
    LIMITED_STARTED
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, at)| *at)
}

#[taskq::task(name = "test.failures.limited", time_limit = 1)]
async fn limited(secs: u64) -> u64 {
    LIMITED_STARTED
        .lock()
        .unwrap()
        .push(("attribute", Instant::now()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    LIMITED_FINISHED.store(true, Ordering::SeqCst);
    secs
}

#[taskq::task(name = "test.failures.sleeper")]
async fn sleeper(secs: u64) -> u64 {
    LIMITED_STARTED
        .lock()
        .unwrap()
        .push(("option", Instant::now()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    LIMITED_FINISHED.store(true, Ordering::SeqCst);
    secs
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_failure_and_the_worker_keeps_going() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));

    let sent = client
        .send(
            &boom,
            ("the flux capacitor broke".to_owned(),),
            Options::new(),
        )
        .await
        .unwrap();
    let err = sent.get(WAIT).await.expect_err("the task panics");
    let failure = err.task_failure().expect("a task failure");
    assert_eq!(failure.exc_type(), "TaskPanic");
    assert!(failure.is_panic());
    assert_eq!(failure.exc_module(), taskq::RUST_EXC_MODULE);
    assert_eq!(failure.message(), "the flux capacitor broke");
    assert!(failure
        .traceback()
        .is_some_and(|t| t.contains("the flux capacitor broke")));
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);

    // The single execution slot is free again: the next tasks run.
    let next = client.send(&add, (2, 3), Options::new()).await.unwrap();
    assert_eq!(next.get(WAIT).await.expect("add succeeds"), 5);
    let again = client
        .send(&boom, (String::new(),), Options::new())
        .await
        .unwrap();
    assert_eq!(again.get(WAIT).await.expect("no panic this time"), 0);
    assert!(worker.is_alive());
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Time limits
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_attribute_cancels_the_task() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client.send(&limited, (30,), Options::new()).await.unwrap();
    // The attribute's limit travels in the message's timelimit header.
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    assert_eq!(raw.len(), 1);
    let envelope: Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(envelope["headers"]["timelimit"], json!([1.0, null]));

    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));

    let err = sent.get(WAIT).await.expect_err("the task is cancelled");
    let done = Instant::now();
    let failure = err.task_failure().expect("a task failure");
    assert_eq!(failure.exc_type(), "TimeLimitExceeded");
    assert_eq!(failure.exc_module(), "billiard.exceptions");
    assert!(failure.is_timeout());
    let ran = done - started_at("attribute").expect("the task started");
    assert!(
        ran >= Duration::from_millis(950) && ran < Duration::from_millis(1500),
        "stored {ran:?} after the task started"
    );
    assert_eq!(sent.state().await.unwrap(), TaskState::Failure);
    assert!(!LIMITED_FINISHED.load(Ordering::SeqCst));
    wait_nothing_unacked(&server, WAIT);

    // The slot is free again.
    let next = client.send(&add, (1, 1), Options::new()).await.unwrap();
    assert_eq!(next.get(WAIT).await.unwrap(), 2);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_option_cancels_the_task() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));

    let sent = client
        .send(
            &sleeper,
            (30,),
            Options::new().time_limit(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let err = sent.get(WAIT).await.expect_err("the task is cancelled");
    let done = Instant::now();
    let failure = err.task_failure().expect("a task failure");
    assert_eq!(failure.exc_type(), "TimeLimitExceeded");
    assert!(failure.is_timeout());
    assert_eq!(failure.message(), "0.5");
    let ran = done - started_at("option").expect("the task started");
    assert!(
        ran >= Duration::from_millis(450) && ran < Duration::from_millis(1000),
        "stored {ran:?} after the task started"
    );
    assert!(!LIMITED_FINISHED.load(Ordering::SeqCst));
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Unknown task names
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_is_not_registered_and_dead_lettered() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});

    let sent = client
        .send_by_name("test.nope", vec![json!(1)], Map::new(), Options::new())
        .await
        .unwrap();
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    assert_eq!(raw.len(), 1);
    let original = raw[0].clone();

    let worker = RunningWorker::start(&client, |b| {
        b.concurrency(1)
            .shutdown_grace(GRACE)
            .unknown_task_retries(0)
    });
    let err = sent.get(WAIT).await.expect_err("nobody knows test.nope");
    let failure = err.task_failure().expect("a task failure");
    assert_eq!(failure.exc_type(), "NotRegistered");
    assert_eq!(failure.exc_module(), "celery.exceptions");
    assert_eq!(failure.message(), "test.nope");
    assert!(failure.is_not_registered());
    // Stored under the message's own id.
    let stored: String = query(&server.url_db(1), &["GET", &meta_key(sent.id())]);
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["status"], "FAILURE");
    assert_eq!(stored["task_id"], sent.id());

    let url = server.url();
    wait_until(WAIT, "the message to be dead-lettered", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    let dead = client.broker().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].reason.contains("not registered"), "{:?}", dead[0]);
    assert!(dead[0].reason.contains("test.nope"), "{:?}", dead[0]);
    assert_eq!(dead[0].queue, "celery");
    assert_eq!(dead[0].payload, original);
    assert_nothing_unacked(&server);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    assert!(worker.is_alive());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_task_is_put_back_with_backoff_before_it_fails() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let sent = client
        .send_by_name("test.nope.later", vec![], Map::new(), Options::new())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let worker = RunningWorker::start(&client, |b| b.unknown_task_retries(2));

    // First it waits in Redis, marked with the attempt, for another worker to take it.
    let url = server.url();
    wait_until(WAIT, "the message to be parked", || {
        query::<i64>(&url, &["ZCARD", &keys::broker().eta_schedule()]) == 1
    });
    let parked: Vec<String> = query(&url, &["HVALS", &keys::broker().eta_messages()]);
    assert!(
        parked[0].contains(r#"\"taskq_unknown_attempts\": 1"#),
        "{parked:?}"
    );
    assert_eq!(sent.state().await.unwrap(), taskq::TaskState::Pending);

    // After 1 s and 2 s of backoff, nobody took it: NotRegistered and the dead-letter list.
    let err = sent
        .get(WAIT)
        .await
        .expect_err("nobody knows test.nope.later");
    assert!(err.task_failure().unwrap().is_not_registered(), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "failed after {:?}",
        started.elapsed()
    );
    wait_until(WAIT, "the message to be dead-lettered", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    let dead = client.broker().dead_letters(1).await.unwrap();
    assert!(
        dead[0].payload.contains(r#""taskq_unknown_attempts": 2"#),
        "{dead:?}"
    );
    assert_nothing_unacked(&server);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Malformed messages
// ---------------------------------------------------------------------------

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The five bad messages, each with a word its dead-letter reason must contain.
fn bad_messages() -> Vec<(String, &'static str)> {
    let good_body =
        b64(r#"[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#);
    let envelope = |body: &str, content_type: &str, tag: &str, id: &str| {
        json!({
            "body": body,
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {"lang": "py", "task": "test.failures.add", "id": id},
            "properties": {
                "correlation_id": id,
                "delivery_info": {"exchange": "", "routing_key": "celery"},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": tag,
            },
        })
    };
    let mut no_tag = envelope(&good_body, "application/json", "x", "bad-2");
    no_tag["properties"]
        .as_object_mut()
        .unwrap()
        .remove("delivery_tag");
    vec![
        ("this is { not JSON at all".to_owned(), "JSON"),
        (no_tag.to_string(), "delivery_tag"),
        (
            envelope(&good_body, "application/x-msgpack", "tag-bad-3", "bad-3").to_string(),
            "msgpack",
        ),
        (
            envelope(
                &b64("[[1, 2], {}]"),
                "application/json",
                "tag-bad-4",
                "bad-4",
            )
            .to_string(),
            "elements",
        ),
        (
            envelope(
                "%%% not base64 %%%",
                "application/json",
                "tag-bad-5",
                "bad-5",
            )
            .to_string(),
            "base64",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered_and_good_ones_run() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let bad = bad_messages();

    // 20 good messages with the 5 bad ones in between.
    let mut good = Vec::new();
    for i in 0..20i64 {
        good.push(client.send(&add, (i, 100), Options::new()).await.unwrap());
        if i % 4 == 1 {
            let (raw, _) = &bad[(i / 4) as usize];
            let pushed: i64 = query(&server.url(), &["LPUSH", "celery", raw]);
            assert!(pushed > 0);
        }
    }
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 25);

    let worker = RunningWorker::start(&client, |b| b.concurrency(2).shutdown_grace(GRACE));
    for (i, sent) in good.iter().enumerate() {
        let sum = sent
            .get(WAIT)
            .await
            .unwrap_or_else(|e| panic!("good task {i} failed: {e}"));
        assert_eq!(sum, i as i64 + 100);
    }
    let url = server.url();
    wait_until(WAIT, "five dead letters", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) >= 5
    });
    wait_nothing_unacked(&server, WAIT);
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);

    let dead = client.broker().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 5, "{dead:#?}");
    let payloads: HashSet<&str> = dead.iter().map(|d| d.payload.as_str()).collect();
    let expected: HashSet<&str> = bad.iter().map(|(raw, _)| raw.as_str()).collect();
    assert_eq!(payloads, expected);
    for (raw, word) in &bad {
        let entry = dead.iter().find(|d| d.payload == *raw).unwrap();
        assert!(
            entry.reason.contains(word),
            "reason for {raw:?} should mention {word:?}: {:?}",
            entry.reason
        );
        assert_eq!(entry.queue, "celery");
        assert!(entry.time > 1.0e9, "{entry:?}");
    }
    // Each bad message whose id can be read has its FAILURE stored, so its caller learns why
    // at once: the one without a tag (refused by the fetch) as well as the undecodable ones.
    let expected = [
        (
            "bad-2",
            "InvalidTaskError",
            "celery.exceptions",
            "delivery_tag",
        ),
        ("bad-3", "ContentDisallowed", "kombu.exceptions", "msgpack"),
        ("bad-4", "InvalidTaskError", "celery.exceptions", "elements"),
        ("bad-5", "DecodeError", "kombu.exceptions", "base64"),
    ];
    for (id, exc_type, exc_module, word) in expected {
        let err = client
            .result::<Value>(id)
            .get(WAIT)
            .await
            .expect_err("a refused message fails");
        let failure = err.task_failure().expect("a stored failure, not a timeout");
        assert_eq!(
            (failure.exc_type(), failure.exc_module()),
            (exc_type, exc_module),
            "{id}"
        );
        assert!(failure.message().contains(word), "{id}: {failure}");
    }

    // Still alive and working.
    assert!(worker.is_alive());
    let after = client.send(&add, (40, 2), Options::new()).await.unwrap();
    assert_eq!(after.get(WAIT).await.unwrap(), 42);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Messages over the size limit
// ---------------------------------------------------------------------------

#[taskq::task(name = "test.failures.length")]
async fn length(text: String) -> usize {
    text.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_refused_at_send_and_writes_nothing() {
    let server = RedisServer::start();
    let client = client(&server, |config| config.max_message_size = 64 * 1024);
    let sent = client
        .send(&length, ("x".repeat(100_000),), Options::new())
        .await;
    match sent {
        Err(Error::MessageTooLarge { task, size, limit }) => {
            assert_eq!(task, "test.failures.length");
            assert!(size > 100_000, "{size}");
            assert_eq!(limit, 64 * 1024);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(
        query::<i64>(&server.url(), &["DBSIZE"]),
        0,
        "nothing written"
    );
    // A smaller one goes through (the body is base64 in the envelope: 4/3 of the JSON).
    let fits = client
        .send(&length, ("x".repeat(30_000),), Options::new())
        .await;
    assert!(fits.is_ok(), "{fits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_found_in_a_queue_is_dead_lettered_whole() {
    let server = RedisServer::start();
    // Another producer, with no limit of its own, sends a 20 MB message between small ones.
    let unlimited = client(&server, |config| config.max_message_size = usize::MAX);
    let small_before = unlimited
        .send(&length, ("a".to_owned(),), Options::new())
        .await
        .unwrap();
    let huge = unlimited
        .send(&length, ("h".repeat(20_000_000),), Options::new())
        .await
        .unwrap();
    let small_after = unlimited
        .send(&length, ("bb".to_owned(),), Options::new())
        .await
        .unwrap();
    let huge_len: i64 = query(
        &server.url(),
        &[
            "EVAL",
            "return #redis.call('LINDEX', KEYS[1], 1)",
            "1",
            "celery",
        ],
    );
    assert!(huge_len > 20_000_000);

    // The worker keeps the default limit, 8 MiB.
    let capped = client(&server, |_| {});
    let worker = RunningWorker::start(&capped, |b| b.shutdown_grace(GRACE));
    assert_eq!(small_before.get(WAIT).await.unwrap(), 1);
    assert_eq!(small_after.get(WAIT).await.unwrap(), 2);
    let url = server.url();
    wait_until(WAIT, "the dead letter", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    wait_nothing_unacked(&server, WAIT);
    let dead = capped.broker().dead_letters(1).await.unwrap().remove(0);
    assert!(
        dead.reason.contains(&format!(
            "message is {huge_len} bytes, over the limit of 8388608"
        )),
        "{}",
        dead.reason
    );
    assert_eq!(
        dead.payload.len() as i64,
        huge_len,
        "the raw message is kept whole"
    );
    assert_eq!(dead.queue, "celery");
    // The huge task never ran; its caller gets a FAILURE that says why instead of waiting.
    let started = Instant::now();
    let err = huge.get(WAIT).await.expect_err("refused for its size");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    let failure = err.task_failure().expect("a stored failure, not a timeout");
    assert_eq!(failure.exc_type(), "MessageTooLarge");
    assert_eq!(failure.exc_module(), taskq::RUST_EXC_MODULE);
    assert!(
        failure.message().contains("over the limit of 8388608"),
        "{failure}"
    );
    assert!(worker.is_alive());
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Compressed messages and headers Celery would refuse
// ---------------------------------------------------------------------------

/// A kombu envelope for `test.failures.add` with id `id`, whose body is `body` (bytes, as
/// kombu sends them: base64) and with `headers` added to the minimal ones.
fn raw_add_message(id: &str, body: &[u8], headers: Value) -> String {
    let mut all = json!({"lang": "py", "task": "test.failures.add", "id": id});
    all.as_object_mut()
        .unwrap()
        .extend(headers.as_object().unwrap().clone());
    json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": all,
        "properties": {
            "correlation_id": id,
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": format!("tag-{id}"),
        },
    })
    .to_string()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_run_and_a_decompression_bomb_is_refused() {
    let server = RedisServer::start();
    let client = client(&server, |config| config.max_message_size = 1 << 20);
    let add_body =
        br#"[[20, 22], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;
    let compressed = raw_add_message(
        "zlib-1",
        &zlib(add_body),
        json!({"compression": "application/x-gzip"}),
    );
    // 64 MiB of spaces around the arguments: a few tens of kilobytes compressed.
    let mut inflated = vec![b' '; 64 << 20];
    inflated.extend_from_slice(add_body);
    let bomb = zlib(&inflated);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    let bomb = raw_add_message("bomb-1", &bomb, json!({"compression": "zlib"}));
    for raw in [&compressed, &bomb] {
        let _: i64 = query(&server.url(), &["LPUSH", "celery", raw]);
    }
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));

    assert_eq!(client.result::<i64>("zlib-1").get(WAIT).await.unwrap(), 42);
    let err = client
        .result::<Value>("bomb-1")
        .get(WAIT)
        .await
        .expect_err("the bomb is refused");
    let failure = err.task_failure().expect("a stored failure");
    assert_eq!(failure.exc_type(), "MessageTooLarge");
    assert!(
        failure
            .message()
            .contains("decompresses (zlib) to more than"),
        "{failure}"
    );
    let url = server.url();
    wait_until(WAIT, "the bomb's dead letter", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    let dead = client.broker().dead_letters(1).await.unwrap().remove(0);
    assert_eq!(dead.payload, bomb);
    wait_nothing_unacked(&server, WAIT);
    assert!(worker.is_alive());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_celery_refuses_are_failures_and_dead_letters_not_ignored() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let body = br#"[[1, 2], {}, null]"#;
    let cases = [
        ("eta-1", json!({"eta": "not-a-date"}), "eta \"not-a-date\""),
        ("limit-1", json!({"timelimit": ["abc", null]}), "timelimit"),
        ("retries-1", json!({"retries": -1}), "retries -1"),
    ];
    for (id, headers, _) in &cases {
        let raw = raw_add_message(id, body, headers.clone());
        let _: i64 = query(&server.url(), &["LPUSH", "celery", &raw]);
    }
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));
    for (id, _, said) in &cases {
        let err = client
            .result::<i64>(*id)
            .get(WAIT)
            .await
            .expect_err("refused, never run");
        let failure = err.task_failure().expect("a stored failure");
        assert_eq!(failure.exc_type(), "InvalidTaskError", "{id}");
        assert_eq!(failure.exc_module(), "celery.exceptions", "{id}");
        assert!(failure.message().contains(said), "{id}: {failure}");
    }
    let url = server.url();
    wait_until(WAIT, "three dead letters", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 3
    });
    for dead in client.broker().dead_letters(3).await.unwrap() {
        let (_, _, said) = cases
            .iter()
            .find(|(id, _, _)| dead.payload.contains(&format!("tag-{id}")))
            .expect("one of the cases");
        assert!(dead.reason.contains(said), "{}", dead.reason);
    }
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

// ---------------------------------------------------------------------------
// Badly typed arguments
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_argument_types_are_a_type_error() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(1).shutdown_grace(GRACE));

    let sent = client
        .send_by_name(
            "test.failures.add",
            vec![json!("two"), json!(3)],
            Map::new(),
            Options::new(),
        )
        .await
        .unwrap();
    let err = sent.get(WAIT).await.expect_err("a string is not an i64");
    assert!(matches!(err, Error::TaskFailed(_)));
    let failure = err.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "TypeError");
    assert_eq!(failure.exc_module(), "builtins");
    assert!(failure.message().contains("does not decode"), "{failure}");

    // Too few arguments, and an unknown keyword.
    let missing = client
        .send_by_name(
            "test.failures.add",
            vec![json!(1)],
            Map::new(),
            Options::new(),
        )
        .await
        .unwrap();
    let failure = missing.get(WAIT).await.unwrap_err();
    let failure = failure.task_failure().unwrap();
    assert_eq!(failure.exc_type(), "TypeError");
    assert!(failure.message().contains("'y'"), "{failure}");

    // Keyword arguments map onto positions by name.
    let by_keyword = client
        .send_by_name(
            "test.failures.add",
            vec![json!(1)],
            json!({"y": 41}).as_object().unwrap().clone(),
            Options::new(),
        )
        .await
        .unwrap();
    assert_eq!(by_keyword.get(WAIT).await.unwrap(), json!(42));
    wait_nothing_unacked(&server, WAIT);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_stored_before_the_message_is_acked() {
    // A worker that fails tasks in a row must not lose any: every failure is stored and
    // every message acked.
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(2).shutdown_grace(GRACE));
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(
            client
                .send(&boom, (format!("panic {i}"),), Options::new())
                .await
                .unwrap(),
        );
    }
    for (i, s) in sent.iter().enumerate() {
        let err = s.get(WAIT).await.unwrap_err();
        assert_eq!(err.task_failure().unwrap().message(), format!("panic {i}"));
    }
    wait_nothing_unacked(&server, WAIT);
    eventually(WAIT, "the worker to stay up", || async {
        worker.is_alive()
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_can_be_put_back_once_their_cause_is_fixed() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    client
        .send_by_name(
            "test.not.deployed.yet",
            vec![json!(1)],
            Map::new(),
            Options::new(),
        )
        .await
        .unwrap();
    let original: Vec<String> = query(&server.url(), &["LRANGE", "celery", "0", "-1"]);
    let worker = RunningWorker::start(&client, |b| b.unknown_task_retries(0));
    let url = server.url();
    wait_until(WAIT, "the message to be dead-lettered", || {
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]) == 1
    });
    worker.stop().await;

    // The operator deployed the task: put the message back, exactly as it was.
    assert_eq!(client.broker().requeue_dead_letters(10).await.unwrap(), 1);
    assert_eq!(
        query::<Vec<String>>(&url, &["LRANGE", "celery", "0", "-1"]),
        original
    );
    assert_eq!(
        query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()]),
        0
    );
    assert_eq!(client.broker().requeue_dead_letters(10).await.unwrap(), 0);
}

/// A flood of garbage is logged without flooding the log: a line for each of the first few
/// dead letters every 10 s, then one line counting the rest, so every one is accounted for.
#[test]
fn a_flood_of_dead_letters_is_logged_rate_limited_with_a_count_of_the_rest() {
    const GARBAGE: usize = 2000;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut pipe = redis::pipe();
    for i in 0..GARBAGE {
        pipe.lpush("celery", format!("not a message {i}")).ignore();
    }
    let () = pipe.query(&mut server.connection()).unwrap();
    let worker = taskq_tests::spawn_example_worker(&server, dir.path(), "worker.log", &[]);
    wait_until(
        Duration::from_secs(30),
        "every message to be dead-lettered",
        || {
            taskq_tests::worker::query::<i64>(&url, &["LLEN", &keys::broker().dead_letter()])
                == GARBAGE as i64
        },
    );
    worker.terminate();
    let mut worker = worker;
    assert!(
        worker.wait_timeout(Duration::from_secs(20)).is_some(),
        "the worker stops"
    );
    let log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap();
    let written = log.matches("message refused at fetch").count();
    let counted: usize = log
        .lines()
        .filter_map(|line| {
            let (before, _) = line.split_once(" more messages were dead-lettered")?;
            before.rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    println!("{GARBAGE} dead letters: {written} lines written, {counted} counted in summaries");
    assert!(written <= 30, "{written} lines for {GARBAGE} dead letters");
    assert_eq!(
        written + counted,
        GARBAGE,
        "every dead letter is accounted for"
    );
}
