//! Redis Cluster: a queue split into shards over three masters (each with a replica), drained
//! with results by a taskq worker; workflows, ETAs and revokes on the same cluster; a master
//! SIGKILLed mid-run and its replica promoted, with producers and a worker running, and again
//! under an idle worker; and a process that splits the queues differently from the cluster's
//! record is refused.
//!
//! The broker's single-shard behaviour (fetch order, settling, recovery, dead letters, beat,
//! rate limits, unique calls, remote control) is `broker_contract.rs`'s `on_cluster` tests.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use taskq::broker::cluster::shard_tag;
use taskq::canvas::{chain, chord, group};
use taskq::keys::BrokerKeys;
use taskq::{Client, Config, Options, TaskState};
use taskq_tests::cluster::RedisCluster;
use taskq_tests::failover::{settled_losses, Producer, Sent};
use taskq_tests::worker::RunningWorker;

const SHARDS: usize = 6;
const WAIT: Duration = Duration::from_secs(30);

#[taskq::task(name = "test.cluster.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "test.cluster.total")]
async fn total(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

#[taskq::task(name = "test.cluster.sleep")]
async fn sleep_for(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// How often each call of the failover test ran, and when first.
fn runs() -> &'static Mutex<HashMap<u64, (u32, Instant)>> {
    static RUNS: OnceLock<Mutex<HashMap<u64, (u32, Instant)>>> = OnceLock::new();
    RUNS.get_or_init(Default::default)
}

#[taskq::task(name = "test.cluster.record")]
async fn record(n: u64) -> u64 {
    runs()
        .lock()
        .unwrap()
        .entry(n)
        .or_insert((0, Instant::now()))
        .0 += 1;
    n
}

/// A client whose broker and result store are `cluster`, its queues split into [`SHARDS`].
fn cluster_client(cluster: &RedisCluster, configure: impl FnOnce(&mut Config)) -> Client {
    let mut config = Config::default();
    config.broker_url = format!("{}?shards={SHARDS}", cluster.cluster_url());
    config.result_backend = cluster.cluster_url();
    config.queues = vec!["celery".into()];
    configure(&mut config);
    Client::from_config(config).unwrap()
}

/// Messages waiting in each shard's `celery` list, read at the master serving it.
fn waiting_per_shard(cluster: &RedisCluster) -> Vec<u64> {
    (0..SHARDS)
        .map(|index| {
            let list = BrokerKeys::default()
                .in_shard(&shard_tag(index, SHARDS))
                .queue_list("celery", 0);
            let master = cluster.master_of_slot(cluster.slot_of_key(&list));
            taskq_tests::worker::query(&format!("redis://127.0.0.1:{master}"), &["LLEN", &list])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharded_queue_drains_with_results_over_three_masters() {
    let cluster = RedisCluster::start(3, 1);
    let client = cluster_client(&cluster, |_| {});

    // Sent one by one, as web handlers send: the sends take the shards in turn.
    let mut results = Vec::new();
    for i in 0..600 {
        results.push(client.send(&add, (i, 1), Options::new()).await.unwrap());
    }
    let per_shard = waiting_per_shard(&cluster);
    assert_eq!(per_shard.iter().sum::<u64>(), 600);
    assert!(
        per_shard.iter().all(|n| *n == 100),
        "each of the {SHARDS} shards holds a sixth of the sends: {per_shard:?}"
    );
    let masters_used: std::collections::BTreeSet<u16> = (0..SHARDS)
        .map(|index| {
            let list = BrokerKeys::default()
                .in_shard(&shard_tag(index, SHARDS))
                .queue_list("celery", 0);
            cluster.master_of_slot(cluster.slot_of_key(&list))
        })
        .collect();
    assert_eq!(masters_used.len(), 3, "the shards spread over every master");

    // A worker's start-up check sees an evicting master among the others.
    let evicting = format!("redis://127.0.0.1:{}", cluster.masters()[2]);
    let set = |policy: &str| {
        let () =
            taskq_tests::worker::query(&evicting, &["CONFIG", "SET", "maxmemory-policy", policy]);
    };
    set("allkeys-lru");
    let policy = client.broker().eviction_policy().await.unwrap();
    assert_eq!(policy.as_deref(), Some("allkeys-lru"));
    set("noeviction");

    let started = Instant::now();
    let worker = RunningWorker::start(&client, |b| b.concurrency(32));
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.get(WAIT).await.unwrap(), i as i64 + 1);
    }
    println!(
        "cluster: 600 calls over {SHARDS} shards on 3 masters drained with results in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let stats = client
        .broker()
        .queue_stats(&["celery".into()])
        .await
        .unwrap();
    assert_eq!((stats[0].waiting, stats[0].unacked), (0, 0));

    // Workflows: a chord's count lives under its group's hash tag; a chain's steps go to any
    // shard.
    let header = group((1..=10).map(|i| add.s(i, 0)));
    let summed = chord(header, total.partial())
        .apply_async(&client)
        .await
        .unwrap();
    assert_eq!(summed.get(WAIT).await.unwrap(), 55);
    let chained = chain(add.s(1, 1))
        .then(add.partial(10))
        .apply_async(&client)
        .await
        .unwrap();
    assert_eq!(chained.get(WAIT).await.unwrap(), 12);

    // An ETA waits in its shard's schedule, a revoke reaches every shard's messages.
    let sent_at = Instant::now();
    let later = client
        .send(
            &add,
            (2, 2),
            Options::new().countdown(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(later.get(WAIT).await.unwrap(), 4);
    assert!(sent_at.elapsed() >= Duration::from_millis(1500));
    let revoked = client
        .send(
            &sleep_for,
            (1,),
            Options::new().countdown(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    revoked.revoke().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(revoked.state().await.unwrap(), TaskState::Revoked);

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_splitting_the_queues_otherwise_is_refused() {
    let cluster = RedisCluster::start(1, 0);
    let six = cluster_client(&cluster, |_| {});
    six.broker().ping().await.unwrap();
    let three = taskq::broker::open(&format!("{}?shards=3", cluster.cluster_url())).unwrap();
    let refused = three.ping().await.unwrap_err().to_string();
    assert!(
        refused.contains("split into 6 shards") && refused.contains("shards=6"),
        "{refused}"
    );
}

/// A master SIGKILLed while producers send and a worker runs: its replica is promoted, and
/// every send that returned `Ok` runs. As in `sentinel_failover.rs`, the producers pause and
/// the replicas catch up (`WAIT`) before the kill, so that any loss would be taskq's own, not
/// the asynchronous replication's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_mid_run_loses_no_accepted_call() {
    let mut cluster = RedisCluster::start(3, 1);
    let client = cluster_client(&cluster, |config| {
        // A message whose ack died with the old master comes back soon.
        config.visibility_timeout = Duration::from_secs(5);
    });
    let worker = RunningWorker::start(&client, |b| b.concurrency(8));

    let producer = {
        let client = client.clone();
        Producer::start(0, move |n| {
            let client = client.clone();
            async move { client.send(&record, (n,), Options::new()).await }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    producer.pause();
    tokio::time::sleep(Duration::from_millis(50)).await;
    cluster.wait_for_replication();
    // The master of shard 0, which also holds what has one copy (revokes, paused queues).
    let home = BrokerKeys::default()
        .in_shard(&shard_tag(0, SHARDS))
        .unacked();
    let old_master = cluster.master_of_slot(cluster.slot_of_key(&home));
    cluster.kill_node(old_master);
    let killed = Instant::now();
    producer.killed_at(killed);
    producer.resume();
    cluster.wait_for_failover(old_master, Duration::from_secs(20));
    let failover = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let Sent {
        accepted,
        refused,
        back_at,
        ..
    } = producer.stop().await;
    let back = back_at
        .expect("sends succeeded again after the failover")
        .duration_since(killed);

    let lost = settled_losses(&accepted).await;
    let runs: Vec<(u32, Instant)> = runs().lock().unwrap().values().copied().collect();
    let duplicates = runs.iter().filter(|(count, _)| *count > 1).count();
    let first_run_after_kill = runs
        .iter()
        .filter_map(|(_, first)| first.checked_duration_since(killed))
        .min()
        .expect("tasks ran after the kill");
    println!(
        "cluster failover: {} calls accepted, {refused} sends refused, {} lost, {duplicates} \
         run twice; the replica was promoted {:.1} s after the kill, sends succeeded again \
         after {:.1} s, a task ran again after {:.1} s",
        accepted.len(),
        lost.len(),
        failover.as_secs_f64(),
        back.as_secs_f64(),
        first_run_after_kill.as_secs_f64(),
    );
    assert!(
        lost.is_empty(),
        "accepted calls lost although the replicas had everything: {lost:?}"
    );
    assert!(worker.is_alive());
    worker.stop().await;
}

/// A master SIGKILLed while the worker waits on an idle queue: calls sent then to the other
/// masters' shards run before the replica is promoted (the worker passes the dead master's
/// shards by instead of waiting on them), and those sent to the dead master's shards (their
/// sends wait for the promotion) run soon after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quiet_worker_keeps_the_other_shards_going_through_a_failover() {
    quiet_failover(2, 1_000_000).await;
}

/// As [`a_quiet_worker_keeps_the_other_shards_going_through_a_failover`], the master of
/// shard 0 killed: it also holds what has one copy (the paused set the worker reads again
/// between fetches, the revokes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quiet_worker_goes_on_when_the_home_shards_master_dies() {
    quiet_failover(0, 2_000_000).await;
}

/// Kills the master of `shard` under an idle worker, sends calls `first..` and checks when
/// they ran (see the two tests above).
async fn quiet_failover(shard: usize, first: u64) {
    const CALLS: u64 = 12;
    let mut cluster = RedisCluster::start(3, 1);
    let client = cluster_client(&cluster, |_| {});
    let worker = RunningWorker::start(&client, |b| b.concurrency(4));
    // The worker has opened its connections, and waits on them.
    let warm = client.send(&add, (1, 2), Options::new()).await.unwrap();
    assert_eq!(warm.get(WAIT).await.unwrap(), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let list = BrokerKeys::default()
        .in_shard(&shard_tag(shard, SHARDS))
        .queue_list("celery", 0);
    let old_master = cluster.master_of_slot(cluster.slot_of_key(&list));
    cluster.kill_node(old_master);
    let killed = Instant::now();
    // The worker's waits on the dead master's lists see their connections drop at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each send on its own: those to the dead master's shards wait for the promotion.
    let sends: Vec<_> = (first..first + CALLS)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.send(&record, (n,), Options::new()).await })
        })
        .collect();
    cluster.wait_for_failover(old_master, Duration::from_secs(20));
    let promoted = killed.elapsed();
    for send in sends {
        let sent = send
            .await
            .unwrap()
            .expect("the send succeeds once promoted");
        sent.get(WAIT).await.expect("every call runs");
    }

    let ran_after: Vec<Duration> = {
        let runs = runs().lock().unwrap();
        (first..first + CALLS)
            .map(|n| runs[&n].1.duration_since(killed))
            .collect()
    };
    let first = ran_after.iter().min().unwrap();
    let last = ran_after.iter().max().unwrap();
    println!(
        "quiet failover of shard {shard}'s master: the replica was promoted {:.1} s after the kill; of {CALLS} calls sent \
         then, the first ran after {:.2} s, the last after {:.1} s",
        promoted.as_secs_f64(),
        first.as_secs_f64(),
        last.as_secs_f64()
    );
    assert!(
        *first < promoted,
        "no call ran on the live masters' shards before the promotion ({:.1} s): a dead \
         master stopped the worker's other shards",
        promoted.as_secs_f64()
    );
    // The dead master's shards come back with the promotion: the worker's waits ask any
    // live node where their slots went.
    assert!(
        *last < promoted + Duration::from_secs(8),
        "the last call ran {:.1} s after the kill, {:.1} s after the promotion",
        last.as_secs_f64(),
        (*last - promoted).as_secs_f64()
    );
    assert!(worker.is_alive());
    worker.stop().await;
}
