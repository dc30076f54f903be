//! Shared plumbing for the two kinds of store: a lazily opened Redis connection (to one
//! server, a Sentinel master or a cluster), and the process-wide registry that makes every
//! `memory://<name>` URL meet the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use tokio::sync::OnceCell;

use crate::cluster::{is_cluster_url, ClusterNodes};
use crate::sentinel::{is_sentinel_url, SentinelMaster};
use crate::{Error, Result};

/// Opens a Redis client for `url`, taking Celery's TLS query parameters for `rediss://` URLs:
/// `ssl_ca_certs` (PEM file of the CA to trust instead of the system roots), `ssl_certfile` and
/// `ssl_keyfile` (client certificate for mutual TLS), and `ssl_cert_reqs` (`CERT_REQUIRED`, the
/// default, or `CERT_NONE` to skip verification, with the `tls-insecure` feature only).
/// Certificates are verified unless told not to.
/// The `socket_*` timeout parameters are read by [`Timeouts::of`].
pub(crate) fn open_client(url: &str) -> Result<redis::Client> {
    let (base, params) = split_query(url);
    let verify = match param(&params, "ssl_cert_reqs")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("CERT_REQUIRED" | "REQUIRED" | "CERT_OPTIONAL" | "OPTIONAL") => true,
        Some("CERT_NONE" | "NONE") => false,
        Some(other) => {
            return Err(Error::Config(format!(
                "ssl_cert_reqs={other} is not one of CERT_REQUIRED, CERT_NONE"
            )))
        }
    };
    if scheme(&base) == "rediss" && !cfg!(feature = "tls") {
        return Err(Error::Config(
            "rediss:// needs taskq's `tls` feature (on by default)".to_owned(),
        ));
    }
    let base = if verify {
        base
    } else if cfg!(feature = "tls-insecure") {
        format!("{base}#insecure")
    } else {
        return Err(Error::Config(
            "ssl_cert_reqs=CERT_NONE turns certificate checks off, which needs taskq's \
             `tls-insecure` feature"
                .to_owned(),
        ));
    };
    match certificates(&params)? {
        None => Ok(redis::Client::open(base)?),
        Some(certs) => with_certificates(base, certs),
    }
}

/// The value of the query parameter `name` among `params`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A CA to trust and a client certificate (certificate, key), PEM.
pub(crate) type Certificates = (Option<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>);

/// The certificate files Celery's `ssl_ca_certs`, `ssl_certfile` and `ssl_keyfile` parameters
/// name, read; `None` when none is named.
fn certificates(params: &[(String, String)]) -> Result<Option<Certificates>> {
    let root_cert = param(params, "ssl_ca_certs").map(read_pem).transpose()?;
    let client_cert = match (param(params, "ssl_certfile"), param(params, "ssl_keyfile")) {
        (Some(cert), Some(key)) => Some((read_pem(cert)?, read_pem(key)?)),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "ssl_certfile and ssl_keyfile go together".to_owned(),
            ))
        }
    };
    if root_cert.is_none() && client_cert.is_none() {
        return Ok(None);
    }
    Ok(Some((root_cert, client_cert)))
}

/// The certificates a URL's query names, read (see [`open_client`]); `None` when it names none.
pub(crate) fn certificates_of(url: &str) -> Result<Option<Certificates>> {
    certificates(&split_query(url).1)
}

/// The certificates of [`certificates_of`] as redis-rs takes them.
#[cfg(feature = "tls")]
pub(crate) fn tls_certificates(
    (root_cert, client_cert): Certificates,
) -> Result<redis::TlsCertificates> {
    let client_tls = client_cert.map(|(client_cert, client_key)| redis::ClientTlsConfig {
        client_cert,
        client_key,
    });
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// Without TLS support, certificate parameters are a configuration error.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_certificates(_: Certificates) -> Result<std::convert::Infallible> {
    Err(Error::Config(
        "ssl_ca_certs, ssl_certfile and ssl_keyfile need taskq's `tls` feature (on by default)"
            .to_owned(),
    ))
}

