//! A Redis Cluster owned by one test: masters and their replicas, every one a
//! [`RedisServer`] with `--cluster-enabled yes` on free loopback ports, and a short
//! `cluster-node-timeout` ([`NODE_TIMEOUT_MS`]), so that a failover takes a few seconds.
//!
//! The cluster is formed over plain connections (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`,
//! `CLUSTER REPLICATE`), as `redis-cli --cluster create` would, so `redis-cli` is not needed.
//! It needs Redis 7.0 or later (`ADDSLOTSRANGE`, `cluster-port`).
//!
//! Each node gets its cluster-bus port from [`free_port`] and passes it as `cluster-port`:
//! the default, port + 10000, may be taken or beyond 65535 for a port the OS handed out.
//!
//! Failovers move the masters to other processes, so the cluster is asked who the masters
//! are ([`RedisCluster::masters`], [`RedisCluster::master_of_slot`]) rather than told.
//!
//! [`RedisCluster::start_tls`] starts a cluster that speaks TLS only: to its clients (the
//! harness's own connections too), between masters and replicas, and on the cluster bus.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use crate::tls::Certs;
use crate::{free_port, RedisServer};

/// The number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// The nodes' `cluster-node-timeout`: how long a silent node takes to be suspected.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How long [`RedisCluster::start`] waits for the cluster to form.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one command to a node may take (connecting, reading, writing), so that a dead
/// or stuck node only slows a poll down.
const NODE_IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Masters and their replicas, each a `redis-server` of the test's own.
///
/// Dropping it kills every node (SIGKILL) and removes their directories.
#[derive(Debug)]
pub struct RedisCluster {
    /// The certificates of a TLS cluster.
    tls: Option<Certs>,
    /// Every node, in start order: the masters first, then the replicas of the first master,
    /// of the second, …. Failovers change who is master; this order does not.
    nodes: Vec<RedisServer>,
    /// For each master killed by [`kill_node`](Self::kill_node): its replicas at that moment,
    /// the candidates for its succession.
    heirs: HashMap<u16, Vec<u16>>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas_per_master` replicas each, splits the 16384
    /// slots over the masters in contiguous ranges, and waits until every node says
    /// `cluster_state:ok`, knows every other node, sees every replica under its master, and
    /// every replica's link to its master is up.
    ///
    /// # Panics
    ///
    /// If `masters` is 0, if a node cannot start (see [`RedisServer::start`]), or if the
    /// cluster does not form within 30 s; the message shows each node's view and log tail.
    pub fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        Self::start_nodes(masters, replicas_per_master, None)
    }

    /// Like [`start`](Self::start), a cluster that speaks TLS only, with `certs`: every node
    /// listens on a TLS port only ([`RedisServer::start_tls`]) and talks TLS to its master
    /// (`tls-replication yes`) and on the cluster bus (`tls-cluster yes`), so the cluster
    /// announces the TLS ports. The harness connects over TLS, trusting the test CA;
    /// [`cluster_url`](Self::cluster_url) is a `rediss+cluster://` URL naming it.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_tls(masters: usize, replicas_per_master: usize, certs: &Certs) -> RedisCluster {
        Self::start_nodes(masters, replicas_per_master, Some(certs))
    }

    fn start_nodes(
        masters: usize,
        replicas_per_master: usize,
        tls: Option<&Certs>,
    ) -> RedisCluster {
        assert!(masters > 0, "a cluster needs at least one master");
        let total = masters * (1 + replicas_per_master);
        let nodes = (0..total).map(|_| start_node(tls)).collect();
        let cluster = RedisCluster {
            tls: tls.cloned(),
            nodes,
            heirs: HashMap::new(),
        };
        cluster.form(masters, replicas_per_master);
        cluster
    }

    /// Assigns the slots, introduces the nodes, makes the replicas, and waits for it all.
    fn form(&self, masters: usize, replicas_per_master: usize) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let left = || deadline.saturating_duration_since(Instant::now());
        let ports = self.ports();
        let ids: Vec<String> = ports
            .iter()
            .map(|&port| {
                self.query(port, redis::cmd("CLUSTER").arg("MYID"))
                    .unwrap_or_else(|e| panic!("CLUSTER MYID on 127.0.0.1:{port}: {e}"))
            })
            .collect();

        // Every node its own config epoch before they meet, as redis-cli does, so that they
        // need not settle colliding epochs first.
        for (i, &port) in ports.iter().enumerate() {
            let epoch = i + 1;
            self.node_ok(
                port,
                redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(epoch),
            );
        }
        for (&port, (first, last)) in ports.iter().zip(slot_ranges(masters)) {
            self.node_ok(
                port,
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            );
        }
        // Gossip spreads the rest: the first node meeting every other one is enough.
        for node in &self.nodes[1..] {
            self.node_ok(
                ports[0],
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(node.port())
                    .arg(self.bus_port(node.port())),
            );
        }

        // The replica of master `m` at index masters + m * replicas_per_master + r.
        let master_index = |replica: usize| (replica - masters) / replicas_per_master;
        for replica in masters..ports.len() {
            let port = ports[replica];
            let master_id = &ids[master_index(replica)];
            self.wait_for(
                left(),
                &format!("127.0.0.1:{port} to learn of its master {master_id}"),
                || {
                    self.view(port)
                        .is_some_and(|v| v.iter().any(|n| &n.id == master_id))
                },
            );
            self.node_ok(port, redis::cmd("CLUSTER").arg("REPLICATE").arg(master_id));
        }

        let expected_master = |i: usize| (i >= masters).then(|| ids[master_index(i)].as_str());
        self.wait_for(left(), "the cluster to form", || {
            ports.iter().enumerate().all(|(i, &port)| {
                let agreed = self.view(port).is_some_and(|v| {
                    v.len() == ports.len()
                        && v.iter().all(|n| {
                            let index = ids.iter().position(|id| *id == n.id);
                            !n.has_flag("handshake")
                                && !n.has_flag("fail?")
                                && !n.has_flag("fail")
                                && index.is_some_and(|j| n.master_id() == expected_master(j))
                        })
                });
                agreed && self.cluster_state_ok(port) && (i < masters || self.master_link_up(port))
            })
        });
    }

    /// The port of every node started, killed or not, in start order: the masters as they
    /// were started first, then their replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The ports of the current masters (the nodes serving slots), in slot order, as a live
    /// node sees them.
    ///
    /// Between a master's death and its replica's promotion the dead master still serves its
    /// slots, as far as the cluster knows.
    ///
    /// # Panics
    ///
    /// If no live node answers.
    pub fn masters(&self) -> Vec<u16> {
        let view = self.live_view();
        let mut owners: Vec<&NodeLine> = view.iter().filter(|n| !n.slots.is_empty()).collect();
        owners.sort_by_key(|n| n.slots.iter().map(|&(first, _)| first).min());
        owners.iter().map(|n| n.port).collect()
    }

    /// The port of the master serving `slot`, as a live node sees it.
    ///
    /// # Panics
    ///
    /// If `slot` is not below 16384, if no live node answers, or if no node serves `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        assert!(
            slot < CLUSTER_SLOTS,
            "slot {slot} is not below {CLUSTER_SLOTS}"
        );
        let view = self.live_view();
        view.iter()
            .find(|n| {
                n.slots
                    .iter()
                    .any(|&(first, last)| (first..=last).contains(&slot))
            })
            .map(|n| n.port)
            .unwrap_or_else(|| {
                panic!(
                    "no node serves slot {slot}; the cluster:\n{}",
                    self.report()
                )
            })
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, asked of a live node).
    ///
    /// # Panics
    ///
    /// If no live node answers.
    pub fn slot_of_key(&self, key: &str) -> u16 {
        self.live_ports()
            .find_map(|port| {
                self.query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
                    .ok()
            })
            .unwrap_or_else(|| panic!("no live node answers; the cluster:\n{}", self.report()))
    }

    /// The URL of each current master, `redis://127.0.0.1:PORT`, in slot order; of a TLS
    /// cluster `rediss://127.0.0.1:PORT?ssl_ca_certs=<ca.pem>` (taskq's form, which
    /// [`redis_cmd`](crate::redis_cmd) also reads).
    pub fn urls(&self) -> Vec<String> {
        let (scheme, query) = self.url_parts();
        self.masters()
            .iter()
            .map(|port| format!("{scheme}://127.0.0.1:{port}{query}"))
            .collect()
    }

    /// The cluster URL listing the current masters:
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`; of a TLS cluster
    /// `rediss+cluster://127.0.0.1:P1,…?ssl_ca_certs=<ca.pem>`.
    pub fn cluster_url(&self) -> String {
        let (scheme, query) = self.url_parts();
        let hosts: Vec<String> = self
            .masters()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("{scheme}+cluster://{}{query}", hosts.join(","))
    }

    /// The certificates of a cluster started with [`start_tls`](Self::start_tls).
    pub fn certs(&self) -> Option<&Certs> {
        self.tls.as_ref()
    }

    /// The scheme of the cluster's URLs, and their query (`?ssl_ca_certs=…` or nothing).
    fn url_parts(&self) -> (&'static str, String) {
        match &self.tls {
            None => ("redis", String::new()),
            Some(certs) => ("rediss", format!("?{}", certs.ca_param())),
        }
    }

    /// The last `lines` lines of the log of the node on `port`.
    ///
    /// # Panics
    ///
    /// If no node of the cluster listens on `port`.
    pub fn log_tail(&self, port: u16, lines: usize) -> String {
        self.node(port).log_tail(lines)
    }

    /// Kills the node on `port` (SIGKILL) and returns once the process is gone. If it was a
    /// master, its replicas are remembered for [`wait_for_failover`](Self::wait_for_failover).
    ///
    /// # Panics
    ///
    /// If no node of the cluster was started on `port`.
    pub fn kill_node(&mut self, port: u16) {
        let index = self.index_of(port);
        let view = self.live_view();
        if let Some(me) = view.iter().find(|n| n.port == port && !n.slots.is_empty()) {
            let replicas = view
                .iter()
                .filter(|n| n.master_id() == Some(me.id.as_str()) && !n.has_flag("fail"))
                .map(|n| n.port)
                .collect();
            self.heirs.insert(port, replicas);
        }
        self.nodes[index].stop();
    }

    /// Waits until a replica of the master on `old_master` (killed by
    /// [`kill_node`](Self::kill_node)) serves slots in its place in the view of every node
    /// still running, and every one of them says `cluster_state:ok`; returns the new master's
    /// port.
    ///
    /// # Panics
    ///
    /// If `old_master` was not a master when [`kill_node`](Self::kill_node) killed it, or
    /// after `timeout`; the message shows each node's view and log tail.
    pub fn wait_for_failover(&self, old_master: u16, timeout: Duration) -> u16 {
        let heirs = self.heirs.get(&old_master).unwrap_or_else(|| {
            panic!("127.0.0.1:{old_master} was not a master killed by kill_node")
        });
        assert!(
            !heirs.is_empty(),
            "127.0.0.1:{old_master} had no replica to take over when it was killed"
        );
        let mut new_master = None;
        self.wait_for(
            timeout,
            &format!("a replica of 127.0.0.1:{old_master} ({heirs:?}) to take over"),
            || {
                let mut chosen = None;
                for port in self.live_ports() {
                    let Some(view) = self.view(port) else {
                        return false;
                    };
                    let owners: Vec<u16> = view
                        .iter()
                        .filter(|n| !n.slots.is_empty())
                        .map(|n| n.port)
                        .collect();
                    let Some(&heir) = owners.iter().find(|p| heirs.contains(p)) else {
                        return false;
                    };
                    if owners.contains(&old_master)
                        || chosen.is_some_and(|c| c != heir)
                        || !self.cluster_state_ok(port)
                    {
                        return false;
                    }
                    chosen = Some(heir);
                }
                new_master = chosen;
                chosen.is_some()
            },
        );
        new_master.expect("a new master once the failover is done")
    }

    /// Waits until every live replica of every current master has all the master's writes
    /// (`WAIT`), e.g. before killing a master whose data a test means to find again.
    ///
    /// # Panics
    ///
    /// If a master cannot be reached, or its replicas do not catch up within 5 s.
    pub fn wait_for_replication(&self) {
        let view = self.live_view();
        for master in view.iter().filter(|n| !n.slots.is_empty()) {
            let replicas = view
                .iter()
                .filter(|n| n.master_id() == Some(master.id.as_str()) && !n.has_flag("fail"))
                .count();
            let acked: usize = self
                .query(master.port, redis::cmd("WAIT").arg(replicas).arg(5000))
                .unwrap_or_else(|e| panic!("WAIT on 127.0.0.1:{}: {e}", master.port));
            assert!(
                acked >= replicas,
                "{acked} of the {replicas} replicas of 127.0.0.1:{} caught up within 5 s; the \
                 cluster:\n{}",
                master.port,
                self.report()
            );
        }
    }

    /// Empties every current master (`FLUSHALL`); the replicas follow.
    ///
    /// # Panics
    ///
    /// If a master cannot be reached or refuses.
    pub fn flushall(&self) {
        for port in self.masters() {
            self.node_ok(port, &redis::cmd("FLUSHALL"));
        }
    }

    fn node(&self, port: u16) -> &RedisServer {
        &self.nodes[self.index_of(port)]
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node of the cluster was started on port {port}"))
    }

    /// The ports of the nodes not killed.
    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(RedisServer::port)
    }

    /// `CLUSTER NODES` of the first live node that answers.
    fn live_view(&self) -> Vec<NodeLine> {
        self.live_ports()
            .find_map(|port| self.view(port))
            .unwrap_or_else(|| panic!("no live node answers; the cluster:\n{}", self.report()))
    }

    /// Polls `condition` every 50 ms until it holds.
    ///
    /// # Panics
    ///
    /// After `timeout`, with [`report`](Self::report).
    fn wait_for(&self, timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition() {
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the cluster:\n{}",
                    self.report()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each node's state, view of the cluster and log tail, for failure messages.
    fn report(&self) -> String {
        let mut report = String::new();
        for node in &self.nodes {
            let port = node.port();
            if node.pid().is_none() {
                report.push_str(&format!("== 127.0.0.1:{port}: killed\n"));
                continue;
            }
            let nodes: String = self
                .query(port, redis::cmd("CLUSTER").arg("NODES"))
                .unwrap_or_else(|e| format!("<CLUSTER NODES failed: {e}>"));
            let state = if self.cluster_state_ok(port) {
                "ok"
            } else {
                "not ok"
            };
            report.push_str(&format!(
                "== 127.0.0.1:{port}: cluster_state {state}\n{}\n-- log tail:\n{}\n",
                nodes.trim_end(),
                node.log_tail(8)
            ));
        }
        report
    }
}

/// The harness's own connections to the nodes.
impl RedisCluster {
    /// The cluster-bus port the node on `port` was started with.
    fn bus_port(&self, port: u16) -> u16 {
        let reply: Vec<String> = self
            .query(port, redis::cmd("CONFIG").arg("GET").arg("cluster-port"))
            .unwrap_or_else(|e| panic!("CONFIG GET cluster-port on 127.0.0.1:{port}: {e}"));
        reply
            .get(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no cluster-port in {reply:?}"))
    }

    /// One command to the node on `port` over a new connection (TLS for a TLS cluster), with
    /// short timeouts.
    fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let mut con = self
            .node(port)
            .client()
            .get_connection_with_timeout(NODE_IO_TIMEOUT)?;
        con.set_read_timeout(Some(NODE_IO_TIMEOUT))?;
        con.set_write_timeout(Some(NODE_IO_TIMEOUT))?;
        cmd.query(&mut con)
    }

    /// Runs a command that answers `OK` on the node on `port`.
    ///
    /// # Panics
    ///
    /// If it fails; the message names the command and the node.
    fn node_ok(&self, port: u16, cmd: &redis::Cmd) {
        let reply: redis::RedisResult<()> = self.query(port, cmd);
        if let Err(e) = reply {
            let args: Vec<String> = cmd
                .args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    _ => "<cursor>".to_owned(),
                })
                .collect();
            panic!("{} on 127.0.0.1:{port} failed: {e}", args.join(" "));
        }
    }

    /// Whether the node on `port` answers and says `cluster_state:ok`.
    fn cluster_state_ok(&self, port: u16) -> bool {
        self.query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
            .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
    }

    /// Whether the replica on `port` answers and its link to its master is up.
    fn master_link_up(&self, port: u16) -> bool {
        self.query::<String>(port, redis::cmd("INFO").arg("replication"))
            .is_ok_and(|info| info.lines().any(|l| l.trim() == "master_link_status:up"))
    }

    /// `CLUSTER NODES` of the node on `port`, or `None` if it does not answer.
    fn view(&self, port: u16) -> Option<Vec<NodeLine>> {
        let text: String = self.query(port, redis::cmd("CLUSTER").arg("NODES")).ok()?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(NodeLine::parse)
            .collect()
    }
}

