//! # taskq: Celery for Rust
//!
//! Turn an `async fn` into a task, send calls to it from anywhere (a web handler answers in
//! milliseconds with the task id), run them on workers on any number of machines, and read the
//! result by id. Redis is the broker and the result store, in **Celery's own wire format**
//! (protocol 2 on kombu's Redis layout, results under `celery-task-meta-<id>`), so Rust and
//! Python producers and workers can share one Redis.
//!
//! The package is `taskq-rs` on crates.io (`cargo add taskq-rs`); its library is `taskq`, so
//! code says `use taskq::…`.
//!
//! # Getting started
//!
//! ## Tasks
//!
//! A task is an `async fn` under [`#[task]`](macro@task), usually in a module or crate that
//! both the web app and the worker link. Its arguments and result are anything serde
//! serializes; an `Err` is a failure, stored with its message for whoever asks.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct Report { pub user_id: u64, pub pages: u32 }
//!
//! #[taskq::task(name = "tasks.generate_report", time_limit = 300)]
//! pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
//!     Ok(Report { user_id, pages: 12 })
//! }
//! ```
//!
//! The name is what producers and workers agree on, Python ones included. [`macro@task`]
//! lists the options (queue, time limits, retries, ...).
//!
//! ## Two processes: the one that sends, the one that runs
//!
//! As with Celery, the application that *sends* tasks (a web app, a script) and the *worker*
//! that runs them are separate processes sharing one Redis; a web app can also run a worker
//! inside itself ([`Worker::builder`] with its [`Client`]).
//!
//! The sending side calls `.delay(...)`, which returns as soon as the message is in Redis,
//! and reads the result by id whenever it likes:
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize)] pub struct Report { pub user_id: u64 }
//! # #[taskq::task(name = "tasks.generate_report")]
//! # pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> { Ok(Report { user_id }) }
//! use std::time::Duration;
//!
//! # async fn handler() -> taskq::Result<()> {
//! let sent = generate_report.delay(42).await?;        // in a web handler: returns at once
//! let id = sent.id().to_owned();                       // hand the id to the caller
//!
//! // Later, anywhere, from the id alone:
//! let report: Report = taskq::AsyncResult::<Report>::from_id(id)?
//!     .get(Duration::from_secs(30))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The worker is a small binary of its own. It runs every task linked into it until SIGINT or
//! SIGTERM, then lets running tasks finish (up to the shutdown grace) and puts back the rest:
//!
//! ```no_run
//! # mod my_tasks { #[taskq::task(name = "tasks.add")] pub async fn add(x: i64, y: i64) -> i64 { x + y } }
//! #[tokio::main]
//! async fn main() -> taskq::Result<()> {
//!     let _ = &my_tasks::add;      // links the task crate in: see "The linking rule" below
//!     // Celery's worker flags (-Q, -c, -n, -l, -E, --help) over TASKQ_* and .env
//!     taskq::Worker::from_args()?.run().await
//! }
//! ```
//!
//! `my-worker -Q emails,reports -c 50 -n reports@%h` then does what `celery worker` would
//! ([`cli`], the default `cli` feature; [`Worker::from_env`] reads the environment alone).
//! Before it says "worker ready", the worker checks that Redis answers (a wrong password fails
//! the start, naming the address with its password masked; an unreachable Redis is retried
//! loudly, as Celery does) and
//! warns when no task is registered, when a task's queue is not consumed, or when two tasks
//! share a name.
//!
//! Start as many workers as you like, on any machines pointed at the same Redis: they share
//! the work. Tasks of Python Celery producers reach Rust workers by name, and Rust producers
//! can call Python tasks by name ([`Client::send_by_name`]).
//!
//! ## The linking rule
//!
//! `#[task]` registers each task when the program starts (through the `inventory` crate), so
//! a worker runs exactly the tasks *linked into its binary*. Rust links a dependency only
//! when the binary uses something from it: a worker whose `main` names nothing from the crate
//! that defines the tasks has none of them, and answers their messages with `NotRegistered`.
//! Name one item of each task crate or module in the worker, as above. The worker prints its
//! `[tasks]` in its start-up banner, as Celery does: check the list there.
//!
//! ## Settings
//!
//! [`Config::from_env`] (and so [`Client::from_env`] and [`Worker::from_env`]) reads `TASKQ_*`
//! variables, Celery's `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` too, and a `.env` file
//! in the working directory; variables already set win. The ones most set:
//!
//! | variable | default | |
//! |---|---|---|
//! | `TASKQ_BROKER_URL` | `redis://127.0.0.1:6379/0` | `redis://`, `rediss://` (TLS) or `memory://` (in-process) |
//! | `TASKQ_RESULT_BACKEND` | the broker URL | where results are stored |
//! | `TASKQ_QUEUES` | `celery` | the queues a worker consumes, comma-separated |
//! | `TASKQ_CONCURRENCY` | see [`WorkerBuilder::concurrency`] | tasks a worker runs at once |
//! | `TASKQ_SHUTDOWN_GRACE` | `30` | seconds running tasks get to finish on SIGTERM |
//!
//! [`Config`] documents every field; code can set them too ([`Client::from_config`],
//! [`Worker::builder`]).
//!
//! ## Logging
//!
//! taskq logs through [`tracing`](https://docs.rs/tracing): each task received, succeeded,
//! retried or failed with its run time, connection trouble and recovery. A worker whose
//! application installed no subscriber installs one when it starts (stderr, INFO, `RUST_LOG`
//! or `--loglevel`; the default `logging` feature, [`WorkerBuilder::default_logging`]); an
//! application that installs its own before keeps it.
//!
//! ## The development loop
//!
//! `taskq dev -- cargo run --bin my-worker` (the `taskq` command line, crate `taskq-cli`)
//! rebuilds and restarts the worker whenever a source file changes, as `watchmedo
//! auto-restart` does for Celery: the old worker gets a 1 s grace, and the tasks it was running
//! go back to their queue for the new one.
//!
//! ## In tests, and without Redis
//!
//! `task.call(args)` runs a task's body inline, with no broker. The `memory://` broker and
//! backend run the whole thing in one process: a client and a worker built on the same
//! [`Client`] exchange tasks with no Redis at all.
//!
//! # From Celery
//!
//! | Celery | taskq |
//! |---|---|
//! | `@app.task(name=..., queue=..., time_limit=..., max_retries=...)` | `#[taskq::task(name = ..., queue = ..., time_limit = ..., max_retries = ...)]` |
//! | `add.delay(2, 3)` | `add.delay(2, 3).await?` |
//! | `add.apply_async((2, 3), countdown=10, queue="q")` | `add.apply_async((2, 3), Options::new().countdown(..).queue("q"))` |
//! | `app.send_task("proj.add", args)` | [`Client::send_by_name`] |
//! | `AsyncResult(id).get(timeout=30)` | `AsyncResult::<T>::from_id(id)?.get(Duration::from_secs(30))` |
//! | `celery -A proj worker -Q a,b -c 8` | a worker binary with `TASKQ_QUEUES=a,b TASKQ_CONCURRENCY=8` |
//! | `self.request.id`, `self.retry(countdown=30)` | [`request::current`], [`request::retry_in`] |
//! | `app.control.revoke(id, terminate=True)` | [`Client::revoke`], [`Client::terminate`] |
//! | `app.control.ping()`, `app.control.inspect().active()` | [`Client::control`] ([`control::Control`]) |
//! | `celery inspect`, `celery events`, Flower | work against taskq workers as they are |
//!
//! # The modules
//!
//! One concept each: [`task`](mod@task) (the trait `#[task]` implements), [`registry`]
//! (link-time task registry), [`protocol`] (the wire format), [`broker`] and [`backend`]
//! (Redis and in-memory implementations), [`result`] ([`AsyncResult`]), [`worker`],
//! [`config`], [`keys`] (every Redis key name), [`control`] (remote control: ping, inspect,
//! revoke, events on and off).

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod backend;
mod backoff;
pub mod beat;
pub mod broker;
mod builtins;
pub mod canvas;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
mod clock;
mod cluster;
pub mod config;
mod connection;
pub mod control;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
mod failure;
pub mod keys;
#[cfg(feature = "metrics")]
pub mod metrics;
mod options;
#[cfg(feature = "opentelemetry")]
mod otel;
pub mod protocol;
pub mod rate_limit;
pub mod registry;
pub mod request;
pub mod result;
pub mod revoke;
mod scripts;
mod sentinel;
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

#[doc(inline)]
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

    /// Not public API: the signature of a call of `T` (`.s()`, `.si()`).
    pub fn signature<T: Task>(args: T::Args, immutable: bool) -> crate::canvas::Sig<T::Output> {
        crate::canvas::Sig::of_task::<T>(args, immutable)
    }

    /// Not public API: the signature of a call of `T` lacking its first argument (`.partial()`).
    pub fn partial<T: Task, In>(
        rest: impl serde::Serialize,
    ) -> crate::canvas::Partial<In, T::Output> {
        crate::canvas::Partial::of_task::<T>(rest)
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
