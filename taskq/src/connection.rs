//! Shared plumbing for the two kinds of store: a lazily opened Redis connection, and the
//! process-wide registry that makes every `memory://<name>` URL meet the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

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
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let verify = match param("ssl_cert_reqs")
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
    let root_cert = param("ssl_ca_certs").map(read_pem).transpose()?;
    let client_cert = match (param("ssl_certfile"), param("ssl_keyfile")) {
        (Some(cert), Some(key)) => Some((read_pem(cert)?, read_pem(key)?)),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "ssl_certfile and ssl_keyfile go together".to_owned(),
            ))
        }
    };
    if root_cert.is_none() && client_cert.is_none() {
        return Ok(redis::Client::open(base)?);
    }
    with_certificates(base, root_cert, client_cert)
}

/// A client for `base` that trusts `root_cert` and shows `client_cert` (certificate, key),
/// all PEM.
#[cfg(feature = "tls")]
fn with_certificates(
    base: String,
    root_cert: Option<Vec<u8>>,
    client_cert: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<redis::Client> {
    let client_tls = client_cert.map(|(client_cert, client_key)| redis::ClientTlsConfig {
        client_cert,
        client_key,
    });
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    Ok(redis::Client::build_with_tls(base, certs)?)
}

/// Without TLS support, certificate parameters are a configuration error.
#[cfg(not(feature = "tls"))]
fn with_certificates(
    _base: String,
    _root_cert: Option<Vec<u8>>,
    _client_cert: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<redis::Client> {
    Err(Error::Config(
        "ssl_ca_certs, ssl_certfile and ssl_keyfile need taskq's `tls` feature (on by default)"
            .to_owned(),
    ))
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

/// Where a store's Redis is: one server, or the master of a Sentinel-monitored set, which
/// may move (see [`crate::sentinel`]).
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Server(Box<redis::Client>),
    Sentinel(Arc<SentinelMaster>),
}

impl Endpoint {
    pub(crate) fn open(url: &str) -> Result<Self> {
        if is_sentinel_url(url) {
            Ok(Self::Sentinel(SentinelMaster::new(url)?))
        } else {
            Ok(Self::Server(Box::new(open_client(url)?)))
        }
    }

    /// A client for the server, or for the master now: for dedicated connections (blocking
    /// commands, Pub/Sub), opened anew after a failure.
    pub(crate) async fn client(&self) -> Result<redis::Client> {
        match self {
            Self::Server(client) => Ok(client.as_ref().clone()),
            Self::Sentinel(master) => master.client().await,
        }
    }

    /// Changes each time a Sentinel master moves (always 0 for one server): connections
    /// opened for an older generation go to a replaced master.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Server(_) => 0,
            Self::Sentinel(master) => master.generation(),
        }
    }

    /// The database number.
    pub(crate) fn db(&self) -> i64 {
        match self {
            Self::Server(client) => client.get_connection_info().redis_settings().db(),
            Self::Sentinel(master) => master.db(),
        }
    }
}

/// A multiplexed, self-reconnecting Redis connection, opened on first use. Behind Sentinel,
/// a new one is opened when the master moves.
#[derive(Debug)]
pub(crate) struct LazyConnection {
    endpoint: Endpoint,
    timeouts: Timeouts,
    conn: OnceCell<ConnectionManager>,
    /// Behind Sentinel: the connection, and the master's generation it was opened for.
    moving: tokio::sync::Mutex<Option<(u64, ConnectionManager)>>,
}

impl LazyConnection {
    /// A connection to `url`, not opened yet.
    pub(crate) fn new(url: &str) -> Result<Self> {
        Ok(Self {
            endpoint: Endpoint::open(url)?,
            timeouts: Timeouts::of(&timeouts_part(url))?,
            conn: OnceCell::new(),
            moving: tokio::sync::Mutex::new(None),
        })
    }

    /// Where the connection goes.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The shared connection, opening it if needed.
    pub(crate) async fn get(&self) -> Result<ConnectionManager> {
        match &self.endpoint {
            Endpoint::Server(client) => {
                let conn = self
                    .conn
                    .get_or_try_init(|| self.open_manager(client.as_ref().clone()))
                    .await?;
                Ok(conn.clone())
            }
            Endpoint::Sentinel(master) => {
                let client = master.client().await?;
                let generation = master.generation();
                let mut moving = self.moving.lock().await;
                if let Some((opened_for, conn)) = moving.as_ref() {
                    if *opened_for == generation {
                        return Ok(conn.clone());
                    }
                }
                let conn = self.open_manager(client).await?;
                *moving = Some((generation, conn.clone()));
                Ok(conn)
            }
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
                "the Redis at {address} is a Redis Cluster node: taskq runs on a standalone \
                 Redis or a Sentinel-monitored one (sentinel://), not on a cluster yet"
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

/// Whether `scheme` names a Redis server (TCP, TLS or a Unix socket) or a Sentinel-monitored
/// one.
pub(crate) fn is_redis_scheme(scheme: &str) -> bool {
    matches!(
        scheme,
        "redis" | "rediss" | "unix" | "redis+unix" | "sentinel"
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
