//! The expansion of `#[task]`, generated from a [`TaskFn`] that `validate` checked: a unit
//! struct named like the function, with `call`, `delay`, `delay_many` and `apply_async`
//! methods, an implementation of `taskq::Task`, compile-time checks of the argument and result
//! types, and the registration of the task.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Meta, Path, Token, Type};

use crate::model::{Output, TaskFn};

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

fn sort_attrs(attrs: &[Attribute]) -> Attrs<'_> {
    let about_the_item = |path: &Path| path.is_ident("doc") || path.is_ident("deprecated");
    let mut sorted = Attrs::default();
    for attr in attrs {
        if attr.path().is_ident("cfg") {
            sorted.cfg.push(attr);
        } else if about_the_item(attr.path()) {
            sorted.on_struct.push(attr);
        } else if attr.path().is_ident("cfg_attr") {
            // `#[cfg_attr(pred, doc = "..")]` documents the struct; anything else is for the body.
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

/// The expansion of a valid function.
pub(crate) fn generate(task: &TaskFn) -> TokenStream {
    let options = &task.options;
    let func = &task.func;
    let krate: Path = options
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::taskq));
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let attrs = sort_attrs(&func.attrs);
    let cfg = &attrs.cfg;
    let on_struct = &attrs.on_struct;
    let on_call = &attrs.on_call;

    let (arg_idents, arg_types): (Vec<&Ident>, Vec<&Type>) =
        task.args.iter().map(|arg| (&arg.ident, &arg.ty)).unzip();
    let arg_names: Vec<String> = arg_idents.iter().map(|i| i.unraw().to_string()).collect();
    let locals: Vec<Ident> = (0..arg_idents.len())
        .map(|i| format_ident!("__taskq_arg_{}", i))
        .collect();

    let name = match &options.name {
        Some(name) => name.to_token_stream(),
        None => {
            let fn_name = ident.unraw().to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };

    let mut task_options = quote!(#krate::TaskOptions::new());
    if let Some(queue) = &options.queue {
        task_options.extend(quote!(.queue(#queue)));
    }
    if let Some(ignore) = &options.ignore_result {
        task_options.extend(quote!(.ignore_result(#ignore)));
    }
    if let Some(limit) = &options.time_limit {
        let mut secs = Literal::f64_suffixed(limit.secs);
        secs.set_span(limit.span);
        task_options.extend(quote!(.time_limit_secs(#secs)));
    }
    if let Some(limit) = &options.soft_time_limit {
        let mut secs = Literal::f64_suffixed(limit.secs);
        secs.set_span(limit.span);
        task_options.extend(quote!(.soft_time_limit_secs(#secs)));
    }
    if let Some(retries) = &options.max_retries {
        task_options.extend(quote!(.max_retries(#retries)));
    }
    if options.retry_if.is_some() {
        task_options.extend(quote!(.retry_if(true)));
    }
    if let Some(backoff) = &options.retry_backoff {
        let mut secs = Literal::f64_suffixed(backoff.secs);
        secs.set_span(backoff.span);
        task_options.extend(quote!(.retry_backoff_secs(#secs)));
    }

    let inputs = &func.sig.inputs;
    let output = &func.sig.output;
    let body = &func.block;
    let run_call = quote!(Self.call(#(#locals),*).await);
    let (output_type, outcome) = match &task.output {
        Output::Unit => (
            quote!(()),
            quote! {
                #run_call;
                ::core::result::Result::Ok(())
            },
        ),
        Output::Plain(ty) => (
            ty.to_token_stream(),
            quote!(::core::result::Result::Ok(#run_call)),
        ),
        Output::Result { ty, ok, err } => (
            // `T` itself when written, so that an `E` without `Display` is reported once (at
            // `into_outcome`), not again wherever `Output` is normalized.
            match ok {
                Some(ok) => ok.to_token_stream(),
                None => respan_around(quote!(<#ty as #krate::__private::TaskReturn>::Ok), ty),
            },
            // An error type that is not `Display + Debug + Send + 'static` is reported at the
            // call to `into_outcome` and at its argument: span both at `E`.
            {
                let err = err.as_ref().unwrap_or(ty);
                let start = err.span();
                let ret = Ident::new("__taskq_ret", start);
                let path = respan(quote!(#krate::__private::TaskReturn::into_outcome), start);
                let into_outcome = respan_around(quote!(#path(#ret)), err);
                // A matcher that does not take `&E` is reported at the matcher.
                let judge = options.retry_if.as_ref().map(|retry_if| {
                    let matcher = &retry_if.matcher;
                    let judge = respan(quote!(#krate::__private::retry_if), matcher.span());
                    quote_spanned!(matcher.span()=> #judge(&__taskq_ret, #matcher);)
                });
                quote! {
                    let __taskq_ret = #run_call;
                    #judge
                    #into_outcome
                }
            },
        ),
    };
    // rustc checks the bounds of `Task::Args` at its type: give the tuple the span of the
    // argument list, or of the argument's type when there is just one, so that the errors land
    // on the function and not on the attribute. With several arguments, hidden checks point
    // at the very type that is not serializable.
    let mut args_type = Group::new(Delimiter::Parenthesis, tuple_items(&arg_types));
    let checks = match arg_types.as_slice() {
        [one] => {
            args_type.set_span(one.span());
            TokenStream::new()
        }
        _ => {
            args_type.set_span(func.sig.paren_token.span.join());
            arg_checks(&krate, &arg_types)
        }
    };
    // A body holding something that is not `Send` across an `.await` is reported at `async`.
    let locals_tuple = tuple_items(&locals);
    let args_tuple = tuple_items(&arg_idents);
    let async_span = func
        .sig
        .asyncness
        .map_or_else(Span::call_site, |asyncness| asyncness.span);
    let boxed = quote_spanned!(async_span=> ::std::boxed::Box::pin(async move {
        let (#locals_tuple) = __taskq_args;
        #outcome
    }));

    // Naming a deprecated task's struct in its own impls is no use of it; the body of a
    // deprecated function is not linted for deprecated uses either.
    let deprecated = attrs.on_struct.iter().any(|attr| {
        attr.path().is_ident("deprecated")
            || (attr.path().is_ident("cfg_attr")
                && attr.to_token_stream().to_string().contains("deprecated"))
    });
    let allow_deprecated = deprecated.then(|| quote!(#[allow(deprecated)]));

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

        #(#cfg)*
        #allow_deprecated
        impl #ident {
            /// Runs the task body inline, in this process (for unit tests).
            // `&self` adds one argument to those the user counted.
            #[allow(clippy::too_many_arguments)]
            #(#on_call)*
            pub async fn call(&self, #inputs) #output #body

            /// Sends the task to a worker; returns at once with a handle to its result.
            #[allow(clippy::too_many_arguments)]
            pub async fn delay(
                &self,
                #(#arg_idents: #arg_types),*
            ) -> #krate::Result<#krate::AsyncResult<<Self as #krate::Task>::Output>> {
                #krate::__private::apply_async::<Self>(
                    (#args_tuple),
                    #krate::Options::new()
                )
                .await
            }

            /// Sends many calls at once, each given as the tuple of its arguments, in one
            /// pipelined round trip to the broker; returns a handle per call, in order.
            /// See `Client::send_many`.
            pub async fn delay_many(
                &self,
                calls: impl ::core::iter::IntoIterator<Item = <Self as #krate::Task>::Args>,
            ) -> #krate::Result<::std::vec::Vec<#krate::AsyncResult<<Self as #krate::Task>::Output>>> {
                #krate::__private::send_many::<Self>(calls, #krate::Options::new()).await
            }

            /// Sends the task with per-call options.
            pub async fn apply_async(
                &self,
                args: <Self as #krate::Task>::Args,
                options: #krate::Options,
            ) -> #krate::Result<#krate::AsyncResult<<Self as #krate::Task>::Output>> {
                #krate::__private::apply_async::<Self>(args, options).await
            }
        }

        #(#cfg)*
        #[allow(deprecated)]
        impl #krate::Task for #ident {
            type Args = #args_type;
            type Output = #output_type;
            const NAME: &'static str = #name;
            const ARG_NAMES: &'static [&'static str] = &[#(#arg_names),*];
            const OPTIONS: #krate::TaskOptions = #task_options;

            fn run(
                __taskq_args: Self::Args,
            ) -> #krate::__private::BoxFuture<
                ::core::result::Result<Self::Output, #krate::TaskFailure>,
            > {
                #boxed
            }
        }

        #(#cfg)*
        #[allow(deprecated)]
        const _: () = {
            #checks
            #krate::__private::inventory::submit! {
                #krate::__private::TaskEntry::of::<#ident>()
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
