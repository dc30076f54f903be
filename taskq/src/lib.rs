//! # taskq: Celery for Rust
//!
//! Turn an `async fn` into a task, send calls to it from anywhere (a web handler answers in
//! milliseconds with the task id), run them on workers on any number of machines, and read the
//! result by id. Redis is the broker and the result store, in **Celery's own wire format**
//! (protocol 2 on kombu's Redis layout, results under `celery-task-meta-<id>`), so Rust and
//! Python producers and workers can share one Redis.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Report { user_id: u64, pages: u32 }
//!
//! #[taskq::task(name = "tasks.generate_report", time_limit = 300)]
//! async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
//!     Ok(Report { user_id, pages: 12 })
//! }
//!
//! # async fn demo() -> taskq::Result<()> {
//! // In a web handler: returns at once with the task id.
//! let sent = generate_report.delay(42).await?;
//! println!("started {}", sent.id());
//!
//! // Anywhere, later: typed.
//! let report: Report = sent.get(Duration::from_secs(30)).await?;
//! # Ok(()) }
//!
//! // In the worker binary: runs every registered task.
//! # async fn worker() -> taskq::Result<()> {
//! taskq::Worker::from_env()?.run().await
//! # }
//! ```
//!
//! The modules, one concept each: [`task`](mod@task) (the trait `#[task]` implements), [`registry`]
//! (link-time task registry), [`protocol`] (the wire format), [`broker`] and [`backend`]
//! (Redis and in-memory implementations), [`result`] ([`AsyncResult`]), [`worker`],
//! [`config`], [`keys`] (every Redis key name).

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod backend;
mod backoff;
pub mod broker;
pub mod client;
mod clock;
pub mod config;
mod connection;
mod error;
mod failure;
pub mod keys;
mod options;
pub mod protocol;
pub mod registry;
pub mod request;
pub mod result;
pub mod revoke;
mod scripts;
pub mod state;
pub mod task;
pub mod worker;

pub use client::Client;
pub use config::Config;
pub use error::{Error, Result};
pub use failure::{TaskFailure, TaskReturn, RUST_EXC_MODULE};
pub use options::Options;
pub use protocol::pyjson;
pub use result::AsyncResult;
pub use state::TaskState;
pub use task::{Task, TaskOptions};
pub use worker::{Health, HealthHandle, ShutdownHandle, Worker, WorkerBuilder};

/// Turns an `async fn` into a task. See the [crate documentation](crate) and
/// [`taskq_macros::task`] for the options.
pub use taskq_macros::task;

/// The traits, for `use taskq::prelude::*`.
///
/// ```
/// use taskq::prelude::*;
///
/// fn name_of<T: Task>(_: &T) -> &'static str { T::NAME }
/// ```
pub mod prelude {
    pub use crate::backend::ResultBackend;
    pub use crate::broker::Broker;
    pub use crate::task::Task;
}

/// Not public API: used by the code `#[task]` generates. May change in any release.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use serde;

    pub use crate::failure::TaskReturn;
    pub use crate::registry::TaskEntry;
    pub use crate::task::BoxFuture;

    use crate::{AsyncResult, Client, Options, Result, Task};

    /// Not public API: records whether the task's `retry_if` (`matches`) wants its error
    /// retried. Generic over the task's own `Result`, so that a `retry_if` that does not take
    /// `&E` is reported at the attribute.
    pub fn retry_if<T, E>(ret: &core::result::Result<T, E>, matches: impl FnOnce(&E) -> bool) {
        if let Err(error) = ret {
            crate::request::note_retry_verdict(matches(error));
        }
    }

    /// Not public API: sends a call through the current client.
    pub async fn apply_async<T: Task + Default>(
        args: T::Args,
        options: Options,
    ) -> Result<AsyncResult<T::Output>> {
        Client::current()?.send(&T::default(), args, options).await
    }

    /// Not public API: sends many calls in one batch through the current client.
    pub async fn send_many<T: Task + Default>(
        calls: impl IntoIterator<Item = T::Args>,
        options: Options,
    ) -> Result<Vec<AsyncResult<T::Output>>> {
        Client::current()?
            .send_many(&T::default(), calls, options)
            .await
    }
}

/// Seconds since the Unix epoch on this machine's clock.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's host name.
pub(crate) fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}
