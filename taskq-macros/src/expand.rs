//! The expansion of `#[task]`, generated from a [`TaskFn`] that `validate` checked: a unit
//! struct named like the function, with `call`, `delay`, `delay_many` and `apply_async`
//! methods, an implementation of `taskq::Task`, compile-time checks of the argument and result
//! types, and the registration of the task.
//!
//! A function whose types no task can have gets the struct and its methods only (see
//! [`handle`]).

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Meta, Path, Token, Type};

use crate::model::{Output, Seconds, TaskFn};

/// The whole task generated for `task`: the struct, its methods, its `Task` implementation
/// and its registration.
pub(crate) fn task(task: &TaskFn) -> TokenStream {
    let krate = runtime_path(task);
    let attrs = Attrs::sort(&task.func.attrs);
    let mut tokens = task_struct(task, &attrs);
    tokens.extend(inherent_methods(task, &krate, &attrs, Sends::ToWorkers));
    tokens.extend(task_impl(task, &krate, &attrs));
    tokens.extend(registration(task, &krate, &attrs));
    tokens
}

/// The task's handle alone, for a function that broke a rule no `Task` implementation can
/// follow (a borrowed or generic argument, an `impl Trait` result...): the struct and its
/// methods, with the function's own types and generics, next to the error about the rule.
///
/// The handle is what the rest of the crate uses, so with it every `.delay(..)` or `.call(..)`
/// still type-checks and the mistake is reported once, where it is (the idea of the fallback
/// impls of `thiserror`). The `Task` implementation is left out: it could only repeat the
/// error, about the same types. `call` keeps the body, which is checked as usual; the sending
/// methods never run, since the crate does not compile.
///
/// One case still costs a second error: a type parameter that neither an argument nor the
/// result names cannot be inferred where the task is used, and rustc asks for an annotation
/// there (the fix, a concrete type, removes both).
pub(crate) fn handle(task: &TaskFn) -> TokenStream {
    let krate = runtime_path(task);
    let attrs = Attrs::sort(&task.func.attrs);
    let mut tokens = task_struct(task, &attrs);
    tokens.extend(inherent_methods(task, &krate, &attrs, Sends::Nowhere));
    tokens
}

/// The path of the runtime crate: `crate = "..."`, or `::taskq`.
fn runtime_path(task: &TaskFn) -> Path {
    task.options
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::taskq))
}

/// The function's attributes, sorted by the item they belong on.
#[derive(Default)]
struct Attrs<'a> {
    /// `#[cfg]`: on every generated item.
    cfg: Vec<&'a Attribute>,
    /// Docs and `#[deprecated]`: on the struct, which is what users name.
    on_struct: Vec<&'a Attribute>,
    /// The rest (lint levels, `#[tracing::instrument]`, ...): on `call`, which holds the body.
    on_call: Vec<&'a Attribute>,
}

impl<'a> Attrs<'a> {
    fn sort(attrs: &'a [Attribute]) -> Self {
        let about_the_item = |path: &Path| path.is_ident("doc") || path.is_ident("deprecated");
        let mut sorted = Attrs::default();
        for attr in attrs {
            if attr.path().is_ident("cfg") {
                sorted.cfg.push(attr);
            } else if about_the_item(attr.path()) {
                sorted.on_struct.push(attr);
            } else if attr.path().is_ident("cfg_attr") {
                // `#[cfg_attr(pred, doc = "..")]` documents the struct; anything else is for
                // the body.
                let inner = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
                let docs_only = inner.is_ok_and(|metas| {
                    metas.len() > 1 && metas.iter().skip(1).all(|m| about_the_item(m.path()))
                });
                if docs_only {
                    sorted.on_struct.push(attr);
                } else {
                    sorted.on_call.push(attr);
                }
            } else {
                sorted.on_call.push(attr);
            }
        }
        sorted
    }

