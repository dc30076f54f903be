//! Shared plumbing for the two kinds of store: a lazily opened Redis connection, and the
//! process-wide registry that makes every `memory://<name>` URL meet the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::Result;

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
            client: redis::Client::open(url)?,
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
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(30)));
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
