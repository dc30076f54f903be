//! What a `#[task]` function may look like, checked on its syntax, and the [`Validated`]
//! task that `expand` generates code from.
//!
//! Every problem found is reported, each at the tokens it is about. What syntax cannot tell
//! (whether a type is serializable) is left to rustc, through the checks `expand` generates.

use proc_macro2::TokenStream;
use syn::visit::{self, Visit};
use syn::{
    Error, FnArg, GenericArgument, GenericParam, Item, ItemFn, Lifetime, Pat, PathArguments,
    ReturnType, Signature, Type, TypeImplTrait, TypeReference,
};

use crate::model::{Arg, Errors, Output, TaskArgs, TaskFn, Validated};

/// Checks the function `item` and the options that depend on it, adding every problem to
/// `errors`, and says what to generate.
pub(crate) fn check(mut options: TaskArgs, item: TokenStream, errors: &mut Errors) -> Validated {
    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => func,
        Ok(other) => {
            errors.push(Error::new_spanned(
                other,
                "`#[task]` applies to `async fn` items only",
            ));
            return Validated::AsWritten(item);
        }
        Err(error) => {
            errors.push(error);
            return Validated::AsWritten(item);
        }
    };
    if let Err(error) = validate(&func) {
        errors.push(error);
        return Validated::AsWritten(item);
    }
    let output = output_shape(&func.sig.output);
    if let Err(error) = validate_options(&options, &output) {
        errors.push(error);
        options.retry_if = None;
    }
    let args = func
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => match &*arg.pat {
                Pat::Ident(pat) => Some(Arg {
                    ident: pat.ident.clone(),
                    ty: (*arg.ty).clone(),
                }),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    Validated::Task(TaskFn {
        options,
        func,
        args,
        output,
    })
}

/// Checks the options that depend on the function: `retry_if` judges an `Err(E)`, so the
/// task must return a `Result`, and it only chooses among retries, so `max_retries` must
/// allow some. Reported at the `retry_if` key.
fn validate_options(options: &TaskArgs, output: &Output) -> syn::Result<()> {
    let Some(retry_if) = &options.retry_if else {
        return Ok(());
    };
    let mut errors = Errors::default();
    if !matches!(output, Output::Result { .. }) {
        errors.push(Error::new(
            retry_if.key,
            "`retry_if` judges the task's error, but this task returns no `Result`: \
             return `Result<T, E>` and give `retry_if` a function of `&E`",
        ));
    }
    if options.max_retries.is_none() {
        errors.push(Error::new(
            retry_if.key,
            "`retry_if` needs `max_retries = N`: how many times a matching error is retried",
        ));
    }
    errors.finish()
}

/// Checks the function's signature; reports every problem, not just the first.
fn validate(func: &ItemFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &func.sig;
    check_qualifiers(sig, &mut errors);
    check_generics(sig, &mut errors);
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(Error::new_spanned(
                receiver,
                "`#[task]` functions cannot take `self`: a task is a free `async fn` that \
                 workers call by name with its arguments only",
            )),
            FnArg::Typed(arg) => {
                for attr in &arg.attrs {
                    if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                        errors.push(Error::new_spanned(
                            attr,
                            "task arguments cannot be conditional: the argument list is the \
                             task's signature on the wire",
                        ));
                    }
                }
                check_pattern(&arg.pat, &mut errors);
                let mut finder = Borrows::new(Position::Argument);
                // A lifetime parameter is reported once, at the generics, not at every use.
                finder.declared = sig
                    .generics
                    .lifetimes()
                    .map(|l| l.lifetime.clone())
                    .collect();
                finder.visit_type(&arg.ty);
                errors.extend(finder.errors);
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(
            variadic,
            "`#[task]` functions cannot be variadic",
        ));
    }
    check_output(&sig.output, &mut errors);
    errors.finish()
}