/// A client for `base` with `certs`.
fn with_certificates(base: String, certs: Certificates) -> Result<redis::Client> {
    #[cfg(feature = "tls")]
    {
        Ok(redis::Client::build_with_tls(
            base,
            tls_certificates(certs)?,
        )?)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = base;
        match tls_certificates(certs)? {}
    }
}

/// Splits off the query string of a URL, keeping other parameters for redis-rs. Ours come back
/// percent-decoded, as redis-py reads them (`ssl_ca_certs=%2Fetc%2Fca.pem` is `/etc/ca.pem`).
fn split_query(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
        let (key, value) = decoded.unwrap_or_default();
        if key.starts_with("ssl_") || key.starts_with("socket_") {
            ours.push((key.into_owned(), value.into_owned()));
        } else {
            theirs.push(pair);
        }
    }
    let base = if theirs.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", theirs.join("&"))
    };
    (base, ours)
}

fn read_pem(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read TLS file {path}: {e}")))
}

/// Whether `error` means the connection dropped (closed by the server, a proxy or a kill),
/// as opposed to a refused connection, a timeout (Redis may be frozen, and run the command
/// later) or an error reply: a command may then be sent again on a fresh connection.
pub(crate) fn connection_dropped(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() && !error.is_timeout() && !error.is_connection_refusal()
}

/// How long a command may wait for its reply, unless the URL says otherwise: a call to a
/// Redis that froze or vanished errors after this instead of hanging.
pub(crate) const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take, unless the URL says otherwise.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts of a URL: redis-py's (and so Celery's) `socket_timeout` and
/// `socket_connect_timeout` query parameters, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timeouts {
    /// How long a command waits for its reply.
    pub(crate) response: Duration,
    /// How long opening a connection takes at most.
    pub(crate) connect: Duration,
}

impl Timeouts {
    pub(crate) fn of(url: &str) -> Result<Self> {
        let (_, params) = split_query(url);
        let secs = |name: &str, default: Duration| -> Result<Duration> {
            match params.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, value)) => value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "{name}={value} is not a positive number of seconds"
                        ))
                    }),
            }
        };
        Ok(Self {
            response: secs("socket_timeout", DEFAULT_SOCKET_TIMEOUT)?,
            connect: secs("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)?,
        })
    }
}

/// Where a store's Redis is: one server, the master of a Sentinel-monitored set, which may
/// move (see [`crate::sentinel`]), or a Redis Cluster (see [`crate::cluster`]).
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Server(Box<redis::Client>),
    Sentinel(Arc<SentinelMaster>),
    Cluster(Arc<ClusterNodes>),
}

/// The Sentinel sets and clusters this process talks to, by URL: the stores of one URL share
/// one watch of the sentinels (and log each failover once) and one cluster connection.
static SHARED_ENDPOINTS: OnceLock<Mutex<HashMap<String, SharedEndpoint>>> = OnceLock::new();

/// A shared endpoint, held weakly: it goes (and its watch stops) with its last store.
#[derive(Debug)]
enum SharedEndpoint {
    Sentinel(Weak<SentinelMaster>),
    Cluster(Weak<ClusterNodes>),
}

impl Endpoint {
    /// The endpoint of `url`, shared with the other stores of this process on the same URL.
    pub(crate) fn open(url: &str) -> Result<Self> {
        if !is_sentinel_url(url) && !is_cluster_url(url) {
            return Self::open_private(url);
        }
        let mut shared = SHARED_ENDPOINTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared.retain(|_, endpoint| match endpoint {
            SharedEndpoint::Sentinel(weak) => weak.strong_count() > 0,
            SharedEndpoint::Cluster(weak) => weak.strong_count() > 0,
        });
        let alive = match shared.get(url) {
            Some(SharedEndpoint::Sentinel(weak)) => weak.upgrade().map(Self::Sentinel),
            Some(SharedEndpoint::Cluster(weak)) => weak.upgrade().map(Self::Cluster),
            None => None,
        };
        if let Some(endpoint) = alive {
            return Ok(endpoint);
        }
        let endpoint = Self::open_private(url)?;
        let entry = match &endpoint {
            Self::Sentinel(master) => SharedEndpoint::Sentinel(Arc::downgrade(master)),
            Self::Cluster(nodes) => SharedEndpoint::Cluster(Arc::downgrade(nodes)),
            Self::Server(_) => return Ok(endpoint),
        };
        shared.insert(url.to_owned(), entry);
        Ok(endpoint)
    }