/// Starts one cluster node with a cluster-bus port of its own; with `tls`, a TLS-only node
/// whose cluster bus is TLS too.
fn start_node(tls: Option<&Certs>) -> RedisServer {
    let bus = free_port().to_string();
    let timeout = NODE_TIMEOUT_MS.to_string();
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus,
        "--cluster-node-timeout",
        &timeout,
        // A replica takes over however long it has been cut off from its master: the tests
        // decide what it must have (`wait_for_replication`), not its lag.
        "--cluster-replica-validity-factor",
        "0",
        // Replicas sync at once instead of waiting 5 s for others to share a transfer.
        "--repl-diskless-sync-delay",
        "0",
    ];
    match tls {
        None => RedisServer::start_with(&args),
        Some(certs) => {
            RedisServer::start_tls(certs, &[&args[..], &["--tls-cluster", "yes"]].concat())
        }
    }
}

/// The contiguous slot ranges of `masters` masters, split evenly as
/// `redis-cli --cluster create` splits them.
fn slot_ranges(masters: usize) -> Vec<(u16, u16)> {
    let per_master = f64::from(CLUSTER_SLOTS) / masters as f64;
    let mut ranges = Vec::with_capacity(masters);
    let mut first = 0u16;
    for i in 0..masters {
        let last = if i + 1 == masters {
            CLUSTER_SLOTS - 1
        } else {
            // Below 16384, so the conversion is exact.
            (((i + 1) as f64 * per_master).round() as u16 - 1).max(first)
        };
        ranges.push((first, last));
        first = last + 1;
    }
    ranges
}

