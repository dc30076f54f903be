//! The `#[task]` attribute of [taskq](https://docs.rs/taskq), Celery for Rust.
//!
//! Use it through the runtime crate, as `#[taskq::task]`; this crate only holds the macro.
//!
//! # Usage
//!
//! Put `#[taskq::task]` on an `async fn`:
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! pub struct Report {
//!     pub lines: Vec<String>,
//! }
//!
//! /// Builds the monthly report of one user.
//! #[taskq::task(name = "tasks.generate_report", queue = "reports", time_limit = 30)]
//! pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
//!     Ok(Report { lines: vec![format!("report of {user_id}")] })
//! }
//!
//! # async fn example() -> taskq::Result<()> {
//! // Send it to a worker, and wait for its result:
//! let pending = generate_report.delay(42).await?;
//! // ...or run the body inline, e.g. in a unit test:
//! let report = generate_report.call(42).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The function's name now names a *task value*: a unit struct (here `generate_report`) with
//!
//! - `call(&self, user_id: u64) -> anyhow::Result<Report>`: the body as written, run inline;
//! - `delay(&self, user_id: u64)`: sends the call to a worker and returns at once with a
//!   `taskq::AsyncResult<Report>`, the handle to its result;
//! - `apply_async(&self, args, options)`: the same with per-call `taskq::Options`, the
//!   arguments given as a tuple (`(42,)`);
//! - `delay_many(&self, calls)`: sends many calls, each a tuple of arguments, in one pipelined
//!   round trip to the broker, and returns their handles in order
//!   (`generate_report.delay_many((1..=100).map(|id| (id,)))`);
//!
//! and an implementation of `taskq::Task`, which records the name, the argument names and the
//! options, and lets a worker decode a call and run it. The task registers itself when the
//! program starts: there is no list of tasks to keep.
//!
//! The function's visibility, doc comments and `#[deprecated]` go to the struct, `#[cfg]` to
//! everything generated, and its other attributes (lint levels, `#[tracing::instrument]`, ...)
//! to `call`, which keeps the body exactly as written. Since the name now stands for the
//! struct, the function is called inline as `generate_report.call(42)`, not
//! `generate_report(42)`.
//!
//! # What a task may look like
//!
//! - It is an `async fn` without generics, `self`, `unsafe`, `const` or `extern`.
//! - Each argument is written `name: Type` (or `mut name: Type`): callers, Python ones
//!   included, may pass arguments by keyword. Each type is owned, with no references, borrowed
//!   lifetimes or `impl Trait`, and is `Serialize + DeserializeOwned + Send + 'static`.
//! - It returns
//!   - `Result<T, E>`, where `E: Display + Debug + Send + 'static` (`anyhow::Error` is fine):
//!     `Ok(T)` is the task's result and `Err(e)` a failure. Any type whose last path segment is
//!     `Result` counts, so `anyhow::Result<T>` and `std::io::Result<T>` work; an alias named
//!     otherwise is taken as a plain type;
//!   - a plain `T`: the task's result, always a success;
//!   - nothing: the result is `()`.
//!
//!   `T` is owned, nameable (no `impl Trait`) and `Serialize + DeserializeOwned + Send + 'static`.
//! - Its future is `Send`: workers run tasks on a multi-threaded runtime, so the body must not
//!   hold an `Rc`, a `RefCell` borrow or a `std` mutex guard across an `.await`.
//!
//! Every broken rule is reported, each at the offending tokens; the function is then left as
//! written, so that the rest of the crate still type-checks against it. Whether the types are
//! serializable is left to rustc, whose errors point at the argument or return type at fault.
//!
//! # Options
//!
//! All are optional: `#[taskq::task(name = "...", queue = "...", ...)]`.
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `name = "tasks.add"` | the name producers and workers (Rust or Python) agree on | `"<module path>::<fn name>"` |
//! | `queue = "reports"` | the queue calls go to when they name none | the client's default queue |
//! | `ignore_result` or `ignore_result = true` | store no result | `false` |
//! | `time_limit = 30` or `time_limit = 2.5` | hard time limit in seconds; a run still going is cancelled and fails with `TimeLimitExceeded` | none |
//! | `soft_time_limit = 20` or `soft_time_limit = 2.5` | soft time limit in seconds, below `time_limit` when both are given: the task is told through `taskq::request::soft_time_limit()`; a run that never asked for it is stopped and fails with `SoftTimeLimitExceeded`, one that asked may wind down until the hard limit | none |
//! | `max_retries = 3` | how many times a run that returned `Err`, panicked or was stopped at its soft time limit runs again (hard time limits, revokes and bad arguments are not retried) | `0` |
//! | `retry_backoff = 1` or `retry_backoff = 0.5` | the first retry's delay in seconds; it doubles for each next retry (up to 600 s), with jitter between half and all of it | `1` |
//! | `retry_if = is_transient` or `retry_if = \|e\| e.is_timeout()` | which errors are retried (Celery's `autoretry_for`): a function or closure of `&E` returning `bool`. Only errors it matches are retried; panics are not. Needs `max_retries` | every `Err` and panic |
//! | `crate = "my_app::taskq"` | where the runtime crate is, when it is renamed or re-exported | `::taskq` |
//!
//! Per-call `taskq::Options` (`.queue(..)`, `.time_limit(..)`, `.soft_time_limit(..)`,
//! `.ignore_result(..)`) override
//! them for one call. A mistaken option is reported
//! at the option (with a suggestion for a misspelt key) and left out; the task is still
//! generated.
//!
//! # Debugging
//!
//! Set `TASKQ_MACROS_DEBUG=1` while compiling to print every expansion to stderr, or
//! `TASKQ_MACROS_DEBUG=<fn name>` for one task's only.

mod attr;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// Turns an `async fn` into a task that can be sent to workers: see the [crate docs](crate).
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::task(args.into(), item.into()).into()
}
