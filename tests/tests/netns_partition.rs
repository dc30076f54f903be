//! Workers on separate hosts: Redis and two example worker processes, each in a network
//! namespace of its own joined by veth links (`ip netns`, made and removed here). The link of
//! one worker is cut while it holds work: once its leases may have lapsed it starts nothing
//! more, the other worker takes its messages back after the visibility timeout and runs them,
//! nothing is lost, and once the link heals the cut-off worker takes work again.
//!
//! Where namespaces cannot be made (no root, a kernel that forbids them), the test says why
//! and skips.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use taskq_tests::netns::Network;
use taskq_tests::worker::{eventually, ledger_runs, send_push};
use taskq_tests::{example_binary, wait_until, ChildGuard};

/// Each worker's slots (and so the most tasks it may be running when cut off).
const SLOTS: usize = 4;

/// The workers' visibility timeout, in seconds: how long a lease lasts unrenewed.
const VISIBILITY_SECS: u64 = 3;

/// From the cut, how long until every lease w1 held has surely lapsed and its last push
/// started before then has ended (a renewal sent just before the cut, the lease's length, a
/// 300 ms push, and room for a slow machine).
const LEASES_SURE: Duration = Duration::from_secs(VISIBILITY_SECS + 2);

/// Pushes sent before the cut and after the heal.
const BEFORE: usize = 80;
const AFTER: usize = 40;

fn redis_url(address: &str) -> String {
    // Short socket timeouts: a cut link shows as an error in 2 s, not 10.
    format!("redis://{address}:6379/0?socket_timeout=2&socket_connect_timeout=2")
}

fn start_worker(net: &Network, ns: &str, redis: &str, name: &str, dir: &Path) -> ChildGuard {
    let log = std::fs::File::create(dir.join("worker.log")).unwrap();
    ChildGuard::spawn(
        net.command(ns, example_binary("worker"))
            .current_dir(dir)
            .env("TASKQ_BROKER_URL", redis_url(redis))
            .env("TASKQ_RESULT_BACKEND", redis_url(redis))
            .env("TASKQ_VISIBILITY_TIMEOUT", VISIBILITY_SECS.to_string())
            .env("TASKQ_EXAMPLE_DELAY_MS", "300")
            .args(["-n", name, "-c", &SLOTS.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
}

/// Runs per token across both workers' ledgers.
fn all_runs(dirs: &[&Path]) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for dir in dirs {
        for (token, n) in ledger_runs(dir) {
            *runs.entry(token).or_insert(0) += n;
        }
    }
    runs
}

fn lines(dir: &Path) -> usize {
    ledger_runs(dir).values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_redis_stops_and_its_work_runs_elsewhere() {
    let mut net = match Network::create() {
        Ok(net) => net,
        Err(why) => {
            println!("SKIPPED: network namespaces cannot be made here: {why}");
            return;
        }
    };
    let redis_host = net.host("redis");
    let (w1_host, w2_host) = (net.host("w1"), net.host("w2"));
    let to_test = net.link(None, Some(&redis_host));
    let to_w1 = net.link(Some(&w1_host), Some(&redis_host));
    let to_w2 = net.link(Some(&w2_host), Some(&redis_host));

    let redis_dir = tempfile::tempdir().unwrap();
    let _redis = ChildGuard::spawn(
        net.command(&redis_host, "redis-server")
            .args([
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(redis_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut config = taskq::Config::default();
    config.broker_url = redis_url(to_test.address(1));
    config.result_backend = config.broker_url.clone();
    let client = taskq::Client::from_config(config).unwrap();
    eventually(
        Duration::from_secs(10),
        "Redis to answer across its link",
        || {
            let client = client.clone();
            async move { client.broker().ping().await.is_ok() }
        },
    )
    .await;

    let (w1_dir, w2_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _w1 = start_worker(&net, &w1_host, to_w1.address(1), "w1@netns", w1_dir.path());
    let _w2 = start_worker(&net, &w2_host, to_w2.address(1), "w2@netns", w2_dir.path());
    let control = client.control();
    eventually(
        Duration::from_secs(30),
        "both workers to answer a ping",
        || {
            let control = control.clone();
            async move {
                let options = taskq::control::ControlOptions::new().limit(2);
                control.ping(&options).await.is_ok_and(|r| r.len() == 2)
            }
        },
    )
    .await;

    let mut results = Vec::new();
    for n in 0..BEFORE {
        let token = format!("before-{n}");
        results.push(send_push(&client, &token).await);
    }
    let (w1, w2) = (w1_dir.path(), w2_dir.path());
    wait_until(Duration::from_secs(30), "w1 to run some pushes", || {
        lines(w1) >= 2
    });
    net.cut(&to_w1);
    let cut = Instant::now();
    let ran_on_w1_at_cut = lines(w1);

    wait_until(
        Duration::from_secs(60),
        "every push sent before the cut to run",
        || {
            let runs = all_runs(&[w1, w2]);
            (0..BEFORE).all(|n| runs.contains_key(&format!("before-{n}")))
        },
    );
    let all_ran_after = cut.elapsed();
    // Until its leases may have lapsed, w1 may still start what it prefetched (nobody else
    // can take it yet); after that, nothing. Its last starts end a push's length later.
    tokio::time::sleep(LEASES_SURE.saturating_sub(cut.elapsed())).await;
    let finished_on_w1_after_cut = lines(w1) - ran_on_w1_at_cut;
    let after_leases = lines(w1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        lines(w1),
        after_leases,
        "w1 went on starting pushes after its leases could have lapsed"
    );

    net.heal(&to_w1);
    let healed = Instant::now();
    let w1_before_heal = lines(w1);
    for n in 0..AFTER {
        results.push(send_push(&client, &format!("after-{n}")).await);
    }
    wait_until(
        Duration::from_secs(60),
        "every push sent after the heal to run",
        || {
            let runs = all_runs(&[w1, w2]);
            (0..AFTER).all(|n| runs.contains_key(&format!("after-{n}")))
        },
    );
    let w1_after_heal = lines(w1) - w1_before_heal;
    assert!(w1_after_heal > 0, "w1 took no work after its link healed");

    for result in &results {
        result
            .get(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("push {} has no result: {e}", result.id()));
    }
    let runs = all_runs(&[w1, w2]);
    let twice = runs.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= finished_on_w1_after_cut,
        "{twice} pushes ran twice: more than the {finished_on_w1_after_cut} w1 finished \
         without Redis"
    );
    println!(
        "network cut: {} pushes, 0 lost, {twice} run twice; w1 finished \
         {finished_on_w1_after_cut} after the cut and started none once its leases could have \
         lapsed, everything sent before the cut had run {:.1} s \
         after it (visibility timeout 3 s); after the heal ({:.1} s later) w1 ran {w1_after_heal} \
         of {AFTER}",
        BEFORE + AFTER,
        all_ran_after.as_secs_f64(),
        healed.duration_since(cut).as_secs_f64(),
    );
}