    /// `#[allow(deprecated)]` for a deprecated task: naming its struct in its own impls is no
    /// use of it, and the body of a deprecated function is not linted for deprecated uses
    /// either.
    fn allow_deprecated(&self) -> Option<TokenStream> {
        let deprecated = self.on_struct.iter().any(|attr| {
            attr.path().is_ident("deprecated")
                || (attr.path().is_ident("cfg_attr")
                    && attr.to_token_stream().to_string().contains("deprecated"))
        });
        deprecated.then(|| quote!(#[allow(deprecated)]))
    }
}

/// The unit struct that the function's name now stands for: the value users call methods on.
fn task_struct(task: &TaskFn, attrs: &Attrs<'_>) -> TokenStream {
    let vis = &task.func.vis;
    let ident = &task.func.sig.ident;
    let cfg = &attrs.cfg;
    let on_struct = &attrs.on_struct;
    quote! {
        #(#cfg)*
        #(#on_struct)*
        #[allow(non_camel_case_types)]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::default::Default,
        )]
        #vis struct #ident;
    }
}

/// Where the sending methods (`delay`, `delay_many`, `apply_async`) send a call.
#[derive(Clone, Copy)]
enum Sends {
    /// To workers, through the task's `Task` implementation.
    ToWorkers,
    /// Nowhere: a [`handle`] has no `Task` implementation. The methods only give call sites
    /// the types to check against.
    Nowhere,
}

