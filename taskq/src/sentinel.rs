//! Redis Sentinel: finding the master of a monitored set, and following it when the sentinels
//! fail over to a replica.
//!
//! The URL is Celery's (kombu's `sentinel` transport): one `sentinel://` part per sentinel,
//! separated by `;`, and the master's name as `master_name` (kombu reads it from the transport
//! options; taskq from the URL's query, on any part):
//!
//! ```text
//! sentinel://:password@s1:26379/0;sentinel://s2:26379;sentinel://s3:26379?master_name=mymaster
//! ```
//!
//! The password, user name and database of the URL are the master's, as in kombu; a
//! `sentinel_password` parameter authenticates to the sentinels themselves. `ssl_*` parameters
//! (see [`crate::Config`]'s TLS notes) make the connections to the masters TLS. The
//! `socket_*` timeouts apply to the master connections.
//!
//! Every process asks the sentinels where the master is when it first connects, then once a
//! second ([`WATCH_EVERY`]): when the answer changes, the next command goes to the new master,
//! and the move is logged. Commands sent in between, to a master that died, fail and are
//! retried by their callers as any Redis error is; writes the old master accepted but had not
//! yet copied to its replicas are lost with it (Redis replicates asynchronously; see
//! `RELIABILITY.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use tokio::sync::OnceCell;

use crate::{Error, Result};

/// How often the sentinels are asked where the master is.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How long a sentinel may take to connect or answer before the next one is asked.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(1000);

/// Whether `url` is a Sentinel URL.
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    url.starts_with("sentinel://")
}

/// A parsed Sentinel URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SentinelUrl {
    /// `host:port` of each sentinel, in the order given.
    pub(crate) sentinels: Vec<String>,
    pub(crate) master_name: String,
    /// The master's user name, password and database.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) sentinel_password: Option<String>,
    /// The query parameters for the master connections (`ssl_*`, `socket_*`).
    pub(crate) master_params: Vec<(String, String)>,
}