/// One line of `CLUSTER NODES`: a node as another (or itself) sees it.
#[derive(Debug, Clone, PartialEq)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    /// The id of its master, `-` for a master.
    master: String,
    /// The slot ranges it serves, inclusive.
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// Parses `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
    /// <config-epoch> <link-state> <slot>...`; `None` for anything else.
    fn parse(line: &str) -> Option<NodeLine> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let address = fields[1].split(['@', ',']).next()?;
        let port = address.rsplit(':').next()?.parse().ok()?;
        let slots = fields[8..]
            .iter()
            // `[slot->-id]` and `[slot-<-id]`: slots on the move, served by their owner still.
            .filter(|s| !s.starts_with('['))
            .map(|s| match s.split_once('-') {
                Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                None => s.parse().ok().map(|slot| (slot, slot)),
            })
            .collect::<Option<Vec<_>>>()?;
        Some(NodeLine {
            id: fields[0].to_owned(),
            port,
            flags: fields[2].split(',').map(str::to_owned).collect(),
            master: fields[3].to_owned(),
            slots,
        })
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The id of its master, `None` for a master.
    fn master_id(&self) -> Option<&str> {
        (self.master != "-").then_some(self.master.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_split_as_redis_cli_splits_them() {
        assert_eq!(slot_ranges(1), [(0, 16383)]);
        assert_eq!(slot_ranges(3), [(0, 5460), (5461, 10922), (10923, 16383)]);
        for masters in 1..=10 {
            let ranges = slot_ranges(masters);
            assert_eq!(ranges.len(), masters);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[masters - 1].1, CLUSTER_SLOTS - 1);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "contiguous: {ranges:?}");
            }
        }
    }

    #[test]
    fn a_cluster_nodes_line_is_parsed() {
        let master = NodeLine::parse(
            "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host myself,master - \
             0 1426238317239 4 connected 0-5460 5462 [5461->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]",
        )
        .unwrap();
        assert_eq!(master.port, 30004);
        assert!(master.has_flag("myself") && master.has_flag("master"));
        assert_eq!(master.master_id(), None);
        assert_eq!(master.slots, [(0, 5460), (5462, 5462)]);

        let replica = NodeLine::parse(
            "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 slave,fail \
             07c37dfeb235213a872192d90877d0cd55635b91 0 1426238316232 4 disconnected",
        )
        .unwrap();
        assert_eq!(replica.port, 30001);
        assert!(replica.has_flag("fail"));
        assert_eq!(
            replica.master_id(),
            Some("07c37dfeb235213a872192d90877d0cd55635b91")
        );
        assert!(replica.slots.is_empty());

        assert_eq!(NodeLine::parse("garbage"), None);
    }
}