impl Sends {
    /// The arguments as a tuple: `Task::Args`, or the tuple it would have been.
    fn args_type(self, task: &TaskFn, krate: &Path) -> TokenStream {
        match self {
            Sends::ToWorkers => quote!(<Self as #krate::Task>::Args),
            Sends::Nowhere => {
                let types: Vec<&Type> = task.args.iter().map(|arg| &arg.ty).collect();
                let items = tuple_items(&types);
                quote!((#items))
            }
        }
    }

    /// The handle to a call's result: `AsyncResult<Task::Output>`, or of the type it would
    /// have been.
    fn async_result(self, task: &TaskFn, krate: &Path) -> TokenStream {
        match (self, &task.output) {
            (Sends::ToWorkers, _) => quote!(#krate::AsyncResult<<Self as #krate::Task>::Output>),
            // An `impl Trait` result cannot be named: the default `AsyncResult`, which reads
            // the result untyped, is what a caller could use of it.
            (Sends::Nowhere, Output::Opaque) => quote!(#krate::AsyncResult),
            (Sends::Nowhere, _) => {
                let output = output_type(task, krate);
                quote!(#krate::AsyncResult<#output>)
            }
        }
    }

    /// The body of a sending method: `send`, or, in a handle, a panic that never runs.
    fn body(self, send: TokenStream) -> TokenStream {
        match self {
            Sends::ToWorkers => send,
            Sends::Nowhere => quote! {
                ::core::unreachable!("`#[taskq::task]` reported an error: this task cannot be sent")
            },
        }
    }

    /// Lints to allow on a sending method: in a handle, its arguments go unused.
    fn allow_unused(self) -> Option<TokenStream> {
        match self {
            Sends::ToWorkers => None,
            Sends::Nowhere => Some(quote!(#[allow(unused_variables)])),
        }
    }
}

/// The struct's methods: `call`, `delay`, `delay_many` and `apply_async`.
fn inherent_methods(task: &TaskFn, krate: &Path, attrs: &Attrs<'_>, sends: Sends) -> TokenStream {
    let ident = &task.func.sig.ident;
    let cfg = &attrs.cfg;
    let allow_deprecated = attrs.allow_deprecated();
    let call = call_method(task, attrs);
    let delay = delay_method(task, krate, sends);
    let delay_many = delay_many_method(task, krate, sends);
    let apply_async = apply_async_method(task, krate, sends);
    let signatures = signature_methods(task, krate, sends);
    quote! {
        #(#cfg)*
        #allow_deprecated
        impl #ident {
            #call

            #delay

            #delay_many

            #apply_async

            #signatures
        }
    }
}

/// `s`, `si` and `partial`: the call as a signature, for workflows (`taskq::canvas`). Only a
/// task that can be sent has them.
fn signature_methods(task: &TaskFn, krate: &Path, sends: Sends) -> TokenStream {
    if matches!(sends, Sends::Nowhere) {
        return TokenStream::new();
    }
    let output = quote!(<Self as #krate::Task>::Output);
    let params: Vec<TokenStream> = task
        .args
        .iter()
        .map(|arg| {
            let (cfg, ident, ty) = (&arg.cfg, &arg.ident, &arg.ty);
            quote!(#(#cfg)* #ident: #ty)
        })
        .collect();
    let idents: Vec<&Ident> = task.args.iter().map(|arg| &arg.ident).collect();
    let args_tuple = tuple_items(&idents);
    let partial = task.args.first().map(|first| {
        let first_ty = &first.ty;
        let rest_params = &params[1..];
        let rest_tuple = tuple_items(&idents[1..]);
        quote! {
            /// The call without its first argument, which the previous step of a chain (or a
            /// chord's results) gives: Celery's `.s(...)` as a later step.
            #[allow(clippy::too_many_arguments)]
            pub fn partial(&self, #(#rest_params),*) -> #krate::canvas::Partial<#first_ty, #output> {
                #krate::__private::partial::<Self, #first_ty>((#rest_tuple))
            }
        }
    });
    quote! {
        /// The call as a signature, to send later or in a workflow (Celery's `.s(...)`).
        #[allow(clippy::too_many_arguments)]
        pub fn s(&self, #(#params),*) -> #krate::canvas::Sig<#output> {
            #krate::__private::signature::<Self>((#args_tuple), false)
        }

        /// The call as an immutable signature: in a chain it ignores the previous step's
        /// result (Celery's `.si(...)`).
        #[allow(clippy::too_many_arguments)]
        pub fn si(&self, #(#params),*) -> #krate::canvas::Sig<#output> {
            #krate::__private::signature::<Self>((#args_tuple), true)
        }

        #partial
    }
}

/// `call`: the body as written, run inline. It takes the function's own arguments (patterns
/// and attributes included), so the body compiles exactly as the user wrote it.
///
/// A task has no generics and is not `unsafe`; a [`handle`] keeps those of the function, for
/// the same reason.
fn call_method(task: &TaskFn, attrs: &Attrs<'_>) -> TokenStream {
    let on_call = &attrs.on_call;
    let sig = &task.func.sig;
    let unsafety = &sig.safety;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let body = &task.func.block;
    quote! {
        /// Runs the task body inline, in this process (for unit tests).
        // `&self` adds one argument to those the user counted.
        #[allow(clippy::too_many_arguments)]
        #(#on_call)*
        pub async #unsafety fn call #generics (&self, #inputs) #output #where_clause #body
    }
}

/// `delay`: sends a call with the function's arguments and the task's default options.
fn delay_method(task: &TaskFn, krate: &Path, sends: Sends) -> TokenStream {
    let generics = &task.func.sig.generics;
    let where_clause = &generics.where_clause;
    let params = task.args.iter().map(|arg| {
        let (cfg, ident, ty) = (&arg.cfg, &arg.ident, &arg.ty);
        quote!(#(#cfg)* #ident: #ty)
    });
    let async_result = sends.async_result(task, krate);
    let idents: Vec<&Ident> = task.args.iter().map(|arg| &arg.ident).collect();
    let args_tuple = tuple_items(&idents);
    let body = sends.body(quote! {
        #krate::__private::apply_async::<Self>(
            (#args_tuple),
            #krate::Options::new()
        )
        .await
    });
    let allow_unused = sends.allow_unused();
    quote! {
        /// Sends the task to a worker; returns at once with a handle to its result.
        #[allow(clippy::too_many_arguments)]
        #allow_unused
        pub async fn delay #generics (
            &self,
            #(#params),*
        ) -> #krate::Result<#async_result> #where_clause {
            #body
        }
    }
}

/// `delay_many`: sends many calls, each a tuple of arguments, in one round trip.
fn delay_many_method(task: &TaskFn, krate: &Path, sends: Sends) -> TokenStream {
    let generics = &task.func.sig.generics;
    let where_clause = &generics.where_clause;
    let args_type = sends.args_type(task, krate);
    let async_result = sends.async_result(task, krate);
    let body = sends.body(quote! {
        #krate::__private::send_many::<Self>(calls, #krate::Options::new()).await
    });
    let allow_unused = sends.allow_unused();
    quote! {
        /// Sends many calls at once, each given as the tuple of its arguments, in one
        /// pipelined round trip to the broker; returns a handle per call, in order.
        /// See `Client::send_many`.
        #allow_unused
        pub async fn delay_many #generics (
            &self,
            calls: impl ::core::iter::IntoIterator<Item = #args_type>,
        ) -> #krate::Result<::std::vec::Vec<#async_result>> #where_clause {
            #body
        }
    }
}

/// `apply_async`: sends one call, its arguments as a tuple, with per-call options.
fn apply_async_method(task: &TaskFn, krate: &Path, sends: Sends) -> TokenStream {
    let generics = &task.func.sig.generics;
    let where_clause = &generics.where_clause;
    let args_type = sends.args_type(task, krate);
    let async_result = sends.async_result(task, krate);
    let body = sends.body(quote! {
        #krate::__private::apply_async::<Self>(args, options).await
    });
    let allow_unused = sends.allow_unused();
    quote! {
        /// Sends the task with per-call options.
        #allow_unused
        pub async fn apply_async #generics (
            &self,
            args: #args_type,
            options: #krate::Options,
        ) -> #krate::Result<#async_result> #where_clause {
            #body
        }
    }
}

/// The implementation of `taskq::Task`: what a worker needs to decode a call and run it.
fn task_impl(task: &TaskFn, krate: &Path, attrs: &Attrs<'_>) -> TokenStream {
    let ident = &task.func.sig.ident;
    let cfg = &attrs.cfg;
    let args_type = args_type(task);
    let output_type = output_type(task, krate);
    let name = task_name(task);
    let arg_names = task.args.iter().map(|arg| arg.ident.unraw().to_string());
    let options = task_options(task, krate);
    let run = run_future(task, krate);
    quote! {
        #(#cfg)*
        #[allow(deprecated)]
        impl #krate::Task for #ident {
            type Args = #args_type;
            type Output = #output_type;
            const NAME: &'static str = #name;
            const ARG_NAMES: &'static [&'static str] = &[#(#arg_names),*];
            const OPTIONS: #krate::TaskOptions = #options;

            fn run(
                __taskq_args: Self::Args,
            ) -> #krate::__private::BoxFuture<
                ::core::result::Result<Self::Output, #krate::TaskFailure>,
            > {
                #run
            }
        }
    }
}

/// `Task::Args`: the tuple of the argument types.
///
/// rustc checks the bounds of `Task::Args` at its type: give the tuple the span of the
/// argument list, or of the argument's type when there is just one, so that the errors land
/// on the function and not on the attribute.
fn args_type(task: &TaskFn) -> Group {
    let types: Vec<&Type> = task.args.iter().map(|arg| &arg.ty).collect();
    let mut tuple = Group::new(Delimiter::Parenthesis, tuple_items(&types));
    match types.as_slice() {
        [one] => tuple.set_span(one.span()),
        _ => tuple.set_span(task.func.sig.paren_token.span.join()),
    }
    tuple
}

/// `Task::Output`: what a successful run returns.
fn output_type(task: &TaskFn, krate: &Path) -> TokenStream {
    match &task.output {
        Output::Opaque => {
            unreachable!(
                "`validate` leaves an `impl Trait` result to a handle, which reads it untyped"
            )
        }
        Output::Unit => quote!(()),
        Output::Plain(ty) => ty.to_token_stream(),
        // `T` itself when written, so that an `E` without `Display` is reported once (at
        // `into_outcome`), not again wherever `Output` is normalized.
        Output::Result { ok: Some(ok), .. } => ok.to_token_stream(),
        Output::Result { ty, ok: None, .. } => {
            respan_around(quote!(<#ty as #krate::__private::TaskReturn>::Ok), ty)
        }
    }
}

/// `Task::NAME`: the `name` option, or the function's module path and name.
fn task_name(task: &TaskFn) -> TokenStream {
    match &task.options.name {
        Some(name) => name.to_token_stream(),
        None => {
            let fn_name = task.func.sig.ident.unraw().to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    }
}

/// `Task::OPTIONS`: a `TaskOptions` with each option that was given.
fn task_options(task: &TaskFn, krate: &Path) -> TokenStream {
    let options = &task.options;
    let mut tokens = quote!(#krate::TaskOptions::new());
    if let Some(queue) = &options.queue {
        tokens.extend(quote!(.queue(#queue)));
    }
    if let Some(ignore) = &options.ignore_result {
        tokens.extend(quote!(.ignore_result(#ignore)));
    }
    if let Some(limit) = &options.time_limit {
        let secs = seconds(limit);
        tokens.extend(quote!(.time_limit_secs(#secs)));
    }
    if let Some(limit) = &options.soft_time_limit {
        let secs = seconds(limit);
        tokens.extend(quote!(.soft_time_limit_secs(#secs)));
    }
    if let Some(retries) = &options.max_retries {
        tokens.extend(quote!(.max_retries(#retries)));
    }
    if options.retry_if.is_some() {
        tokens.extend(quote!(.retry_if(true)));
    }
    if let Some(backoff) = &options.retry_backoff {
        let secs = seconds(backoff);
        tokens.extend(quote!(.retry_backoff_secs(#secs)));
    }
    if let Some(rate) = &options.rate_limit {
        let mut per_second = Literal::f64_suffixed(rate.per_second);
        per_second.set_span(rate.span);
        tokens.extend(quote!(.rate_limit(#krate::rate_limit::RateLimit::per_second(#per_second))));
    }
    if let Some(unique_for) = &options.unique_for {
        let secs = seconds(unique_for);
        tokens.extend(quote!(.unique_for_secs(#secs)));
    }
    tokens
}

/// A number of seconds as an `f64` literal, spanned where it was written so that a type error
/// about it points there.
fn seconds(seconds: &Seconds) -> Literal {
    let mut secs = Literal::f64_suffixed(seconds.secs);
    secs.set_span(seconds.span);
    secs
}

/// The body of `Task::run`: a boxed future that unpacks the arguments, runs `call` and turns
/// its return value into the run's outcome.
///
/// A body holding something that is not `Send` across an `.await` is reported at `async`.
fn run_future(task: &TaskFn, krate: &Path) -> TokenStream {
    let locals: Vec<Ident> = (0..task.args.len())
        .map(|i| format_ident!("__taskq_arg_{}", i))
        .collect();
    let locals_tuple = tuple_items(&locals);
    let run_call = quote!(Self.call(#(#locals),*).await);
    let outcome = outcome(task, krate, run_call);
    let async_span = task
        .func
        .sig
        .asyncness
        .map_or_else(Span::call_site, |asyncness| asyncness.span);
    quote_spanned!(async_span=> ::std::boxed::Box::pin(async move {
        let (#locals_tuple) = __taskq_args;
        #outcome
    }))
}

/// Turns what `run_call` returns into `Result<Output, TaskFailure>`: `Ok` for a unit or plain
/// return; for a `Result`, the error becomes a failure (after `retry_if` judged it).
fn outcome(task: &TaskFn, krate: &Path, run_call: TokenStream) -> TokenStream {
    let (ty, err) = match &task.output {
        Output::Unit => {
            return quote! {
                #run_call;
                ::core::result::Result::Ok(())
            }
        }
        Output::Plain(_) | Output::Opaque => return quote!(::core::result::Result::Ok(#run_call)),
        Output::Result { ty, err, .. } => (ty, err),
    };
    // An error type that is not `Display + Debug + Send + 'static` is reported at the call to
    // `into_outcome` and at its argument: span both at `E`.
    let err = err.as_ref().unwrap_or(ty);
    let start = err.span();
    let ret = Ident::new("__taskq_ret", start);
    let path = respan(quote!(#krate::__private::TaskReturn::into_outcome), start);
    let into_outcome = respan_around(quote!(#path(#ret)), err);
    // A matcher that does not take `&E` is reported at the matcher.
    let judge = task.options.retry_if.as_ref().map(|retry_if| {
        let matcher = &retry_if.matcher;
        let judge = respan(quote!(#krate::__private::retry_if), matcher.span());
        quote_spanned!(matcher.span()=> #judge(&__taskq_ret, #matcher);)
    });
    quote! {
        let __taskq_ret = #run_call;
        #judge
        #into_outcome
    }
}

/// The registration of the task, so that workers find it by name without a list of tasks to
/// keep, next to the checks of its argument types. The entry records the function's path, so
/// that two tasks registered under one name can both be named.
fn registration(task: &TaskFn, krate: &Path, attrs: &Attrs<'_>) -> TokenStream {
    let ident = &task.func.sig.ident;
    let cfg = &attrs.cfg;
    // With one argument, rustc's check of `Task::Args` already points at its type (see
    // `args_type`); with several, hidden checks point at the very type that is not
    // serializable.
    let checks = match task.args.as_slice() {
        [_] => TokenStream::new(),
        args => {
            let types: Vec<&Type> = args.iter().map(|arg| &arg.ty).collect();
            arg_checks(krate, &types)
        }
    };
    quote! {
        #(#cfg)*
        #[allow(deprecated)]
        const _: () = {
            #checks
            #krate::__private::inventory::submit! {
                #krate::__private::TaskEntry::of::<#ident>()
                    .defined_at(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)))
            }
        };
    }
}

/// The inside of a tuple of `items`: empty, `a,` or `a, b`.
fn tuple_items(items: &[impl ToTokens]) -> TokenStream {
    match items {
        [one] => quote!(#one,),
        _ => quote!(#(#items),*),
    }
}

/// `tokens` with every token spanned at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// `tokens` with its first token spanned at the start of `around` and its last at the end, so
/// that the span rustc gives the type or expression they form covers `around`.
fn respan_around(tokens: TokenStream, around: &impl ToTokens) -> TokenStream {
    let around: Vec<TokenTree> = around.to_token_stream().into_iter().collect();
    let (Some(first), Some(last)) = (around.first(), around.last()) else {
        return tokens;
    };
    let (start, end) = (first.span(), last.span());
    let mut trees: Vec<TokenTree> = tokens.into_iter().collect();
    let count = trees.len();
    for (i, tree) in trees.iter_mut().enumerate() {
        if i == 0 {
            tree.set_span(start);
        } else if i + 1 == count {
            tree.set_span(end);
        }
    }
    trees.into_iter().collect()
}

/// Bounds of the arguments rustc checks for us, each spanned at the argument's type so that an
/// unserializable argument is reported where it is written (the `Task::Args` bounds of a tuple
/// of several are reported at the whole argument list).
///
/// The output needs no such check: `Task::Output` is the user's type as written, so rustc
/// reports its bounds there.
fn arg_checks(krate: &Path, arg_types: &[&Type]) -> TokenStream {
    let serde = quote!(#krate::__private::serde);
    let calls = arg_types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> __taskq_check_arg::<#ty>();));
    quote! {
        #[allow(dead_code)]
        fn __taskq_check_arg<
            __TaskqT: #serde::Serialize
                + #serde::de::DeserializeOwned
                + ::core::marker::Send
                + 'static,
        >() {
        }
        #[allow(dead_code)]
        fn __taskq_check_args() {
            #(#calls)*
        }
    }
}
