//! An in-process result store with the Redis backend's semantics (`memory://`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::chord::claim_token as chord_claim_token;
use super::{ChordPart, ChordResult, ChordVote, ResultBackend};
use crate::connection::named_instance;
use crate::protocol::RawJson;
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
    groups: Mutex<Groups>,
}

/// Saved groups and chord counts. They live as long as the process (a chord's count goes
/// when it finishes); a claim needs no expiry, since a worker that dies takes the whole
/// in-process store with it.
#[derive(Debug, Default)]
struct Groups {
    saved: HashMap<String, RawJson>,
    sizes: HashMap<String, usize>,
    /// Per chord: `(score, member)`, kept in Redis's zset order.
    results: HashMap<String, Vec<(f64, String)>>,
    /// Per chord: the parts counted, by [`ChordPart::counted_as`].
    counted: HashMap<String, HashSet<String>>,
    /// Per chord: the claim token, or `done`.
    claims: HashMap<String, String>,
}

const DONE: &str = "done";

impl Groups {
    fn count(&mut self, part: &ChordPart) -> ChordVote {
        let gid = &part.group_id;
        if self.claims.get(gid).map(String::as_str) == Some(DONE) {
            return ChordVote::Finished;
        }
        if self
            .counted
            .entry(gid.clone())
            .or_default()
            .insert(part.counted_as())
        {
            let score = part.group_index.map_or(f64::INFINITY, f64::from);
            let results = self.results.entry(gid.clone()).or_default();
            results.push((score, part.member()));
            results.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        }
        let counted = self.results.get(gid).map_or(0, Vec::len);
        let size = self.sizes.get(gid).copied().unwrap_or(0);
        if size == 0 || counted != size || self.claims.contains_key(gid) {
            return ChordVote::Pending;
        }
        let claim = chord_claim_token();
        self.claims.insert(gid.clone(), claim.clone());
        ChordVote::Complete { claim }
    }

    fn finish(&mut self, group_id: &str, claim: &str) {
        if self.claims.get(group_id).map(String::as_str) == Some(claim) {
            self.sizes.remove(group_id);
            self.results.remove(group_id);
            self.counted.remove(group_id);
            self.claims.insert(group_id.to_owned(), DONE.to_owned());
        }
    }
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

    fn groups(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().expect("groups lock")
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

    async fn save_group(&self, group_id: &str, tuple: &RawJson) -> Result<()> {
        self.groups()
            .saved
            .insert(group_id.to_owned(), tuple.clone());
        Ok(())
    }

    async fn restore_group(&self, group_id: &str) -> Result<Option<RawJson>> {
        Ok(self.groups().saved.get(group_id).cloned())
    }

    async fn forget_group(&self, group_id: &str) -> Result<()> {
        self.groups().saved.remove(group_id);
        Ok(())
    }

    async fn set_chord_size(&self, group_id: &str, size: usize) -> Result<()> {
        let mut groups = self.groups();
        groups.claims.remove(group_id);
        groups.sizes.insert(group_id.to_owned(), size);
        Ok(())
    }

    async fn chord_part_return(&self, part: &ChordPart) -> Result<ChordVote> {
        Ok(self.groups().count(part))
    }

    async fn chord_results(&self, group_id: &str) -> Result<Vec<ChordResult>> {
        let groups = self.groups();
        let members = groups.results.get(group_id).into_iter().flatten();
        members.map(|(_, m)| ChordResult::parse(m)).collect()
    }

    async fn finish_chord(&self, group_id: &str, claim: &str) -> Result<()> {
        self.groups().finish(group_id, claim);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }
}
