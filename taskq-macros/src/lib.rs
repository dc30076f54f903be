//! The `#[task]` attribute of [taskq](https://docs.rs/taskq-rs), Celery for Rust.
//!
//! Use it through the runtime crate, as `#[taskq::task]`; this crate only holds the macro.
//! Its documentation, with every option, is on [`macro@task`].

// The stages run in one direction, each using only the shared types of `model`: `attr`
// parses the options, `validate` checks them with the function and says what to generate,
// and `expand` generates it.
mod attr;
mod expand;
mod model;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::ext::IdentExt;
use syn::Ident;

use crate::model::{Errors, Validated};

/// Turns an `async fn` into a task that can be sent to workers.
///
/// # Usage
///
/// Put `#[taskq::task]` on an `async fn`:
///
/// ```ignore
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// pub struct Report {
///     pub lines: Vec<String>,
/// }
///
/// /// Builds the monthly report of one user.
/// #[taskq::task(name = "tasks.generate_report", queue = "reports", time_limit = 30)]
/// pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
///     Ok(Report { lines: vec![format!("report of {user_id}")] })
/// }
///
/// # async fn example() -> taskq::Result<()> {
/// // Send it to a worker, and wait for its result:
/// let pending = generate_report.delay(42).await?;
/// // ...or run the body inline, e.g. in a unit test:
/// let report = generate_report.call(42).await?;
/// # Ok(())
/// # }
/// ```
///
/// The function's name now names a *task value*: a unit struct (here `generate_report`) with
///
/// - `call(&self, user_id: u64) -> anyhow::Result<Report>`: the body as written, run inline;
/// - `delay(&self, user_id: u64)`: sends the call to a worker and returns at once with a
///   `taskq::AsyncResult<Report>`, the handle to its result;
/// - `apply_async(&self, args, options)`: the same with per-call `taskq::Options`, the
///   arguments given as a tuple (`(42,)`);
/// - `delay_many(&self, calls)`: sends many calls, each a tuple of arguments, in one pipelined
///   round trip to the broker, and returns their handles in order
///   (`generate_report.delay_many((1..=100).map(|id| (id,)))`);
///
/// and an implementation of `taskq::Task`, which records the name, the argument names and the
/// options, and lets a worker decode a call and run it. The task registers itself when the
/// program starts: there is no list of tasks to keep.
///
/// The function's visibility, doc comments and `#[deprecated]` go to the struct, `#[cfg]` to
/// everything generated, and its other attributes (lint levels, `#[tracing::instrument]`, ...)
/// to `call`, which keeps the body exactly as written. Since the name now stands for the
/// struct, the function is called inline as `generate_report.call(42)`, not
/// `generate_report(42)`.
///
/// # What a task may look like
///
/// - It is an `async fn` without generics, `self`, `unsafe`, `const` or `extern`.
/// - Each argument is written `name: Type` (or `mut name: Type`): callers, Python ones
///   included, may pass arguments by keyword. Each type is owned, with no references, borrowed
///   lifetimes or `impl Trait`, and is `Serialize + DeserializeOwned + Send + 'static`.
/// - It returns
///   - `Result<T, E>`, where `E: Display + Debug + Send + 'static` (`anyhow::Error` is fine):
///     `Ok(T)` is the task's result and `Err(e)` a failure. Any type whose last path segment is
///     `Result` counts, so `anyhow::Result<T>` and `std::io::Result<T>` work; an alias named
///     otherwise is taken as a plain type;
///   - a plain `T`: the task's result, always a success;
///   - nothing: the result is `()`.
///
///   `T` is owned, nameable (no `impl Trait`) and `Serialize + DeserializeOwned + Send + 'static`.
/// - Its future is `Send`: workers run tasks on a multi-threaded runtime, so the body must not
///   hold an `Rc`, a `RefCell` borrow or a `std` mutex guard across an `.await`.
///
/// Every broken rule is reported, each at the offending tokens, and costs that one error: next
/// to it the macro still generates the task value, so that code using the task (`.delay(..)`,
/// `.call(..)`) type-checks and is not reported too.
///
/// - A mistake the error says how to fix (a missing `async`, an argument written as a pattern,
///   `const`, `extern`) is generated as if fixed: the whole task. A function that returns
///   `impl Future<Output = T>` instead of being `async` becomes the task of `T`.
/// - A signature no task can have (borrowed, `impl Trait` or generic types, `unsafe`, a
///   conditional argument) gets the struct and its methods only, with the function's own types
///   and generics, and no `taskq::Task` implementation; an `impl Trait` result is read as an
///   untyped `AsyncResult`.
/// - A method taking `self` is left as written, since no struct can be declared inside an
///   `impl` block.
///
/// Whether the types are serializable is left to rustc, whose errors point at the argument or
/// return type at fault.
///
/// # Options
///
/// All are optional: `#[taskq::task(name = "...", queue = "...", ...)]`.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "tasks.add"` | the name producers and workers (Rust or Python) agree on | `"<module path>::<fn name>"` |
/// | `queue = "reports"` | the queue calls go to when they name none | the client's default queue |
/// | `ignore_result` or `ignore_result = true` | store no result | `false` |
/// | `time_limit = 30` or `time_limit = 2.5` | hard time limit in seconds; a run still going is cancelled and fails with `TimeLimitExceeded` | none |
/// | `soft_time_limit = 20` or `soft_time_limit = 2.5` | soft time limit in seconds, below `time_limit` when both are given: the task is told through `taskq::request::soft_time_limit()`; a run that never asked for it is stopped and fails with `SoftTimeLimitExceeded`, one that asked may wind down until the hard limit | none |
/// | `max_retries = 3` | how many times a run that returned `Err`, panicked or was stopped at its soft time limit runs again (hard time limits, revokes and bad arguments are not retried) | `0` |
/// | `retry_backoff = 1` or `retry_backoff = 0.5` | the first retry's delay in seconds; it doubles for each next retry (up to 600 s), with jitter between half and all of it | `1` |
/// | `retry_if = is_transient` or `retry_if = \|e\| e.is_timeout()` | which errors are retried (Celery's `autoretry_for`): a function or closure of `&E` returning `bool`. Only errors it matches are retried; panics are not. Needs `max_retries` | every `Err` and panic |
/// | `rate_limit = "10/s"` (also `"100/m"`, `"2/h"`) | at most that many runs start a second across every worker (Celery's `rate_limit` syntax, but fleet-wide: see `taskq::rate_limit`); changed at run time by `celery control rate_limit` | none |
/// | `unique_for = 300` | calls are unique for up to that many seconds: while a call with the same arguments is queued or running, another queues nothing and follows it (see `taskq::Options::unique_for`) | not unique |
/// | `crate = "my_app::taskq"` | where the runtime crate is, when it is renamed or re-exported | `::taskq` |
///
/// Per-call `taskq::Options` (`.queue(..)`, `.time_limit(..)`, `.soft_time_limit(..)`,
/// `.ignore_result(..)`, `.unique_for(..)`) override
/// them for one call. A mistaken option is reported
/// at the option (with a suggestion for a misspelt key) and left out; the task is still
/// generated.
///
/// # Debugging
///
/// Set `TASKQ_MACROS_DEBUG=1` while compiling to print every expansion to stderr, or
/// `TASKQ_MACROS_DEBUG=<fn name>` for one task's only.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_task(args.into(), item.into()).into()
}

