//! Redis Sentinel: producers and a worker on a `sentinel://` URL keep working through a
//! failover (the master SIGKILLed, a replica promoted by three real sentinels), and taskq loses
//! nothing of its own: every send that returned `Ok` runs and has its result. The figures
//! (time until sends and tasks flow again, failed sends, duplicates) are printed.
//!
//! Redis replicates asynchronously, so writes the master accepted in its last moments may
//! not reach the replica: that window is Redis's, not taskq's. To test taskq alone, the
//! producers pause and the test waits (`WAIT`) for the replicas before the kill; the worker
//! keeps running throughout.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use taskq::Options;
use taskq_tests::failover::{settled_losses, Producer};
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::sentinel::{SentinelSet, MASTER_NAME};
use taskq_tests::worker::RunningWorker;

/// How often a call ran, and when first.
#[derive(Debug, Clone, Copy)]
struct Runs {
    count: u32,
    first: Instant,
}

/// The runs of each call, by its argument. Both tests of this file run in one process, so
/// they number their calls apart (see [`run_through_a_failover`]).
fn runs() -> &'static Mutex<HashMap<u64, Runs>> {
    static RUNS: OnceLock<Mutex<HashMap<u64, Runs>>> = OnceLock::new();
    RUNS.get_or_init(Default::default)
}

#[taskq::task(name = "test.sentinel.record")]
async fn record(n: u64) -> u64 {
    let mut runs = runs().lock().unwrap();
    let entry = runs.entry(n).or_insert(Runs {
        count: 0,
        first: Instant::now(),
    });
    entry.count += 1;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_and_workers_follow_a_sentinel_failover() {
    let outcome = run_through_a_failover(Kill::AfterReplicasCaughtUp).await;
    assert!(
        outcome.lost.is_empty(),
        "accepted calls lost although the replicas had everything: {:?}",
        outcome.lost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_mid_stream_loses_only_what_redis_had_not_replicated() {
    let outcome = run_through_a_failover(Kill::MidStream).await;
    let after_kill: Vec<_> = outcome
        .lost
        .iter()
        .filter(|n| **n >= outcome.first_after_kill)
        .collect();
    assert!(
        after_kill.is_empty(),
        "calls accepted after the kill were lost: {after_kill:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_shares_the_queues_through_sentinel() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let mut set = SentinelSet::start(1);
    let results = set.master().url_db(1);
    let dir = tempfile::tempdir().unwrap();
    // Celery's own Sentinel transport, the master's name in its transport options.
    let _worker = python.start_worker_with(
        &set.url(0),
        &results,
        &["py"],
        &dir.path().join("py.log"),
        &[(
            "BROKER_TRANSPORT_OPTIONS",
            &format!(r#"{{"master_name": "{MASTER_NAME}"}}"#),
        )],
    );
    let mut config = taskq::Config::default();
    config.broker_url = set.url(0);
    config.result_backend = set.url(1);
    let client = taskq::Client::from_config(config).unwrap();
    let sum = client
        .send_by_name(
            "py.add",
            vec![2.into(), 3.into()],
            Default::default(),
            Options::new().queue("py"),
        )
        .await
        .unwrap();
    assert_eq!(sum.get(Duration::from_secs(30)).await.unwrap(), 5);
}

/// When the master dies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kill {
    /// With the producer paused and the replicas caught up (`WAIT`): any loss is taskq's.
    AfterReplicasCaughtUp,
    /// While the producer sends: the last writes the master took may not have reached the
    /// replicas, and are lost with it.
    MidStream,
}

impl Kill {
    /// The number of the first call: each test numbers its calls apart, as both share the
    /// record of runs.
    fn first_call(self) -> u64 {
        match self {
            Self::AfterReplicasCaughtUp => 0,
            Self::MidStream => 1 << 40,
        }
    }

    fn numbered(self, n: u64) -> bool {
        (self.first_call()..self.first_call() + (1 << 40)).contains(&n)
    }
}

struct Outcome {
    /// Accepted calls that never ran.
    lost: Vec<u64>,
    /// The first call accepted after the kill.
    first_after_kill: u64,
}

async fn run_through_a_failover(kill: Kill) -> Outcome {
    let mut set = SentinelSet::start(2);
    let mut config = taskq::Config::default();
    config.broker_url = set.url(0);
    config.result_backend = set.url(1);
    config.queues = vec!["celery".into()];
    // A message whose ack the old master took to its grave is taken back soon.
    config.visibility_timeout = Duration::from_secs(5);
    let client = taskq::Client::from_config(config).unwrap();
    let worker = RunningWorker::start(&client, |b| b.concurrency(8));

    let producer = {
        let client = client.clone();
        Producer::start(kill.first_call(), move |n| {
            let client = client.clone();
            async move { client.send(&record, (n,), Options::new()).await }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    if kill == Kill::AfterReplicasCaughtUp {
        producer.pause();
        tokio::time::sleep(Duration::from_millis(50)).await;
        set.wait_for_replicas();
    }
    // Sends that start from now on find the master gone.
    let old_master = set.kill_master();
    let killed = Instant::now();
    producer.killed_at(killed);
    set.wait_for_failover(old_master);
    let failover = killed.elapsed();
    producer.resume();
    // Sends go on for a while on the new master.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = producer.stop().await;
    let back = sent
        .back_at
        .expect("sends succeeded again after the failover")
        .duration_since(killed);

    // Every call accepted has run, or is lost. A message whose ack died with the old master
    // comes back after the visibility timeout: the count settles when it has not changed
    // for longer than that.
    let lost = settled_losses(&sent.accepted).await;
    let runs: Vec<Runs> = runs()
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| kill.numbered(**n))
        .map(|(_, r)| *r)
        .collect();
    let duplicates = runs.iter().filter(|r| r.count > 1).count();
    let first_run_after_kill = runs
        .iter()
        .filter_map(|r| r.first.checked_duration_since(killed))
        .min()
        .expect("tasks ran after the failover");
    println!(
        "sentinel failover ({kill:?}): {} calls accepted, {} sends refused, {} lost, \
         {duplicates} run twice; the sentinels promoted a replica {:.1} s after the kill, \
         sends succeeded again after {:.1} s, a task ran again after {:.1} s",
        sent.accepted.len(),
        sent.refused,
        lost.len(),
        failover.as_secs_f64(),
        back.as_secs_f64(),
        first_run_after_kill.as_secs_f64(),
    );
    assert!(worker.is_alive());
    worker.stop().await;
    Outcome {
        lost,
        first_after_kill: sent.first_after_kill,
    }
}
