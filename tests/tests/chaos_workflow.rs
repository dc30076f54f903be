//! Chaos for workflows: a chord fanned out over taskq worker processes, one of them
//! SIGKILLed while it runs header parts. Every part must run (at least once), the chord's
//! body must run exactly once, and a chain sent beside it must still reach its last step.

use std::time::Duration;

use taskq::protocol::Signature;
use taskq_tests::worker::{client, ledger_runs};
use taskq_tests::{spawn_example_worker, wait_until, ChildGuard, RedisServer};

const TOKENS: usize = 40;
const WAIT: Duration = Duration::from_secs(60);

fn spawn_worker(server: &RedisServer, dir: &std::path::Path, n: usize) -> ChildGuard {
    let envs = [
        ("TASKQ_VISIBILITY_TIMEOUT", "1"),
        ("TASKQ_EXAMPLE_DELAY_MS", "200"),
        ("TASKQ_CONCURRENCY", "4"),
        ("RUST_LOG", "warn"),
    ];
    spawn_example_worker(server, dir, &format!("worker-{n}.log"), &envs)
}

/// `chord([send_push_notification(token-i) for i], summarise_campaign())`, as Celery writes it.
fn campaign() -> Signature {
    let header: Vec<serde_json::Value> = (0..TOKENS)
        .map(|i| serde_json::json!({"task": "tasks.send_push_notification", "args": [format!("token-{i}")]}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "task": "celery.chord", "subtask_type": "chord",
        "kwargs": {"header": header, "body": {"task": "tasks.summarise_campaign"}, "kwargs": {}},
    }))
    .unwrap()
}

/// `chain(add(1, 1), add(1), add(1), add(1), add(1))`.
fn counting_chain() -> Signature {
    let mut steps = vec![serde_json::json!({"task": "tasks.add", "args": [1, 1]})];
    steps.extend((0..4).map(|_| serde_json::json!({"task": "tasks.add", "args": [1]})));
    serde_json::from_value(serde_json::json!({
        "task": "celery.chain", "subtask_type": "chain", "kwargs": {"tasks": steps},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chord_survives_a_worker_killed_mid_way_and_its_body_runs_once() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |config| config.result_backend = server.url());
    let mut workers: Vec<ChildGuard> = (0..3)
        .map(|n| spawn_worker(&server, dir.path(), n))
        .collect();

    let body = client.apply(campaign()).await.unwrap();
    let chain = client.apply(counting_chain()).await.unwrap();
    // Let every worker take parts, then kill one while its parts run.
    wait_until(WAIT, "the first notifications", || {
        !ledger_runs(dir.path()).is_empty()
    });
    workers[0].kill();
    workers.push(spawn_worker(&server, dir.path(), 3));

    let summary: String = client.result(body.id()).get(WAIT).await.unwrap();
    assert_eq!(
        summary,
        format!("campaign done: {TOKENS} notifications sent")
    );
    assert_eq!(client.result::<i64>(chain.id()).get(WAIT).await.unwrap(), 6);

    let runs = ledger_runs(dir.path());
    for i in 0..TOKENS {
        assert!(
            runs.contains_key(&format!("token-{i}")),
            "token-{i} never sent: {runs:?}"
        );
    }
    // Give a late duplicate part (a recovered message) time to arrive: it must not fire again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let campaign_log = std::fs::read_to_string(dir.path().join("campaign.log")).unwrap();
    assert_eq!(
        campaign_log.lines().count(),
        1,
        "the body ran more than once:\n{campaign_log}"
    );
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let recovered = recovered_messages(dir.path());
    assert!(
        recovered > 0,
        "the killed worker held no part: nothing was tested"
    );
    println!(
        "{recovered} messages recovered from the killed worker, {duplicates} header parts ran twice"
    );
}

/// How many messages the workers' recovery returned to their queues, from their logs.
fn recovered_messages(dir: &std::path::Path) -> usize {
    let logs =
        (0..4).filter_map(|n| std::fs::read_to_string(dir.join(format!("worker-{n}.log"))).ok());
    logs.flat_map(|log| {
        log.lines()
            .filter(|l| l.contains("returned to their queues"))
            .filter_map(|l| {
                l.split("count=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .collect::<Vec<_>>()
    })
    .sum()
}
