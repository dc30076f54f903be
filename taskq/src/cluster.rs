//! Redis Cluster: the `redis+cluster://` URL and the connection to a cluster's nodes.
//!
//! ```text
//! redis+cluster://[user:password@]host:port[,host:port…][?shards=N]
//! rediss+cluster://…          (TLS to every node)
//! ```
//!
//! The hosts are where to start: the client asks them for the cluster's slot map and follows
//! it (and its changes, when a replica is promoted) by itself. The password and user name are
//! every node's. `socket_*` parameters set the timeouts, and Celery's `ssl_*` parameters TLS
//! (as for `rediss://`: a CA, a client certificate, verification); `shards` is the broker's
//! (see [`crate::broker::cluster`]).
//!
//! One connection, multiplexed over every master, carries the commands of every store made
//! for the same URL in a process. Blocking waits and Pub/Sub need connections of their own,
//! to one node: [`ClusterNodes::node_client`] finds the master serving a key, and any master
//! serves Pub/Sub (a cluster forwards every `PUBLISH` to every node). When a key's master is
//! another than the last time it was asked for, a failover moved it: the log says so.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use tokio::sync::OnceCell;

use crate::connection::{certificates_of, open_client, tls_certificates, Timeouts};
use crate::{Error, Result};

/// Whether `url` names a Redis Cluster.
pub(crate) fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://")
}

/// A parsed `redis+cluster://` URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterUrl {
    /// `redis` or `rediss`.
    pub(crate) scheme: &'static str,
    /// `user:password@`, as given (percent-encoded), or empty.
    pub(crate) userinfo: String,
    /// `host:port` of each node to start from.
    pub(crate) nodes: Vec<String>,
    /// The query, without `shards`: what each node's URL carries (`ssl_*`, `socket_*`).
    pub(crate) node_query: String,
    /// The broker's `shards` parameter, if given.
    pub(crate) shards: Option<usize>,
}

impl ClusterUrl {
    /// Parses a cluster URL.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming what is wrong: no host, a host without port, a database
    /// other than 0 (a cluster has only database 0), a `shards` that is not a count.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |why: String| Error::Config(format!("bad Redis Cluster URL: {why}"));
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", rest)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss", rest)
        } else {
            return Err(bad(
                "it must start with redis+cluster:// or rediss+cluster://".into(),
            ));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), rest),
        };
        let (hosts, db) = hosts.split_once('/').unwrap_or((hosts, ""));
        if !matches!(db, "" | "0") {
            return Err(bad(format!("database {db}: a cluster has database 0 only")));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if nodes.is_empty() {
            return Err(bad("no host:port".into()));
        }
        for node in &nodes {
            let port = node.rsplit_once(':').map(|(_, port)| port);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(bad(format!("{node:?} is not host:port")));
            }
        }
        let mut shards = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("shards", n)) => {
                    let n = n.parse::<usize>().ok().filter(|n| (1..=1024).contains(n));
                    shards =
                        Some(n.ok_or_else(|| {
                            bad(format!("{pair}: shards is a count from 1 to 1024"))
                        })?);
                }
                _ => kept.push(pair),
            }
        }
        Ok(Self {
            scheme,
            userinfo,
            nodes,
            node_query: kept.join("&"),
            shards,
        })
    }

    /// The URL of one node, as a `redis://` (or `rediss://`) URL with this URL's credentials
    /// and parameters.
    pub(crate) fn node_url(&self, address: &str) -> String {
        let query = if self.node_query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.node_query)
        };
        format!("{}://{}{address}/0{query}", self.scheme, self.userinfo)
    }
}

/// The nodes of one cluster, and the one multiplexed connection to them, opened on first use.
pub(crate) struct ClusterNodes {
    url: ClusterUrl,
    shared: ClusterLink,
    /// For commands that had better fail than wait out a failover (see
    /// [`quick_connection`](Self::quick_connection)).
    quick: ClusterLink,
    /// The seed client tried first for Pub/Sub, rotated when it fails.
    pubsub_seed: Mutex<usize>,
    /// The master last found serving each slot asked for, to tell when a failover moved it.
    masters: Mutex<HashMap<u16, String>>,
}