impl SentinelUrl {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("bad Sentinel URL: {why}"));
        let mut parsed = SentinelUrl {
            sentinels: Vec::new(),
            master_name: String::new(),
            username: None,
            password: None,
            db: 0,
            sentinel_password: None,
            master_params: Vec::new(),
        };
        for part in url.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let part = url::Url::parse(part).map_err(|e| bad(&format!("{part:?}: {e}")))?;
            if part.scheme() != "sentinel" {
                return Err(bad("every part must start with sentinel://"));
            }
            let host = part.host_str().ok_or_else(|| bad("a part has no host"))?;
            let port = part.port().unwrap_or(26379);
            parsed.sentinels.push(format!("{host}:{port}"));
            if !part.username().is_empty() {
                parsed.username = Some(decode(part.username()));
            }
            if let Some(password) = part.password() {
                parsed.password = Some(decode(password));
            }
            let path = part.path().trim_matches('/');
            if !path.is_empty() {
                parsed.db = path
                    .parse()
                    .map_err(|_| bad(&format!("database {path:?} is not a number")))?;
            }
            for (key, value) in part.query_pairs() {
                match key.as_ref() {
                    "master_name" => parsed.master_name = value.into_owned(),
                    "sentinel_password" => parsed.sentinel_password = Some(value.into_owned()),
                    _ => parsed
                        .master_params
                        .push((key.into_owned(), value.into_owned())),
                }
            }
        }
        if parsed.sentinels.is_empty() {
            return Err(bad("no sentinel given"));
        }
        if parsed.master_name.is_empty() {
            return Err(bad(
                "the master's name is missing: add ?master_name=<name> (Celery's \
                 broker_transport_options master_name)",
            ));
        }
        Ok(parsed)
    }

    /// The URL of the master at `host:port`, for [`crate::connection::open_client`].
    pub(crate) fn master_url(&self, host: &str, port: u16) -> String {
        let tls = self
            .master_params
            .iter()
            .any(|(k, _)| k.starts_with("ssl_"));
        let scheme = if tls { "rediss" } else { "redis" };
        let auth = match (&self.username, &self.password) {
            (Some(user), Some(password)) => format!("{}:{}@", encode(user), encode(password)),
            (None, Some(password)) => format!(":{}@", encode(password)),
            (Some(user), None) => format!("{}@", encode(user)),
            (None, None) => String::new(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let mut url = format!("{scheme}://{auth}{host}:{port}/{}", self.db);
        if !self.master_params.is_empty() {
            let query: Vec<String> = self
                .master_params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url = format!("{url}?{}", query.join("&"));
        }
        url
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The master of a Sentinel-monitored set, as the sentinels last said, kept current by a
/// background watch started on first use.
#[derive(Debug)]
pub(crate) struct SentinelMaster {
    url: SentinelUrl,
    sentinels: Vec<redis::Client>,
    /// The master now: its address and a client for it.
    current: Mutex<Option<Master>>,
    /// Counts the master's moves: a connection made for an older one is replaced.
    generation: AtomicU64,
    watching: OnceCell<()>,
}

#[derive(Debug, Clone)]
struct Master {
    address: String,
    client: redis::Client,
}

impl SentinelMaster {
    pub(crate) fn new(url: &str) -> Result<Arc<Self>> {
        let url = SentinelUrl::parse(url)?;
        let sentinels = url
            .sentinels
            .iter()
            .map(|address| {
                let auth = url
                    .sentinel_password
                    .as_ref()
                    .map(|p| format!(":{}@", encode(p)))
                    .unwrap_or_default();
                redis::Client::open(format!("redis://{auth}{address}/")).map_err(Error::from)
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(Self {
            url,
            sentinels,
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            watching: OnceCell::new(),
        }))
    }

    /// The master's database number.
    pub(crate) fn db(&self) -> i64 {
        self.url.db
    }

    /// How many times the master moved since this process first found it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A client for the master now, asking the sentinels first if it is not known yet;
    /// starts the watch on first use.
    pub(crate) async fn client(self: &Arc<Self>) -> Result<redis::Client> {
        self.watching
            .get_or_init(|| async {
                tokio::spawn(watch(Arc::downgrade(self)));
            })
            .await;
        if let Some(master) = self.current() {
            return Ok(master.client);
        }
        self.refresh().await?;
        self.current()
            .map(|m| m.client)
            .ok_or_else(|| Error::Config("the sentinels named no master".into()))
    }

    fn current(&self) -> Option<Master> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the sentinels where the master is, and moves to it if it moved.
    async fn refresh(&self) -> Result<()> {
        let (host, port) = self.ask_sentinels().await?;
        let address = format!("{host}:{port}");
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let name = &self.url.master_name;
        match current.as_ref() {
            Some(master) if master.address == address => return Ok(()),
            Some(master) => tracing::warn!(
                master = %name, from = %master.address, to = %address,
                "Sentinel: the master moved (failover); sending to the new one"
            ),
            None => tracing::info!(master = %name, at = %address, "Sentinel: found the master"),
        }
        let client = crate::connection::open_client(&self.url.master_url(&host, port))?;
        *current = Some(Master { address, client });
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The master's address according to the first sentinel that answers.
    async fn ask_sentinels(&self) -> Result<(String, u16)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SENTINEL_TIMEOUT))
            .set_response_timeout(Some(SENTINEL_TIMEOUT));
        let mut last_error = None;
        for (sentinel, address) in self.sentinels.iter().zip(&self.url.sentinels) {
            let answer: Result<Option<(String, u16)>> = async {
                let mut conn = sentinel
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.url.master_name)
                    .query_async(&mut conn)
                    .await?)
            }
            .await;
            match answer {
                Ok(Some(master)) => return Ok(master),
                Ok(None) => {
                    last_error = Some(format!(
                        "sentinel {address} monitors no master named {:?}",
                        self.url.master_name
                    ))
                }
                Err(e) => last_error = Some(format!("sentinel {address}: {e}")),
            }
        }
        Err(Error::Config(format!(
            "no sentinel could name the master {:?}: {}",
            self.url.master_name,
            last_error.unwrap_or_default()
        )))
    }
}

/// Asks the sentinels every [`WATCH_EVERY`] while the master is in use.
async fn watch(master: Weak<SentinelMaster>) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let Some(master) = master.upgrade() else {
            return;
        };
        match master.refresh().await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                tracing::warn!(error = %e, "Sentinel: cannot ask where the master is");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_urls_name_every_sentinel_and_the_master() {
        let url = SentinelUrl::parse(
            "sentinel://:p%40ss@s1:26379/2;sentinel://s2:26380;sentinel://s3?master_name=mymaster",
        )
        .unwrap();
        assert_eq!(url.sentinels, ["s1:26379", "s2:26380", "s3:26379"]);
        assert_eq!(url.master_name, "mymaster");
        assert_eq!((url.password.as_deref(), url.db), (Some("p@ss"), 2));
        assert_eq!(
            url.master_url("10.0.0.5", 6380),
            "redis://:p%40ss@10.0.0.5:6380/2"
        );
    }

    #[test]
    fn tls_and_timeouts_go_to_the_master() {
        let url = SentinelUrl::parse(
            "sentinel://s1:26379?master_name=m&ssl_cert_reqs=CERT_REQUIRED&socket_timeout=3&sentinel_password=sp",
        )
        .unwrap();
        assert_eq!(url.sentinel_password.as_deref(), Some("sp"));
        assert_eq!(
            url.master_url("h", 1),
            "rediss://h:1/0?ssl_cert_reqs=CERT_REQUIRED&socket_timeout=3"
        );
    }

    #[test]
    fn a_url_without_a_master_name_or_sentinels_is_refused() {
        let err = SentinelUrl::parse("sentinel://s1:26379").unwrap_err();
        assert!(err.to_string().contains("master_name"), "{err}");
        assert!(SentinelUrl::parse("sentinel://s1;redis://h?master_name=m").is_err());
    }
}