    /// The endpoint of `url`, shared with nobody: for a store that must not depend on tasks
    /// of another runtime (the lease renewer's thread; see `Broker::detached`).
    pub(crate) fn open_private(url: &str) -> Result<Self> {
        if is_sentinel_url(url) {
            Ok(Self::Sentinel(SentinelMaster::new(url)?))
        } else if is_cluster_url(url) {
            Ok(Self::Cluster(Arc::new(ClusterNodes::new(url)?)))
        } else {
            Ok(Self::Server(Box::new(open_client(url)?)))
        }
    }

    /// A client for the server, or for the master now, for a Pub/Sub connection (on a cluster,
    /// any master: every node forwards every `PUBLISH`); opened anew after a failure.
    pub(crate) async fn client(&self) -> Result<redis::Client> {
        match self {
            Self::Server(client) => Ok(client.as_ref().clone()),
            Self::Sentinel(master) => master.client().await,
            Self::Cluster(nodes) => nodes.any_client().await,
        }
    }

    /// A client for the server holding `key` (on a cluster, the master serving its slot now),
    /// for a connection of its own: a blocking wait on `key`.
    pub(crate) async fn client_for(&self, key: &str) -> Result<redis::Client> {
        match self {
            Self::Cluster(nodes) => nodes.node_client(key).await,
            _ => self.client().await,
        }
    }

    /// Changes each time a Sentinel master moves (always 0 otherwise): connections opened for
    /// an older generation go to a replaced master. A cluster's moves are followed by its
    /// client; a blocking connection to a node that failed errs, and is opened anew.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Sentinel(master) => master.generation(),
            Self::Server(_) | Self::Cluster(_) => 0,
        }
    }

    /// The database number (always 0 on a cluster).
    pub(crate) fn db(&self) -> i64 {
        match self {
            Self::Server(client) => client.get_connection_info().redis_settings().db(),
            Self::Sentinel(master) => master.db(),
            Self::Cluster(_) => 0,
        }
    }
}

/// A connection that runs commands: multiplexed and self-reconnecting, to one server (or a
/// Sentinel master) or to every master of a cluster. On a cluster, the keys of one command,
/// script or pipeline must share a hash slot.
#[derive(Clone)]
pub(crate) enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Server(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Conn {
    /// Runs a command that names no key on the server holding `key`: on a cluster, the master
    /// serving `key`'s slot (e.g. a `SCAN` for keys with `key`'s hash tag); elsewhere, the one
    /// server.
    pub(crate) async fn query_near<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        match self {
            Self::Server(conn) => Ok(cmd.query_async(conn).await?),
            Self::Cluster(conn) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key.as_bytes(), SlotAddr::Master),
                ));
                let value = conn.route_command(cmd.clone(), route).await?;
                Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
            }
        }
    }
}

/// A Redis connection, opened on first use. Behind Sentinel, a new one is opened when the
/// master moves; on a cluster, the cluster's one connection is shared.
#[derive(Debug)]
pub(crate) struct LazyConnection {
    endpoint: Endpoint,
    timeouts: Timeouts,
    opened: Opened,
}

/// What a [`LazyConnection`] opened, by kind of endpoint.
#[derive(Debug)]
enum Opened {
    /// To one server: opened once.
    Once(OnceCell<ConnectionManager>),
    /// To a Sentinel master: the connection and the master's generation it was opened for.
    Following(tokio::sync::Mutex<Option<(u64, ConnectionManager)>>),
    /// To a cluster: the endpoint holds the connection.
    Cluster,
}