impl std::fmt::Debug for ClusterNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNodes")
            .field("nodes", &self.url.nodes)
            .field("connected", &self.shared.conn.initialized())
            .finish()
    }
}

impl ClusterNodes {
    /// The nodes of the cluster `url` names; nothing is connected yet.
    pub(crate) fn new(url: &str) -> Result<Self> {
        let parsed = ClusterUrl::parse(url)?;
        let timeouts = Timeouts::of(url)?;
        let seeds = parsed
            .nodes
            .iter()
            .map(|node| {
                Ok(open_client(&parsed.node_url(node))?
                    .get_connection_info()
                    .clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let client = |retries: u32| -> Result<ClusterClient> {
            let builder = ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(timeouts.connect)
                .response_timeout(timeouts.response)
                .retries(retries);
            Ok(match certificates_of(url)? {
                None => builder.build()?,
                #[cfg(feature = "tls")]
                Some(certs) => builder.certs(tls_certificates(certs)?).build()?,
                #[cfg(not(feature = "tls"))]
                Some(certs) => match tls_certificates(certs)? {},
            })
        };
        Ok(Self {
            url: parsed,
            // Few retries: during a failover a command waits for the promotion (a few
            // seconds with a short `cluster-node-timeout`) rather than failing at once, but a
            // cluster that is away is reported within seconds, as for one server.
            shared: ClusterLink::new(client(6)?),
            // Two retries: a redirect is followed, even after a reconnect to where the slot
            // was; a dead master (its port refusing) is reported at once.
            quick: ClusterLink::new(client(2)?),
            pubsub_seed: Mutex::new(0),
            masters: Mutex::new(HashMap::new()),
        })
    }

    /// The shared connection, opened on first use.
    pub(crate) async fn connection(&self) -> Result<ClusterConnection> {
        self.shared.get().await
    }

    /// A connection that reports a dead master at once instead of retrying it until its
    /// replica is promoted: for a worker's fetch, which goes shard after shard and would
    /// otherwise hold what the live masters handed over until the promotion.
    pub(crate) async fn quick_connection(&self) -> Result<ClusterConnection> {
        self.quick.get().await
    }

    /// A client for the master serving `key`'s slot now, for a connection of its own (a
    /// blocking wait on that key).
    pub(crate) async fn node_client(&self, key: &str) -> Result<redis::Client> {
        let slot = hash_slot(key);
        let reply = self.slot_map().await?;
        let (host, port) = master_of(&reply, slot)
            .ok_or_else(|| Error::Config(format!("no master serves slot {slot} of the cluster")))?;
        let address = self.address(&host, port);
        // The cluster's client follows a failover silently: this is where an operator
        // learns of it.
        if let Some(before) = self.note_master(slot, &address) {
            tracing::warn!(
                key,
                slot,
                from = %before,
                to = %address,
                "Redis Cluster: the master of the slot moved (failover); following it"
            );
        }
        open_client(&self.url.node_url(&address))
    }

    /// A `CLUSTER SLOTS` reply from whichever node answers first.
    ///
    /// Not from the master serving `key` as this process last knew it: after a failover
    /// that master is dead, a command routed to it waits for the client to learn the new
    /// slot map, and the client learns it only when a keyed command is redirected or
    /// refused, so a worker waiting quietly on the dead master's lists would not find the
    /// promoted one for many seconds. Every live node knows the new map.
    async fn slot_map(&self) -> Result<redis::Value> {
        let mut conn = self.connection().await?;
        let any = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllNodes,
            Some(ResponsePolicy::OneSucceeded),
        ));
        Ok(conn
            .route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), any)
            .await?)
    }

    /// Remembers `address` as the master of `slot`; the master it replaces, if another.
    fn note_master(&self, slot: u16, address: &str) -> Option<String> {
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        masters
            .insert(slot, address.to_owned())
            .filter(|before| before != address)
    }

    /// `host:port` of a node as `CLUSTER SLOTS` names it. A node that has not met another
    /// does not know its own address and names itself with an empty host (or `?`): then it is
    /// the seed with that port, or on the first seed's host.
    fn address(&self, host: &str, port: i64) -> String {
        if !host.is_empty() && host != "?" {
            return format!("{host}:{port}");
        }
        let seed_host = |node: &str| node.rsplit_once(':').map(|(h, _)| h.to_owned());
        let known = self
            .url
            .nodes
            .iter()
            .find(|node| node.ends_with(&format!(":{port}")))
            .and_then(|node| seed_host(node));
        let host = known
            .or_else(|| seed_host(&self.url.nodes[0]))
            .unwrap_or_default();
        format!("{host}:{port}")
    }

    /// A client for some node, for Pub/Sub: a cluster forwards every `PUBLISH` to every node.
    /// Each call after the first starts from the next seed, so a dead seed is passed by.
    pub(crate) async fn any_client(&self) -> Result<redis::Client> {
        let start = {
            let mut seed = self.pubsub_seed.lock().unwrap_or_else(|e| e.into_inner());
            let start = *seed;
            *seed = (start + 1) % self.url.nodes.len();
            start
        };
        // The seeds may all be gone after failovers: a master of the slot map is alive.
        match self.node_client(&format!("{{pubsub.{start}}}")).await {
            Ok(client) => Ok(client),
            Err(_) => open_client(&self.url.node_url(&self.url.nodes[start])),
        }
    }
}