/// The whole macro, on `proc_macro2` types (which unit tests can call).
fn expand_task(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let (options, mut errors) = attr::parse(args);
    match validate::check(options, item, &mut errors) {
        Validated::Task(task) => {
            let expanded = with_errors(expand::task(&task), errors);
            debug_print(&task.func.sig.ident, &expanded);
            expanded
        }
        Validated::Handle(task) => {
            let expanded = with_errors(expand::handle(&task), errors);
            debug_print(&task.func.sig.ident, &expanded);
            expanded
        }
        Validated::AsWritten(item) => with_errors(item, errors),
    }
}

/// `tokens` followed by one `compile_error!` per error.
fn with_errors(mut tokens: TokenStream2, errors: Errors) -> TokenStream2 {
    if let Err(error) = errors.finish() {
        tokens.extend(error.to_compile_error());
    }
    tokens
}

/// Prints the expansion to stderr when `TASKQ_MACROS_DEBUG` is `1`/`true`, or names the function.
fn debug_print(ident: &Ident, expanded: &TokenStream2) {
    let Ok(setting) = std::env::var("TASKQ_MACROS_DEBUG") else {
        return;
    };
    let name = ident.unraw().to_string();
    if setting == "1" || setting.eq_ignore_ascii_case("true") || setting == name {
        eprintln!("#[taskq::task] expansion of `{name}`:\n{expanded}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{quote, ToTokens};
    use syn::Item;

    fn expand(args: TokenStream2, item: TokenStream2) -> String {
        expand_task(args, item).to_string()
    }

    /// Asserts that `out` contains `expected` (compared as token text).
    #[track_caller]
    fn assert_has(out: &str, expected: TokenStream2) {
        let expected = expected.to_string();
        assert!(out.contains(&expected), "missing `{expected}` in\n{out}");
    }

    #[test]
    fn expands_to_a_struct_its_methods_and_the_task_impl() {
        let args = quote! { name = "tasks.generate_report", queue = "reports", time_limit = 30 };
        let out = expand(
            args,
            quote! {
                /// Builds the report.
                pub async fn generate_report(user_id: u64) -> Result<Report, ReportError> {
                    build(user_id).await
                }
            },
        );
        let file: syn::File = syn::parse_str(&out).expect("the expansion parses");
        assert_eq!(file.items.len(), 4, "{out}");
        for expected in [
            quote! { pub struct generate_report; },
            quote! { #[doc = r" Builds the report."] },
            quote! {
                pub async fn call(&self, user_id: u64) -> Result<Report, ReportError> {
                    build(user_id).await
                }
            },
            quote! { pub async fn delay(&self, user_id: u64) },
            quote! { apply_async::<Self>((user_id,), ::taskq::Options::new()) },
            quote! { type Args = (u64,); },
            quote! { type Output = Report; },
            quote! { const NAME: &'static str = "tasks.generate_report"; },
            quote! { const ARG_NAMES: &'static [&'static str] = &["user_id"]; },
            quote! { ::taskq::TaskOptions::new() .queue("reports") .time_limit_secs(30f64) },
            quote! { let (__taskq_arg_0,) = __taskq_args; },
            quote! { let __taskq_ret = Self.call(__taskq_arg_0).await; },
            quote! { ::taskq::__private::TaskReturn::into_outcome(__taskq_ret) },
            quote! {
                ::taskq::__private::TaskEntry::of::<generate_report>()
                    .defined_at(::core::concat!(::core::module_path!(), "::", ::core::stringify!(generate_report)))
            },
        ] {
            assert_has(&out, expected);
        }
        // With one argument, rustc's check of `Task::Args` already points at its type.
        assert!(!out.contains("__taskq_check_arg"), "{out}");
    }

    #[test]
    fn plain_and_unit_returns_are_wrapped_in_ok() {
        let out = expand(
            quote!(),
            quote! { async fn add(x: i64, y: i64) -> i64 { x + y } },
        );
        assert_has(&out, quote! { type Output = i64; });
        assert_has(&out, quote! { type Args = (i64, i64); });
        let call = quote! { Self.call(__taskq_arg_0, __taskq_arg_1).await };
        assert_has(&out, quote! { ::core::result::Result::Ok(#call) });

        let out = expand(quote!(), quote! { async fn ping() {} });
        assert_has(&out, quote! { type Output = (); });
        assert_has(&out, quote! { type Args = (); });
        assert_has(&out, quote! { let () = __taskq_args; });
        assert_has(
            &out,
            quote! { Self.call().await; ::core::result::Result::Ok(()) },
        );
    }

    #[test]
    fn several_arguments_are_checked_one_by_one() {
        let out = expand(quote!(), quote! { async fn f(a: u8, b: Vec<String>) {} });
        assert_has(&out, quote! { __taskq_check_arg::<u8>(); });
        assert_has(&out, quote! { __taskq_check_arg::<Vec<String> >(); });
        assert_has(
            &out,
            quote! { apply_async::<Self>((a, b), ::taskq::Options::new()) },
        );
    }

    #[test]
    fn a_result_without_written_ok_type_goes_through_task_return() {
        let out = expand(quote!(), quote! { async fn f() -> io::Result { todo!() } });
        assert_has(
            &out,
            quote! { type Output = <io::Result as ::taskq::__private::TaskReturn>::Ok; },
        );
        let out = expand(
            quote!(),
            quote! { async fn f() -> anyhow::Result<u8> { todo!() } },
        );
        assert_has(&out, quote! { type Output = u8; });
    }

    #[test]
    fn the_default_name_is_the_module_path_and_the_function_name() {
        let out = expand(quote!(), quote! { async fn r#move() {} });
        assert_has(
            &out,
            quote! { ::core::concat!(::core::module_path!(), "::", "move") },
        );
        assert_has(
            &out,
            quote! { const ARG_NAMES: &'static [&'static str] = &[]; },
        );
    }

    #[test]
    fn the_crate_path_replaces_taskq_everywhere() {
        let out = expand(
            quote! { crate = "my_app::tq" },
            quote! { async fn f(x: u8) -> u8 { x } },
        );
        assert!(!out.contains(":: taskq"), "{out}");
        assert_has(&out, quote! { impl my_app::tq::Task for f });
    }

    #[test]
    fn ignore_result_is_set_only_when_given() {
        let out = expand(quote! { ignore_result }, quote! { async fn f() {} });
        assert_has(
            &out,
            quote! { ::taskq::TaskOptions::new().ignore_result(true) },
        );
        let out = expand(quote!(), quote! { async fn f() {} });
        assert_has(
            &out,
            quote! {
                const OPTIONS: ::taskq::TaskOptions = ::taskq::TaskOptions::new();
            },
        );
    }

    #[test]
    fn attributes_go_where_they_apply() {
        let out = expand(
            quote!(),
            quote! {
                /// Docs.
                #[cfg(feature = "x")]
                #[allow(clippy::too_many_lines)]
                #[deprecated]
                async fn f() {}
            },
        );
        let file: syn::File = syn::parse_str(&out).unwrap();
        let Item::Struct(item) = &file.items[0] else {
            panic!("{out}")
        };
        let paths: Vec<String> = (item.attrs.iter())
            .map(|a| a.path().to_token_stream().to_string())
            .collect();
        assert_eq!(paths, ["cfg", "doc", "deprecated", "allow", "derive"]);
        for item in &file.items[1..] {
            assert!(matches!(item, Item::Impl(_) | Item::Const(_)));
        }
        assert_eq!(out.matches("cfg (feature = \"x\")").count(), 4);
        assert_has(
            &out,
            quote! { #[allow(clippy::too_many_lines)] pub async fn call },
        );
    }

    #[test]
    fn a_signature_no_task_can_have_still_expands_to_the_handle() {
        // One error, and the struct with its methods, typed as written, so that call sites
        // type-check; no `Task` implementation, which would only repeat the error.
        let out = expand(
            quote!(),
            quote! { pub async fn greet(name: &str) -> String { todo!() } },
        );
        assert_eq!(out.matches("compile_error !").count(), 1, "{out}");
        assert_has(&out, quote! { pub struct greet; });
        assert_has(
            &out,
            quote! { pub async fn call(&self, name: &str) -> String { todo!() } },
        );
        assert_has(
            &out,
            quote! {
                pub async fn delay(&self, name: &str)
                    -> ::taskq::Result<::taskq::AsyncResult<String> >
            },
        );
        assert_has(
            &out,
            quote! { (&self, calls: impl ::core::iter::IntoIterator<Item = (&str,)>,) },
        );
        assert_has(
            &out,
            quote! { (&self, args: (&str,), options: ::taskq::Options,) },
        );
        assert!(!out.contains("impl :: taskq :: Task"), "{out}");
        assert!(!out.contains("inventory"), "{out}");

        // The function's generics and `unsafe` go to `call`, the generics to every method.
        let out = expand(
            quote!(),
            quote! { async unsafe fn count<T: Serialize>(items: Vec<T>) -> usize where T: Send { 0 } },
        );
        assert_eq!(out.matches("compile_error !").count(), 2, "{out}");
        assert_has(
            &out,
            quote! { pub async unsafe fn call<T: Serialize>(&self, items: Vec<T>) -> usize where T: Send { 0 } },
        );
        assert_has(
            &out,
            quote! { pub async fn delay<T: Serialize>(&self, items: Vec<T>) },
        );
        assert_has(
            &out,
            quote! { pub async fn apply_async<T: Serialize>(&self, args: (Vec<T>,), options: ::taskq::Options,) },
        );

        // An `impl Trait` result cannot be named: the handle reads it untyped.
        let out = expand(
            quote!(),
            quote! { async fn status() -> impl Serialize { 1 } },
        );
        assert_has(
            &out,
            quote! { pub async fn delay(&self,) -> ::taskq::Result<::taskq::AsyncResult> },
        );
    }

    #[test]
    fn a_mistake_the_error_says_how_to_fix_expands_as_if_fixed() {
        let item = quote! { pub fn add(x: i64, y: i64) -> i64 { x + y } };
        let out = expand(quote!(), item);
        assert_eq!(out.matches("compile_error !").count(), 1, "{out}");
        assert_has(
            &out,
            quote! { pub async fn call(&self, x: i64, y: i64) -> i64 { x + y } },
        );
        assert_has(&out, quote! { impl ::taskq::Task for add });
        assert_has(&out, quote! { type Output = i64; });
    }

    #[test]
    fn a_method_taking_self_is_left_as_written_next_to_the_errors() {
        let item = quote! { async fn send(&self, to: &str) {} };
        let out = expand(quote!(), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert_eq!(out.matches("compile_error !").count(), 2, "{out}");
    }

    #[test]
    fn invalid_options_still_expand_the_function() {
        let out = expand(quote! { queue = 1, bogus }, quote! { async fn f() {} });
        assert!(out.contains("pub async fn delay"), "{out}");
        assert_eq!(out.matches("compile_error !").count(), 2, "{out}");
    }

    #[test]
    fn only_functions_are_accepted() {
        let out = expand(quote!(), quote! { struct S; });
        assert!(
            out.contains("`#[task]` applies to `async fn` items only"),
            "{out}"
        );
    }
}
