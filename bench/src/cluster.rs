//! A private Redis Cluster for the cluster scenario: masters only (replicas add nothing to a
//! throughput figure), each a [`RedisServer`] with cluster mode on, the 16,384 slots split
//! into contiguous ranges as `redis-cli --cluster create` splits them, so taskq's shards
//! spread evenly over the masters.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::redis_server::{free_port, RedisServer};

/// The hash slots of a cluster.
const SLOTS: u32 = 16_384;

/// Masters of a cluster owned by the benchmark, killed when dropped.
#[derive(Debug)]
pub struct Cluster {
    masters: Vec<RedisServer>,
}

impl Cluster {
    /// Starts `masters` nodes of `binary` under `work_dir`, gives each its range of slots,
    /// joins them, and waits until every node says the cluster is ok.
    pub async fn start(binary: &str, work_dir: &Path, masters: usize) -> anyhow::Result<Self> {
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            // The bus port is chosen too: port + 10,000 may be taken, or past 65,535.
            let bus = free_port()?;
            let options = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-port".to_owned(),
                bus.to_string(),
            ];
            nodes.push((RedisServer::start_with(binary, work_dir, &options)?, bus));
        }
        let mut admins = Vec::with_capacity(masters);
        for (index, (node, _)) in nodes.iter().enumerate() {
            let mut admin = admin(node).await?;
            let (first, last) = slot_range(index, masters);
            let () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async(&mut admin)
                .await
                .context("CLUSTER ADDSLOTSRANGE (Redis 7.0 or later)")?;
            admins.push(admin);
        }
        for (node, bus) in &nodes[1..] {
            let () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .arg(bus)
                .query_async(&mut admins[0])
                .await?;
        }
        wait_until_ok(&mut admins, masters).await?;
        Ok(Self {
            masters: nodes.into_iter().map(|(node, _)| node).collect(),
        })
    }

    /// `redis+cluster://` naming every master, with taskq's `shards` parameter.
    pub fn url(&self, shards: usize) -> String {
        let nodes: Vec<String> = self
            .masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port()))
            .collect();
        format!("redis+cluster://{}?shards={shards}", nodes.join(","))
    }

    /// `redis://127.0.0.1:<port>` of each master.
    pub fn node_urls(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.url(0)).collect()
    }

    /// An admin connection to each master, for measuring their CPU.
    pub async fn admins(&self) -> anyhow::Result<Vec<MultiplexedConnection>> {
        let mut admins = Vec::with_capacity(self.masters.len());
        for master in &self.masters {
            admins.push(admin(master).await?);
        }
        Ok(admins)
    }
}

async fn admin(node: &RedisServer) -> anyhow::Result<MultiplexedConnection> {
    Ok(redis::Client::open(node.url(0))?
        .get_multiplexed_async_connection()
        .await?)
}

/// The first and last slot of master `index` of `masters`, rounded as `redis-cli --cluster
/// create` rounds them.
fn slot_range(index: usize, masters: usize) -> (u32, u32) {
    let per_master = f64::from(SLOTS) / masters as f64;
    let end = |i: usize| ((i as f64 + 1.0) * per_master - 1.0).round() as u32;
    let first = if index == 0 { 0 } else { end(index - 1) + 1 };
    let last = if index + 1 == masters {
        SLOTS - 1
    } else {
        end(index)
    };
    (first, last)
}

/// Waits until every node knows every other and calls the cluster ok.
async fn wait_until_ok(admins: &mut [MultiplexedConnection], masters: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ok = true;
        for admin in admins.iter_mut() {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(admin).await?;
            let known = format!("cluster_known_nodes:{masters}");
            ok &= info.contains("cluster_state:ok") && info.lines().any(|l| l.trim() == known);
        }
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cluster of {masters} masters did not form within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_split_into_contiguous_ranges() {
        assert_eq!(slot_range(0, 1), (0, 16_383));
        let three = [slot_range(0, 3), slot_range(1, 3), slot_range(2, 3)];
        assert_eq!(three, [(0, 5460), (5461, 10_922), (10_923, 16_383)]);
        assert_eq!(slot_range(1, 2), (8192, 16_383));
    }
}