/// A cluster client and its one multiplexed connection, opened on first use.
struct ClusterLink {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl ClusterLink {
    fn new(client: ClusterClient) -> Self {
        Self {
            client,
            conn: OnceCell::new(),
        }
    }

    async fn get(&self) -> Result<ClusterConnection> {
        let conn = self
            .conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await?;
        Ok(conn.clone())
    }
}

/// The master's host and port of the range holding `slot` in a `CLUSTER SLOTS` reply: per
/// range `[start, end, [host, port, id, …], replicas…]`.
fn master_of(reply: &redis::Value, slot: u16) -> Option<(String, i64)> {
    let slot = i64::from(slot);
    let redis::Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let redis::Value::Array(fields) = range else {
            return None;
        };
        let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
        if !(start..=end).contains(&slot) {
            return None;
        }
        let redis::Value::Array(master) = fields.get(2)? else {
            return None;
        };
        let host = text(master.first()?)?;
        let port = int(master.get(1)?)?;
        Some((host, port))
    })
}

fn int(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first
/// `{` and the next `}`, when not empty) or of the whole key, modulo 16,384.
pub(crate) fn hash_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16_384
}

/// The hash tag of shard `index` of `count`: a short text whose slot lies in the middle half
/// of the `index`-th of `count` equal ranges of the 16,384 slots. A cluster made with
/// `redis-cli --cluster create` gives each master one contiguous range, so `count` shards over
/// as many masters (or a divisor of `count`) land one (or as many) per master rather than
/// where the hash falls; the middle half keeps clear of where two masters' ranges meet, which
/// tools round differently.
///
/// ```
/// use taskq::broker::cluster::shard_tag;
///
/// assert_eq!(shard_tag(0, 3), "taskq.0.0"); // slot 2,522: in 0..5,461
/// assert_eq!(shard_tag(1, 3), "taskq.1.2"); // slot 7,848: in 5,461..10,922
/// ```
pub fn shard_tag(index: usize, count: usize) -> String {
    let width = 16_384 / count.max(1);
    let low = index * width + width / 4;
    let high = index * width + width - width / 4;
    (0..)
        .map(|n| format!("taskq.{index}.{n}"))
        .find(|tag| (low..high).contains(&usize::from(hash_slot(tag))))
        .expect("some tag hashes into every range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_parse_like_a_list_of_nodes() {
        let url =
            ClusterUrl::parse("redis+cluster://:pw@h1:7000,h2:7001/0?shards=6&socket_timeout=2")
                .unwrap();
        assert_eq!(url.scheme, "redis");
        assert_eq!(url.nodes, ["h1:7000", "h2:7001"]);
        assert_eq!(url.shards, Some(6));
        assert_eq!(
            url.node_url("h3:7002"),
            "redis://:pw@h3:7002/0?socket_timeout=2"
        );
        let tls = ClusterUrl::parse("rediss+cluster://h1:7000").unwrap();
        assert_eq!(tls.node_url("h1:7000"), "rediss://h1:7000/0");
        assert_eq!(tls.shards, None);
        for bad in [
            "redis+cluster://",
            "redis+cluster://h1",
            "redis+cluster://h1:7000/2",
            "redis+cluster://h1:7000?shards=0",
            "redis+cluster://h1:7000?shards=many",
        ] {
            assert!(ClusterUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_slots_follow_the_cluster_spec() {
        // The examples of the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(hash_slot("123456789"), 12_739);
        assert_eq!(
            hash_slot("{user1000}.following"),
            hash_slot("{user1000}.followers")
        );
        assert_eq!(hash_slot("foo{}{bar}"), hash_slot("foo{}{bar}"));
        assert_ne!(hash_slot("foo{}{bar}"), hash_slot("bar"));
        assert_eq!(hash_slot("foo{{bar}}zap"), hash_slot("{bar"));
        assert_eq!(hash_slot("p:{taskq.0.2}celery"), hash_slot("taskq.0.2"));
    }

    #[test]
    fn shard_tags_spread_over_equal_slot_ranges() {
        for count in [1, 2, 3, 4, 6, 16] {
            let width = 16_384 / count;
            for index in 0..count {
                let tag = shard_tag(index, count);
                let slot = usize::from(hash_slot(&tag));
                assert!(slot >= index * width, "{tag} {slot}");
                assert!(
                    index + 1 == count || slot < (index + 1) * width,
                    "{tag} {slot}"
                );
            }
        }
        // Stable: every process computes the same tags.
        assert_eq!(shard_tag(1, 3), shard_tag(1, 3));
    }

    #[test]
    fn a_slot_whose_master_changed_names_the_one_before() {
        let nodes = ClusterNodes::new("redis+cluster://127.0.0.1:7000").unwrap();
        assert_eq!(nodes.note_master(5, "10.0.0.1:7000"), None);
        assert_eq!(nodes.note_master(5, "10.0.0.1:7000"), None);
        assert_eq!(nodes.note_master(9, "10.0.0.2:7000"), None);
        assert_eq!(
            nodes.note_master(5, "10.0.0.3:7000").as_deref(),
            Some("10.0.0.1:7000")
        );
        assert_eq!(nodes.note_master(5, "10.0.0.3:7000"), None);
    }

    #[test]
    fn the_master_of_a_slot_is_read_from_cluster_slots() {
        use redis::Value::{Array, BulkString, Int};
        let node = |host: &str, port| {
            Array(vec![
                BulkString(host.into()),
                Int(port),
                BulkString(b"id".to_vec()),
            ])
        };
        let reply = Array(vec![
            Array(vec![
                Int(0),
                Int(8191),
                node("10.0.0.1", 7000),
                node("10.0.0.2", 7003),
            ]),
            Array(vec![Int(8192), Int(16383), node("10.0.0.3", 7001)]),
        ]);
        assert_eq!(master_of(&reply, 100), Some(("10.0.0.1".into(), 7000)));
        assert_eq!(master_of(&reply, 9000), Some(("10.0.0.3".into(), 7001)));
    }
}
