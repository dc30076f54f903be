//! The types the three stages of the macro share, so that each stage needs only this module:
//! `attr` parses the options into [`TaskArgs`], `validate` checks them with the function and
//! turns both into a [`Validated`] task, and `expand` generates code from that.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Error, Ident, ItemFn, LitBool, LitInt, LitStr, Path, Type};

/// Errors collected on the way, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Adds the error of `result`, if any, and returns its value otherwise.
    pub(crate) fn keep<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Adds every error of `other`.
    pub(crate) fn extend(&mut self, other: Errors) {
        if let Some(error) = other.0 {
            self.push(error);
        }
    }

    /// Whether no error was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// `Ok` if nothing was added, else every error, combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The attribute's options; `None` for an option that was not given (or was given wrongly).
#[derive(Default)]
pub(crate) struct TaskArgs {
    /// `name = "..."`: the registered task name.
    pub name: Option<LitStr>,
    /// `queue = "..."`: the default queue.
    pub queue: Option<LitStr>,
    /// `ignore_result` or `ignore_result = true|false`.
    pub ignore_result: Option<LitBool>,
    /// `time_limit = 30` or `time_limit = 2.5`, in seconds.
    pub time_limit: Option<Seconds>,
    /// `soft_time_limit = 20`: when the task is told to wind down, in seconds; below
    /// `time_limit` when both are given.
    pub soft_time_limit: Option<Seconds>,
    /// `max_retries = 3`: how many times a failed run is retried.
    pub max_retries: Option<LitInt>,
    /// `retry_backoff = 2` or `retry_backoff = 0.5`: the first retry delay, in seconds.
    pub retry_backoff: Option<Seconds>,
    /// `retry_if = is_transient` (a path or a closure taking `&E`): which errors are retried.
    pub retry_if: Option<RetryIf>,
    /// `rate_limit = "10/s"`: the fleet-wide rate limit.
    pub rate_limit: Option<Rate>,
    /// `unique_for = 60`: how long, in seconds, a call stays unique.
    pub unique_for: Option<Seconds>,
    /// `crate = "path::to::taskq"`: where the runtime is, for code that renames or re-exports it.
    pub krate: Option<Path>,
}

/// `retry_if = <expr>`: the expression (a function path or a closure) and where the key is.
pub(crate) struct RetryIf {
    /// The `retry_if` key, where mistakes about the option are reported.
    pub key: Span,
    /// Called with `&E`; `true` retries the error.
    pub matcher: syn::Expr,
}

/// A validated rate limit (`rate_limit = "10/s"`): runs a second, above zero.
pub(crate) struct Rate {
    /// Runs a second.
    pub per_second: f64,
    /// Where the rate was written.
    pub span: Span,
}

/// A validated number of seconds (`time_limit`, `soft_time_limit`, `retry_backoff`): positive
/// and finite.
pub(crate) struct Seconds {
    /// The value in seconds.
    pub secs: f64,
    /// Where the literal was written.
    pub span: Span,
}

/// What `validate` made of the function, which decides what `expand` generates.
///
/// A mistake must cost one error, not one more at every call site: so unless the item cannot
/// stand for a task at all, the expansion keeps the task's public handle (the struct and its
/// methods) even when an error is reported next to it.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per expansion: boxing would save nothing worth the noise"
)]
pub(crate) enum Validated {
    /// Every rule holds, or the only broken ones could be mended without guessing (a missing
    /// `async`, a `const`, a pattern for an argument name...): the whole task, as for correct
    /// code.
    Task(TaskFn),
    /// The signature holds types no task can have (borrowed or `impl Trait` arguments,
    /// generics, `unsafe`...): there can be no `Task` implementation, so only the handle is
    /// generated, with the function's types, for call sites to type-check against.
    Handle(TaskFn),
    /// Nothing a handle could stand in for (not a function, or a method taking `self` inside
    /// an `impl` block, where a struct cannot go): the item as written.
    AsWritten(TokenStream),
}

/// A function `#[task]` can generate code for, with its options.
pub(crate) struct TaskFn {
    /// The options, without those found wrong.
    pub options: TaskArgs,
    /// The function, mended where `validate` could (made `async`; `const`, `extern` and a
    /// variadic part removed). Its body and argument patterns are as written.
    pub func: ItemFn,
    /// The arguments, in order.
    pub args: Vec<Arg>,
    /// What the function returns.
    pub output: Output,
}

/// One argument of the task.
pub(crate) struct Arg {
    /// `#[cfg]` and `#[cfg_attr]` on it (only in a [`Validated::Handle`]: they are refused).
    pub cfg: Vec<Attribute>,
    /// Its name; a stand-in when it was written as a pattern (which is refused).
    pub ident: Ident,
    /// Its type, as written.
    pub ty: Type,
}

/// What the function returns, which decides the task's `Output` and how a run ends.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per expansion: boxing would save nothing worth the noise"
)]
pub(crate) enum Output {
    /// No return type, or `()`.
    Unit,
    /// Any type but a `Result`: the value is the output.
    Plain(Type),
    /// A type whose last path segment is `Result` (`Result<T, E>`, `anyhow::Result<T>`,
    /// `io::Result<T>`...): `Ok` is the output, `Err` a failure.
    Result {
        /// The whole return type.
        ty: Type,
        /// `T`, when written as the first generic argument.
        ok: Option<Type>,
        /// `E`, when written as the second generic argument.
        err: Option<Type>,
    },
    /// A type holding `impl Trait`, which cannot be named outside the function (only in a
    /// [`Validated::Handle`]: it is refused).
    Opaque,
}
