//! An in-process result store with the Redis backend's semantics (`memory://`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ResultBackend;
use crate::connection::named_instance;
use crate::state::{ResultMeta, TaskState};
use crate::Result;

/// The in-memory result store; every `memory://<name>` URL in a process names one instance.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::backend::{memory::MemoryBackend, ResultBackend};
/// use taskq::state::ResultMeta;
///
/// let backend = MemoryBackend::named("doc-example");
/// backend.store(&[ResultMeta::success("id-1", 5)]).await?;
/// assert_eq!(backend.get("id-1").await?.unwrap().result, 5);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryBackend {
    name: String,
    expires: Mutex<Option<Duration>>,
    records: Mutex<HashMap<String, (ResultMeta, Option<Instant>)>>,
    stored: Notify,
}

impl MemoryBackend {
    /// The process-wide store called `name`.
    ///
    /// ```
    /// let a = taskq::backend::memory::MemoryBackend::named("shared");
    /// let b = taskq::backend::memory::MemoryBackend::named("shared");
    /// assert!(std::sync::Arc::ptr_eq(&a, &b));
    /// ```
    pub fn named(name: &str) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<MemoryBackend>>>> = OnceLock::new();
        named_instance(&REGISTRY, name, || MemoryBackend {
            name: name.to_owned(),
            expires: Mutex::new(Some(super::DEFAULT_RESULT_EXPIRES)),
            ..Default::default()
        })
    }

    /// Sets how long records are kept (`None`: forever).
    ///
    /// ```
    /// taskq::backend::memory::MemoryBackend::named("short").set_expires(Some(std::time::Duration::from_secs(60)));
    /// ```
    pub fn set_expires(&self, expires: Option<Duration>) {
        *self.expires.lock().expect("expires lock") = expires;
    }

    fn current(&self, task_id: &str) -> Option<ResultMeta> {
        let mut records = self.records.lock().expect("records lock");
        match records.get(task_id) {
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                records.remove(task_id);
                None
            }
            Some((meta, _)) => Some(meta.clone()),
            None => None,
        }
    }
}

#[async_trait]
impl ResultBackend for MemoryBackend {
    async fn store(&self, records: &[ResultMeta]) -> Result<()> {
        let expiry = self
            .expires
            .lock()
            .expect("expires lock")
            .map(|d| Instant::now() + d);
        {
            let mut stored = self.records.lock().expect("records lock");
            for record in records {
                let keep = matches!(stored.get(&record.task_id), Some((m, _)) if m.status == TaskState::Success);
                if !keep {
                    stored.insert(record.task_id.clone(), (record.clone(), expiry));
                }
            }
        }
        self.stored.notify_waiters();
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<ResultMeta>> {
        Ok(self.current(task_id))
    }

    async fn wait_ready(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>> {
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self.stored.notified();
            if let Some(meta) = self.current(task_id).filter(|m| m.status.is_ready()) {
                return Ok(Some(meta));
            }
            if tokio::time::timeout_at(deadline, stored).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.records.lock().expect("records lock").remove(task_id);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }
}
