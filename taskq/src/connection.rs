//! Shared plumbing for the two kinds of store: a lazily opened Redis connection, and the
//! process-wide registry that makes every `memory://<name>` URL meet the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::{Error, Result};

/// Opens a Redis client for `url`, taking Celery's TLS query parameters for `rediss://` URLs:
/// `ssl_ca_certs` (PEM file of the CA to trust instead of the system roots), `ssl_certfile` and
/// `ssl_keyfile` (client certificate for mutual TLS), and `ssl_cert_reqs` (`CERT_REQUIRED`, the
/// default, or `CERT_NONE` to skip verification). Certificates are verified unless told not to.
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
    let base = if verify {
        base
    } else {
        format!("{base}#insecure")
    };
    let root_cert = param("ssl_ca_certs").map(read_pem).transpose()?;
    let client_tls = match (param("ssl_certfile"), param("ssl_keyfile")) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read_pem(cert)?,
            client_key: read_pem(key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "ssl_certfile and ssl_keyfile go together".to_owned(),
            ))
        }
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(redis::Client::open(base)?);
    }
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    Ok(redis::Client::build_with_tls(base, certs)?)
}

/// Splits off the query string of a URL, keeping other parameters for redis-rs.
fn split_query(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.starts_with("ssl_") {
            ours.push((key.to_owned(), value.to_owned()));
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

/// A multiplexed, self-reconnecting Redis connection, opened on first use.
#[derive(Debug)]
pub(crate) struct LazyConnection {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl LazyConnection {
    /// A connection to `url`, not opened yet.
    pub(crate) fn new(url: &str) -> Result<Self> {
        Ok(Self {
            client: open_client(url)?,
            conn: OnceCell::new(),
        })
    }

    /// The client, for dedicated connections (blocking commands, Pub/Sub).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared connection, opening it if needed.
    pub(crate) async fn get(&self) -> Result<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                // Few, short retries: a producer should learn fast that Redis is away or
                // refuses it (bad password, untrusted certificate); later calls try again.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(30)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                self.client.get_connection_manager_with_config(config).await
            })
            .await?;
        Ok(conn.clone())
    }
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
    fn celery_tls_parameters_are_split_off() {
        let (base, ours) = split_query("rediss://h:6380/0?ssl_cert_reqs=CERT_NONE&protocol=resp3");
        assert_eq!(base, "rediss://h:6380/0?protocol=resp3");
        assert_eq!(ours, [("ssl_cert_reqs".to_owned(), "CERT_NONE".to_owned())]);
        assert_eq!(split_query("redis://h/0").0, "redis://h/0");
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
        assert!(open_client("rediss://h/0?ssl_cert_reqs=CERT_NONE").is_ok());
    }
}
