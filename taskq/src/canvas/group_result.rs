//! [`GroupResult`]: the results of a group's members, read together, saved and restored in
//! Celery's format (`celery-taskset-meta-<gid>`), so Python's `GroupResult.restore` reads a
//! group taskq saved, and the other way round.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Sent;
use crate::{AsyncResult, Client, Error, Result};

/// The results of a group, in the order of its members; each a `T`.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.square")]
/// async fn square(x: u64) -> u64 { x * x }
///
/// # let mut config = taskq::Config::default();
/// # config.broker_url = "memory://group-result-doc".into();
/// # config.result_backend = "memory://group-result-doc".into();
/// # let client = taskq::Client::from_config(config)?;
/// let squares = taskq::canvas::group((1..=3).map(|x| square.s(x))).apply_async(&client).await?;
/// squares.save().await?; // so that another process can restore it by id
/// let again = taskq::canvas::GroupResult::<u64>::restore(&client, squares.id()).await?.unwrap();
/// assert_eq!(again.ids(), squares.ids());
/// # Ok(()) }
/// ```
pub struct GroupResult<T> {
    client: Client,
    id: String,
    ids: Vec<String>,
    _out: PhantomData<fn() -> T>,
}

impl<T> Clone for GroupResult<T> {
    fn clone(&self) -> Self {
        Self::new(self.client.clone(), self.id.clone(), self.ids.clone())
    }
}

impl<T> std::fmt::Debug for GroupResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupResult")
            .field("id", &self.id)
            .field("members", &self.ids.len())
            .finish()
    }
}

impl<T> GroupResult<T> {
    pub(crate) fn new(client: Client, id: String, ids: Vec<String>) -> Self {
        Self {
            client,
            id,
            ids,
            _out: PhantomData,
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The members' task ids, in order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has no members.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The members' results, in order.
    pub fn results(&self) -> Vec<AsyncResult<T>> {
        self.ids
            .iter()
            .map(|id| self.client.result(id.clone()))
            .collect()
    }

    /// How many members have finished (succeeded, failed or been revoked).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) when the result store cannot be reached.
    pub async fn completed_count(&self) -> Result<usize> {
        // Asked side by side: on Redis the reads share one multiplexed connection, so a
        // group of a thousand costs about one round trip, not a thousand.
        let results = self.results();
        let ready =
            futures_util::future::try_join_all(results.iter().map(AsyncResult::ready)).await?;
        Ok(ready.into_iter().filter(|r| *r).count())
    }

    /// Whether every member has finished.
    ///
    /// # Errors
    ///
    /// As [`completed_count`](Self::completed_count).
    pub async fn ready(&self) -> Result<bool> {
        Ok(self.completed_count().await? == self.len())
    }

    /// Saves the group in the result store, in Celery's format (`GroupResult.save()`).
    ///
    /// # Errors
    ///
    /// As [`completed_count`](Self::completed_count).
    pub async fn save(&self) -> Result<()> {
        let tuple = self.sent().as_tuple();
        self.client.backend().save_group(&self.id, &tuple).await
    }

    /// A group saved by [`save`](Self::save), or by Python's `GroupResult.save()`; `None` when
    /// none is saved under `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when what is saved is not a group's result tuple, and as
    /// [`completed_count`](Self::completed_count).
    pub async fn restore(client: &Client, id: &str) -> Result<Option<Self>> {
        let Some(tuple) = client.backend().restore_group(id).await? else {
            return Ok(None);
        };
        // [[gid, parent], [[[id, parent], null], ...]]
        let malformed = || Error::Malformed {
            what: "group result",
            reason: format!("not a group's result tuple: {}", tuple.as_str()),
        };
        let (_, members): (serde_json::Value, Vec<serde_json::Value>) =
            tuple.parse().map_err(|_| malformed())?;
        let ids = members
            .iter()
            .map(|m| m[0][0].as_str().map(str::to_owned).ok_or_else(malformed))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self::new(client.clone(), id.to_owned(), ids)))
    }

    /// Deletes the saved group and every member's result.
    ///
    /// # Errors
    ///
    /// As [`completed_count`](Self::completed_count).
    pub async fn forget(&self) -> Result<()> {
        let results = self.results();
        futures_util::future::try_join_all(results.iter().map(AsyncResult::forget)).await?;
        self.client.backend().forget_group(&self.id).await
    }

    fn sent(&self) -> Sent {
        Sent::Group {
            id: self.id.clone(),
            members: self.ids.iter().cloned().map(Sent::Task).collect(),
        }
    }
}

impl<T: DeserializeOwned> GroupResult<T> {
    /// Waits for every member and returns their values in order, like Python's
    /// `GroupResult.get()`; `timeout` bounds the whole wait.
    ///
    /// # Errors
    ///
    /// The first member's failure ([`Error::TaskFailed`]) in order, or [`Error::Timeout`].
    pub async fn get(&self, timeout: Duration) -> Result<Vec<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut values = Vec::with_capacity(self.len());
        for result in self.results() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            values.push(result.get(left).await?);
        }
        Ok(values)
    }
}
