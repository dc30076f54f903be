//! The cluster scenario: the drain with results on a Redis Cluster of 1, 2 and 3 masters,
//! side by side, the queue split into the same number of shards each time.
//!
//! The calls are queued first with the queue paused (taskq's `pause_queue`: a worker does
//! not fetch from it), a worker starts and settles, and the clock starts when the queue is
//! resumed; it stops when every shard's list and `unacked` hash are empty, which happens only
//! once every result is stored (a message is acknowledged after its result). Redis's cost is
//! summed over the masters.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::ConnectionLike;
use taskq::broker::cluster::shard_tag;
use taskq::control::ControlOptions;
use taskq::keys::BrokerKeys;
use taskq::{Client, Config};

use super::{patience, send_noops, RunningWorker, QUEUE};
use crate::cli::Scenario;
use crate::cluster::Cluster;
use crate::probe::{Cost, Probe};
use crate::report::{Figure, Row, System, Throughput};

/// Drains `n` no-op tasks with a worker of `concurrency` slots on a fresh cluster of
/// `masters` masters, the queue in `shards` shards.
pub async fn drain(
    redis_server: &str,
    work_dir: &std::path::Path,
    (masters, shards): (usize, usize),
    (n, batch, concurrency): (u64, usize, usize),
) -> anyhow::Result<Row> {
    let cluster = Cluster::start(redis_server, work_dir, masters).await?;
    let url = cluster.url(shards);
    let mut config = Config::default();
    config.broker_url = url.clone();
    config.result_backend = url.clone();
    config.queues = vec![QUEUE.to_owned()];
    let client = Client::from_config(config).context("taskq client on the cluster")?;
    client.broker().pause_queue(QUEUE).await?;
    send_noops(&client, n, batch).await?;

    let worker = RunningWorker::start(&client, concurrency).await;
    let mut admins = cluster.admins().await?;
    let mut probes = Vec::with_capacity(admins.len());
    for admin in &mut admins {
        probes.push(Probe::start(admin).await?);
    }
    let mut watch = redis::cluster::ClusterClient::new(cluster.node_urls())?
        .get_async_connection()
        .await?;
    let started = Instant::now();
    let no_wait = ControlOptions::new().timeout(Duration::ZERO);
    client.control().resume_queue(QUEUE, &no_wait).await?;
    let done = wait_drained(&mut watch, shards, patience(n)).await;
    let secs = started.elapsed().as_secs_f64();
    let mut costs = Vec::with_capacity(probes.len());
    for (probe, admin) in probes.into_iter().zip(&mut admins) {
        costs.push(probe.finish(admin, n).await?);
    }
    worker.stop().await?;
    done?;
    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Cluster,
        label: format!(
            "cluster drain with results, {masters} master{}, {shards} shards",
            if masters == 1 { "" } else { "s" }
        ),
        repeats: None,
        figure: Figure::Throughput(Throughput::new(n, secs, Some(Cost::summed(costs)))),
    })
}

/// Waits until every shard's list and `unacked` hash are empty.
async fn wait_drained(
    conn: &mut (impl ConnectionLike + Send),
    shards: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let keys: Vec<(String, String)> = (0..shards)
        .map(|index| {
            let keys = BrokerKeys::default().in_shard(&shard_tag(index, shards));
            (keys.queue_list(QUEUE, 0), keys.unacked())
        })
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = 0u64;
        for (list, unacked) in &keys {
            // One shard's keys share a slot: one round trip each.
            let (waiting, held): (u64, u64) = redis::pipe()
                .llen(list)
                .hlen(unacked)
                .query_async(conn)
                .await?;
            left += waiting + held;
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} messages still queued or held after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
