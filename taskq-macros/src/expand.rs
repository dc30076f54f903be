//! The expansion of `#[task]`: a unit struct named like the function, with `call`, `delay`,
//! `delay_many` and `apply_async` methods, an implementation of `taskq::Task`, compile-time checks of the
//! argument and result types, and the registration of the task.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, Item, ItemFn, Meta, Pat, Path, PathArguments,
    ReturnType, Token, Type,
};

use crate::attr::TaskArgs;
use crate::validate::{validate, validate_options, Errors};

/// Entry point: the whole macro, on `proc_macro2` types.
///
/// A mistake in the function leaves it exactly as written, next to the errors, so that the
/// rest of the crate still type-checks against it. A mistake only in the options still expands
/// (with those options left out), so that code using `.delay(..)` keeps type-checking too.
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = match (|input: ParseStream<'_>| TaskArgs::parse_lenient(input)).parse2(args) {
        Ok((options, option_errors)) => {
            errors.extend(option_errors);
            options
        }
        Err(error) => {
            errors.push(error);
            TaskArgs::default()
        }
    };

    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => func,
        Ok(other) => {
            errors.push(syn::Error::new_spanned(
                other,
                "`#[task]` applies to `async fn` items only",
            ));
            return with_errors(item, errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, errors);
        }
    };
    if let Err(error) = validate(&func) {
        errors.push(error);
        return with_errors(item, errors);
    }
    let mut options = options;
    if let Err(error) = validate_options(&options, &func) {
        errors.push(error);
        options.retry_if = None;
    }

    let expanded = with_errors(generate(&options, &func), errors);
    debug_print(&func.sig.ident, &expanded);
    expanded
}

/// `tokens` followed by one `compile_error!` per error.
fn with_errors(mut tokens: TokenStream, errors: Errors) -> TokenStream {
    if let Err(error) = errors.finish() {
        tokens.extend(error.to_compile_error());
    }
    tokens
}

/// Prints the expansion to stderr when `TASKQ_MACROS_DEBUG` is `1`/`true`, or names the function.
fn debug_print(ident: &Ident, expanded: &TokenStream) {
    let Ok(setting) = std::env::var("TASKQ_MACROS_DEBUG") else {
        return;
    };
    let name = ident.unraw().to_string();
    if setting == "1" || setting.eq_ignore_ascii_case("true") || setting == name {
        eprintln!("#[taskq::task] expansion of `{name}`:\n{expanded}\n");
    }
}

/// What the function returns, which decides the task's `Output` and how a run ends.
pub(crate) enum OutputShape<'a> {
    /// No return type, or `()`.
    Unit,
    /// Any type but a `Result`: the value is the output.
    Plain(&'a Type),
    /// A type whose last path segment is `Result` (`Result<T, E>`, `anyhow::Result<T>`,
    /// `io::Result<T>`...): `Ok` is the output, `Err` a failure.
    Result {
        /// The whole return type.
        ty: &'a Type,
        /// `T`, when written as the first generic argument.
        ok: Option<&'a Type>,
        /// `E`, when written as the second generic argument.
        err: Option<&'a Type>,
    },
}

/// Classifies the return type.
pub(crate) fn output_shape(output: &ReturnType) -> OutputShape<'_> {
    let ReturnType::Type(_, ty) = output else {
        return OutputShape::Unit;
    };
    match strip(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => OutputShape::Unit,
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "Result" => {
                let mut types = match &last.arguments {
                    PathArguments::AngleBracketed(args) => args
                        .args
                        .iter()
                        .filter_map(|arg| match arg {
                            GenericArgument::Type(ty) => Some(ty),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                }
                .into_iter();
                OutputShape::Result {
                    ty,
                    ok: types.next(),
                    err: types.next(),
                }
            }
            _ => OutputShape::Plain(ty),
        },
        _ => OutputShape::Plain(ty),
    }
}

/// The type without invisible groups and parentheses around it.
fn strip(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
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
fn generate(options: &TaskArgs, func: &ItemFn) -> TokenStream {
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

    // Arguments: the validator made sure each is `name: Type` (maybe `mut name`).
    let (arg_idents, arg_types): (Vec<&Ident>, Vec<&Type>) = func
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => match &*arg.pat {
                Pat::Ident(pat) => Some((&pat.ident, &*arg.ty)),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .unzip();
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
    let shape = output_shape(output);
    let (output_type, outcome) = match &shape {
        OutputShape::Unit => (
            quote!(()),
            quote! {
                #run_call;
                ::core::result::Result::Ok(())
            },
        ),
        OutputShape::Plain(ty) => (
            ty.to_token_stream(),
            quote!(::core::result::Result::Ok(#run_call)),
        ),
        OutputShape::Result { ty, ok, err } => (
            // `T` itself when written, so that an `E` without `Display` is reported once (at
            // `into_outcome`), not again wherever `Output` is normalized.
            match ok {
                Some(ok) => ok.to_token_stream(),
                None => respan_around(quote!(<#ty as #krate::__private::TaskReturn>::Ok), ty),
            },
            // An error type that is not `Display + Debug + Send + 'static` is reported at the
            // call to `into_outcome` and at its argument: span both at `E`.
            {
                let err = err.unwrap_or(ty);
                let start = err.span();
                let ret = Ident::new("__taskq_ret", start);
                let path = respan(quote!(#krate::__private::TaskReturn::into_outcome), start);
                let into_outcome = respan_around(quote!(#path(#ret)), &err);
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

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        task(args, item).to_string()
    }

    /// Asserts that `out` contains `expected` (compared as token text).
    #[track_caller]
    fn assert_has(out: &str, expected: TokenStream) {
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
            quote! { ::taskq::__private::TaskEntry::of::<generate_report>() },
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
    fn an_invalid_function_is_left_as_written_next_to_the_errors() {
        let item = quote! { fn not_async(x: &str) {} };
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

    #[test]
    fn output_shapes_are_told_apart_by_the_last_path_segment() {
        let shape = |output: ReturnType| match output_shape(&output) {
            OutputShape::Unit => "unit".to_owned(),
            OutputShape::Plain(_) => "plain".to_owned(),
            OutputShape::Result { ok, err, .. } => format!(
                "result({}, {})",
                ok.map_or("-".into(), |t| t.to_token_stream().to_string()),
                err.map_or("-".into(), |t| t.to_token_stream().to_string()),
            ),
        };
        assert_eq!(shape(parse_quote!()), "unit");
        assert_eq!(shape(parse_quote! { -> () }), "unit");
        assert_eq!(shape(parse_quote! { -> u8 }), "plain");
        assert_eq!(shape(parse_quote! { -> Vec<Result<u8, E>> }), "plain");
        assert_eq!(shape(parse_quote! { -> Result<u8, E> }), "result(u8, E)");
        assert_eq!(
            shape(parse_quote! { -> anyhow::Result<u8> }),
            "result(u8, -)"
        );
        assert_eq!(
            shape(parse_quote! { -> std::io::Result<()> }),
            "result((), -)"
        );
        assert_eq!(shape(parse_quote! { -> (Result<u8, E>) }), "result(u8, E)");
    }
}