/// `async` is required; `const`, `unsafe` and `extern` are refused.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.push(Error::new_spanned(
            constness,
            "`#[task]` functions cannot be `const fn`",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(Error::new(
            sig.fn_token.span,
            "`#[task]` functions must be `async fn`: write `async fn` here",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(Error::new_spanned(
            unsafety,
            "`#[task]` functions cannot be `unsafe`: workers call them with arguments taken \
             from the wire and cannot uphold a safety contract",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(
            abi,
            "`#[task]` functions cannot have an `extern` ABI",
        ));
    }
}

/// Type, lifetime and const parameters, and where clauses, are refused.
fn check_generics(sig: &Signature, errors: &mut Errors) {
    let generics = &sig.generics;
    if let Some(param) = generics.params.first() {
        let kind = match param {
            GenericParam::Type(_) => {
                "a worker decodes each call into one concrete set of argument types, so type \
                 parameters are not allowed; use concrete types (an enum can stand for \
                 several)"
            }
            GenericParam::Lifetime(_) => {
                "task arguments are decoded into owned values, so lifetime parameters are not \
                 allowed; take owned types (`String`, `Vec<T>`) instead of borrowed ones"
            }
            GenericParam::Const(_) => {
                "a worker calls the task by name alone, so const parameters are not allowed; \
                 pass the value as an argument instead"
            }
        };
        errors.push(Error::new_spanned(
            generics,
            format!("`#[task]` functions cannot be generic: {kind}"),
        ));
    } else if let Some(where_clause) = &generics.where_clause {
        errors.push(Error::new_spanned(
            where_clause,
            "`#[task]` functions cannot be generic: remove the `where` clause",
        ));
    }
}

/// Arguments must be plain names: the names are the task's keyword-argument names.
fn check_pattern(pat: &Pat, errors: &mut Errors) {
    let message = match pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => return,
        Pat::Wild(_) => {
            "task arguments need a name, since callers may pass them by keyword: write \
             `_name: Type` to leave one unused"
        }
        _ => {
            "task arguments must be plain names (`user_id: u64`), since callers may pass them by \
             keyword; destructure inside the body instead"
        }
    };
    errors.push(Error::new_spanned(pat, message));
}

/// The return type must be owned and nameable.
fn check_output(output: &ReturnType, errors: &mut Errors) {
    let ReturnType::Type(_, ty) = output else {
        return;
    };
    let mut impl_traits = Borrows::new(Position::ImplTraitOnly);
    impl_traits.visit_type(ty);
    if !impl_traits.errors.is_empty() {
        errors.extend(impl_traits.errors);
        return;
    }
    let value = match output_shape(output) {
        Output::Unit => return,
        Output::Plain(ty) => ty,
        // Only `T` must be owned: `E` may well be `&'static str`.
        Output::Result { ok: Some(ok), .. } => ok,
        Output::Result { ok: None, .. } => return,
    };
    let mut borrows = Borrows::new(Position::Output);
    borrows.visit_type(&value);
    errors.extend(borrows.errors);
}