impl LazyConnection {
    /// A connection to `url`, not opened yet, on an endpoint shared by the stores of this
    /// process on the same URL.
    pub(crate) fn new(url: &str) -> Result<Self> {
        Self::on(Endpoint::open(url)?, url)
    }

    /// A connection to `url` on an endpoint of its own (see [`Endpoint::open_private`]).
    pub(crate) fn private(url: &str) -> Result<Self> {
        Self::on(Endpoint::open_private(url)?, url)
    }

    /// A connection to `url` on `endpoint` (shared with whoever else holds it).
    pub(crate) fn on(endpoint: Endpoint, url: &str) -> Result<Self> {
        let opened = match &endpoint {
            Endpoint::Server(_) => Opened::Once(OnceCell::new()),
            Endpoint::Sentinel(_) => Opened::Following(tokio::sync::Mutex::new(None)),
            Endpoint::Cluster(_) => Opened::Cluster,
        };
        Ok(Self {
            endpoint,
            timeouts: Timeouts::of(&timeouts_part(url))?,
            opened,
        })
    }

    /// Where the connection goes.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The shared connection, opening it if needed.
    pub(crate) async fn get(&self) -> Result<Conn> {
        match (&self.endpoint, &self.opened) {
            (Endpoint::Server(client), Opened::Once(once)) => {
                let conn = once
                    .get_or_try_init(|| self.open_manager(client.as_ref().clone()))
                    .await?;
                Ok(Conn::Server(conn.clone()))
            }
            (Endpoint::Sentinel(master), Opened::Following(following)) => {
                let client = master.client().await?;
                let generation = master.generation();
                let mut following = following.lock().await;
                if let Some((opened_for, conn)) = following.as_ref() {
                    if *opened_for == generation {
                        return Ok(Conn::Server(conn.clone()));
                    }
                }
                let conn = self.open_manager(client).await?;
                *following = Some((generation, conn.clone()));
                Ok(Conn::Server(conn))
            }
            (Endpoint::Cluster(nodes), _) => Ok(Conn::Cluster(nodes.connection().await?)),
            _ => unreachable!("a LazyConnection's state is made for its endpoint"),
        }
    }

    /// The connection for a command that had better fail than wait out a failover (the
    /// worker's fetch, and the paused set it reads between fetches): on a cluster, one that
    /// reports a dead master at once
    /// ([`ClusterNodes::quick_connection`](crate::cluster::ClusterNodes::quick_connection));
    /// elsewhere the shared one.
    pub(crate) async fn get_quick(&self) -> Result<Conn> {
        match &self.endpoint {
            Endpoint::Cluster(nodes) => Ok(Conn::Cluster(nodes.quick_connection().await?)),
            _ => self.get().await,
        }
    }

    async fn open_manager(&self, client: redis::Client) -> Result<ConnectionManager> {
        // Few, short retries: a producer should learn fast that Redis is away or refuses it
        // (bad password, untrusted certificate); later calls try again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let address = client.get_connection_info().addr().to_string();
        let mut conn = client.get_connection_manager_with_config(config).await?;
        refuse_cluster_node(&mut conn, &address).await?;
        Ok(conn)
    }
}

/// Fails when the server is a Redis Cluster node. On one, the scripts' keys span hash slots
/// (`CROSSSLOT`) and a send's commands land on different nodes (`MOVED`), so a send could
/// queue its message and still return an error: better to refuse before anything is written.
/// A server that does not let us read `INFO` (an ACL) is taken as it comes.
async fn refuse_cluster_node(conn: &mut ConnectionManager, address: &str) -> Result<()> {
    let info: redis::RedisResult<String> =
        redis::cmd("INFO").arg("cluster").query_async(conn).await;
    match info {
        Ok(info) if info.lines().any(|line| line.trim() == "cluster_enabled:1") => {
            Err(Error::Config(format!(
                "the Redis at {address} is a Redis Cluster node: name the cluster with a \
                 redis+cluster://host:port[,host:port…] URL (taskq's own key layout; Python \
                 Celery cannot share it)"
            )))
        }
        _ => Ok(()),
    }
}