/// Classifies the return type.
fn output_shape(output: &ReturnType) -> Output {
    let ReturnType::Type(_, ty) = output else {
        return Output::Unit;
    };
    match strip(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "Result" => {
                let mut types = match &last.arguments {
                    PathArguments::AngleBracketed(args) => args
                        .args
                        .iter()
                        .filter_map(|arg| match arg {
                            GenericArgument::Type(ty) => Some(ty.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                }
                .into_iter();
                Output::Result {
                    ty: (**ty).clone(),
                    ok: types.next(),
                    err: types.next(),
                }
            }
            _ => Output::Plain((**ty).clone()),
        },
        _ => Output::Plain((**ty).clone()),
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

/// Where a type is written, which decides what it may contain.
#[derive(Clone, Copy, PartialEq)]
enum Position {
    Argument,
    Output,
    /// Only `impl Trait` is looked for.
    ImplTraitOnly,
}

/// Finds references, non-`'static` lifetimes and `impl Trait` in a type.
///
/// Does not look inside function-pointer types or `Fn(..)` sugar, where references are about
/// the function's own parameters.
struct Borrows {
    position: Position,
    /// Lifetime parameters of the function, already reported as generics.
    declared: Vec<Lifetime>,
    errors: Errors,
}

impl Borrows {
    fn new(position: Position) -> Self {
        Self {
            position,
            declared: Vec::new(),
            errors: Errors::default(),
        }
    }
}

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        let message = match self.position {
            Position::Argument => {
                "task arguments are sent over the wire and decoded into owned values: take an \
                 owned type (`String` instead of `&str`, `Vec<T>` instead of `&[T]`)"
            }
            Position::Output => {
                "a task's result is serialized and sent back to the caller: return an owned \
                 type (`String` instead of `&str`, `Vec<T>` instead of `&[T]`)"
            }
            Position::ImplTraitOnly => return visit::visit_type_reference(self, reference),
        };
        self.errors.push(Error::new_spanned(reference, message));
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
        let message = match self.position {
            Position::Argument => {
                "`impl Trait` cannot be a task argument: a worker decodes each argument into \
                 one concrete type, so name the type"
            }
            Position::Output | Position::ImplTraitOnly => {
                "`#[task]` functions cannot return `impl Trait`: the result type must be named, \
                 so that callers can decode it from `AsyncResult<T>`"
            }
        };
        self.errors.push(Error::new_spanned(impl_trait, message));
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident == "static"
            || self.position == Position::ImplTraitOnly
            || self.declared.contains(lifetime)
        {
            return;
        }
        self.errors.push(Error::new(
            lifetime.span(),
            format!(
                "task {} cannot borrow (lifetime `{lifetime}`): values are serialized across \
                 processes, so use owned data or `'static`",
                if self.position == Position::Argument {
                    "arguments"
                } else {
                    "results"
                }
            ),
        ));
    }

    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments(
        &mut self,
        _: &'ast syn::ParenthesizedGenericArguments,
    ) {
    }

    fn visit_bound_lifetimes(&mut self, _: &'ast syn::BoundLifetimes) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;
    use syn::parse_quote;

    fn errors(func: ItemFn) -> Vec<String> {
        match validate(&func) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn single_error(func: ItemFn) -> String {
        let errors = errors(func);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn ordinary_task_functions_pass() {
        let ok: [ItemFn; 8] = [
            parse_quote!(
                async fn f() {}
            ),
            parse_quote!(
                pub async fn f(x: u64, y: String) -> Result<Vec<u8>, Error> {
                    todo!()
                }
            ),
            parse_quote!(
                async fn f(mut x: u64) -> u64 {
                    x += 1;
                    x
                }
            ),
            parse_quote!(
                async fn f(r#type: String) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
            parse_quote!(
                async fn f(s: Cow<'static, str>) -> Result<u8, &'static str> {
                    Ok(1)
                }
            ),
            parse_quote!(
                async fn f(_unused: u8) -> () {}
            ),
            parse_quote!(
                async fn f(x: Box<dyn Fn(&str) + Send>) {}
            ),
            parse_quote!(
                async fn f(x: fn(&str) -> &str) {}
            ),
        ];
        for func in ok {
            assert_eq!(
                errors(func.clone()),
                Vec::<String>::new(),
                "{}",
                quote::quote!(#func)
            );
        }
    }

    #[test]
    fn functions_must_be_async() {
        assert!(single_error(parse_quote!(
            fn f() {}
        ))
        .starts_with("`#[task]` functions must be `async fn`"));
    }

    #[test]
    fn generics_are_refused() {
        let message = single_error(parse_quote!(
            async fn f<T: Serialize>(x: T) {}
        ));
        assert!(
            message.starts_with("`#[task]` functions cannot be generic: "),
            "{message}"
        );
        assert!(message.contains("type parameters"));
        let message = single_error(parse_quote!(
            async fn f<'a>(s: Cow<'a, str>) {}
        ));
        assert!(message.contains("lifetime parameters are not allowed"));
        let message = single_error(parse_quote!(
            async fn f<const N: usize>() {}
        ));
        assert!(message.contains("const parameters are not allowed"));
        let message = single_error(parse_quote!(
            async fn f()
            where
                u8: Copy,
            {
            }
        ));
        assert!(message.contains("remove the `where` clause"));
    }

    #[test]
    fn receivers_are_refused() {
        let message = single_error(parse_quote!(
            async fn f(&self, x: u8) {}
        ));
        assert!(message.starts_with("`#[task]` functions cannot take `self`"));
    }

    #[test]
    fn arguments_must_be_plain_names() {
        let message = single_error(parse_quote!(
            async fn f((a, b): (u8, u8)) {}
        ));
        assert!(message.starts_with("task arguments must be plain names"));
        let message = single_error(parse_quote!(
            async fn f(_: u8) {}
        ));
        assert!(message.starts_with("task arguments need a name"));
        let message = single_error(parse_quote!(
            async fn f(ref x: u8) {}
        ));
        assert!(message.starts_with("task arguments must be plain names"));
    }

    #[test]
    fn borrowed_arguments_are_refused() {
        let message = single_error(parse_quote!(
            async fn f(name: &str) {}
        ));
        assert!(
            message.starts_with("task arguments are sent over the wire"),
            "{message}"
        );
        let message = single_error(parse_quote!(
            async fn f(names: Vec<&'static str>) {}
        ));
        assert!(
            message.starts_with("task arguments are sent over the wire"),
            "{message}"
        );
        let message = single_error(parse_quote!(
            async fn f(name: Cow<'_, str>) {}
        ));
        assert!(
            message.contains("cannot borrow (lifetime `'_`)"),
            "{message}"
        );
    }

    #[test]
    fn impl_trait_arguments_are_refused() {
        let message = single_error(parse_quote!(
            async fn f(x: impl Serialize) {}
        ));
        assert!(message.starts_with("`impl Trait` cannot be a task argument"));
        let message = single_error(parse_quote!(
            async fn f(x: Vec<impl Serialize>) {}
        ));
        assert!(message.starts_with("`impl Trait` cannot be a task argument"));
    }

    #[test]
    fn borrowed_or_opaque_results_are_refused() {
        for func in [
            parse_quote!(
                async fn f() -> &'static str {
                    ""
                }
            ),
            parse_quote!(
                async fn f() -> Result<&'static str, Error> {
                    Ok("")
                }
            ),
            parse_quote!(
                async fn f() -> &'static Result<u8, Error> {
                    todo!()
                }
            ),
        ] {
            let message = single_error(func);
            assert!(
                message.starts_with("a task's result is serialized"),
                "{message}"
            );
        }
        let message = single_error(parse_quote!(
            async fn f() -> impl Serialize {
                1
            }
        ));
        assert!(message.starts_with("`#[task]` functions cannot return `impl Trait`"));
        let message = single_error(parse_quote!(
            async fn f() -> Result<impl Serialize, E> {}
        ));
        assert!(message.starts_with("`#[task]` functions cannot return `impl Trait`"));
    }

    #[test]
    fn qualifiers_are_refused() {
        let message = single_error(parse_quote!(
            async unsafe fn f() {}
        ));
        assert!(message.starts_with("`#[task]` functions cannot be `unsafe`"));
        let message = single_error(parse_quote!(
            async extern "C" fn f() {}
        ));
        assert!(message.starts_with("`#[task]` functions cannot have an `extern` ABI"));
        let errors = errors(parse_quote!(
            const fn f() {}
        ));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0], "`#[task]` functions cannot be `const fn`");
        assert!(errors[1].starts_with("`#[task]` functions must be `async fn`"));
    }

    #[test]
    fn conditional_arguments_are_refused() {
        let message = single_error(parse_quote!(
            async fn f(#[cfg(test)] x: u8) {}
        ));
        assert!(message.starts_with("task arguments cannot be conditional"));
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = errors(parse_quote!(
            fn f<T>(&self, (a, b): (u8, u8), c: &str, d: impl Clone) -> &'static str {}
        ));
        assert_eq!(errors.len(), 7, "{errors:#?}");
    }

    #[test]
    fn output_shapes_are_told_apart_by_the_last_path_segment() {
        let shape = |output: ReturnType| match output_shape(&output) {
            Output::Unit => "unit".to_owned(),
            Output::Plain(_) => "plain".to_owned(),
            Output::Result { ok, err, .. } => format!(
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