/// The part of `url` whose query holds the `socket_*` timeouts: the last of a Sentinel URL's
/// parts (where its query goes), or the whole URL.
fn timeouts_part(url: &str) -> String {
    if is_sentinel_url(url) {
        url.rsplit(';').next().unwrap_or(url).to_owned()
    } else {
        url.to_owned()
    }
}

/// The scheme of a store URL (`redis`, `rediss`, `unix`, `memory`...); the whole text when it
/// has none, so that the error names what was given.
pub(crate) fn scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(scheme, _)| scheme)
}

/// Whether `scheme` names a Redis server (TCP, TLS or a Unix socket), a Sentinel-monitored
/// one or a Redis Cluster.
pub(crate) fn is_redis_scheme(scheme: &str) -> bool {
    matches!(
        scheme,
        "redis"
            | "rediss"
            | "unix"
            | "redis+unix"
            | "sentinel"
            | "redis+cluster"
            | "rediss+cluster"
    )
}

/// The instance name of a `memory://<name>` URL (`memory://` is the empty name).
pub(crate) fn memory_name(url: &str) -> &str {
    url.split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'))
}

/// The instance called `name` in `registry`, made by `make` the first time it is asked for.
pub(crate) fn named_instance<T>(
    registry: &'static OnceLock<Mutex<HashMap<String, Arc<T>>>>,
    name: &str,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    let mut instances = registry
        .get_or_init(Default::default)
        .lock()
        .expect("memory registry lock");
    instances
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(make()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_timeouts_come_from_the_url_like_redis_py() {
        let default = Timeouts::of("redis://h:6379/0").unwrap();
        assert_eq!(default.response, DEFAULT_SOCKET_TIMEOUT);
        assert_eq!(default.connect, DEFAULT_CONNECT_TIMEOUT);
        let set = Timeouts::of("redis://h/0?socket_timeout=1.5&socket_connect_timeout=2").unwrap();
        assert_eq!(set.response, Duration::from_millis(1500));
        assert_eq!(set.connect, Duration::from_secs(2));
        assert!(Timeouts::of("redis://h/0?socket_timeout=0").is_err());
        assert!(Timeouts::of("redis://h/0?socket_timeout=soon").is_err());
        // redis-rs never sees them.
        assert_eq!(
            split_query("redis://h/0?socket_timeout=1&protocol=resp3").0,
            "redis://h/0?protocol=resp3"
        );
    }

    #[test]
    fn celery_tls_parameters_are_split_off() {
        let (base, ours) = split_query("rediss://h:6380/0?ssl_cert_reqs=CERT_NONE&protocol=resp3");
        assert_eq!(base, "rediss://h:6380/0?protocol=resp3");
        assert_eq!(ours, [("ssl_cert_reqs".to_owned(), "CERT_NONE".to_owned())]);
        assert_eq!(split_query("redis://h/0").0, "redis://h/0");
        let (_, ours) = split_query("rediss://h/0?ssl_ca_certs=%2Fetc%2Fmy%20ca.pem");
        assert_eq!(
            ours,
            [("ssl_ca_certs".to_owned(), "/etc/my ca.pem".to_owned())]
        );
    }

    #[test]
    fn tls_misconfiguration_is_a_clear_error() {
        let missing = open_client("rediss://h/0?ssl_ca_certs=/no/such/ca.pem").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("cannot read TLS file /no/such/ca.pem"),
            "{missing}"
        );
        let half = open_client("rediss://h/0?ssl_certfile=/a.pem").unwrap_err();
        assert!(half.to_string().contains("go together"), "{half}");
        assert!(open_client("rediss://h/0?ssl_cert_reqs=MAYBE").is_err());
        // Off unless the build asked for it: a URL alone cannot turn verification off.
        let insecure = open_client("rediss://h/0?ssl_cert_reqs=CERT_NONE");
        if cfg!(feature = "tls-insecure") {
            assert!(insecure.is_ok());
        } else {
            assert!(insecure.unwrap_err().to_string().contains("tls-insecure"));
        }
    }
}
