//! What a `#[task]` function may look like, checked on its syntax, and the [`Validated`]
//! task that `expand` generates code from.
//!
//! Every problem found is reported, each at the tokens it is about. What syntax cannot tell
//! (whether a type is serializable) is left to rustc, through the checks `expand` generates.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{
    parse_quote, Error, FnArg, GenericArgument, GenericParam, Ident, Item, ItemFn, Lifetime, Pat,
    PatIdent, PathArguments, ReturnType, Signature, Token, Type, TypeImplTrait, TypeParamBound,
    TypeReference, Visibility,
};

use crate::model::{Arg, Errors, Output, TaskArgs, TaskFn, Validated};

/// Checks the function `item` and the options that depend on it, adding every problem to
/// `errors`, and says what to generate.
///
/// A broken rule costs one error, at the mistake: what is generated next to it is the closest
/// valid item, so that code using the task (`.delay(..)`, `.call(..)`) is checked against
/// what the task will be once the mistake is fixed, and reports nothing more.
pub(crate) fn check(mut options: TaskArgs, item: TokenStream, errors: &mut Errors) -> Validated {
    let mut func = match syn::parse2::<Item>(item.clone()) {
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
    let findings = check_signature(&func.sig);
    let fallback = findings.fallback;
    errors.extend(findings.errors);
    if fallback == Fallback::AsWritten {
        return Validated::AsWritten(item);
    }
    let args = task_args(&func.sig);
    mend(&mut func, &args, findings.future_output);
    let output = if findings.opaque_output {
        Output::Opaque
    } else {
        output_shape(&func.sig.output)
    };
    if let Err(error) = check_options(&options, &output) {
        errors.push(error);
        options.retry_if = None;
    }
    let task = TaskFn {
        options,
        args,
        output,
        func,
    };
    if fallback == Fallback::Mended {
        Validated::Task(task)
    } else {
        Validated::Handle(task)
    }
}

/// What a broken rule leaves to generate, from the mildest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Fallback {
    /// Nothing, or what `mend` repairs as the error message says to: the whole task.
    #[default]
    Mended,
    /// Types no task can have (borrowed, `impl Trait` or generic), or an `unsafe` body: the
    /// handle only, with the types as written. A `Task` implementation would only add errors
    /// about the same types, and a guess at other types would add errors at call sites.
    Handle,
    /// A `self` argument: the function is a method inside an `impl` block, where no struct can
    /// be declared, so it is left as written (and its callers keep type-checking against it).
    AsWritten,
}

/// The problems found in a signature, and what is left to generate.
#[derive(Default)]
struct Findings {
    errors: Errors,
    fallback: Fallback,
    /// The return type holds `impl Trait`: the task's result type cannot be named.
    opaque_output: bool,
    /// `T`, for a function that is not `async` but returns a future of `T` (see
    /// [`future_output`]).
    future_output: Option<Type>,
}

impl Findings {
    /// Records `error`, which leaves at most `fallback` to generate.
    fn push(&mut self, fallback: Fallback, error: Error) {
        self.errors.push(error);
        self.fallback = self.fallback.max(fallback);
    }

    /// Records every error of `errors`, each leaving at most `fallback` to generate.
    fn extend(&mut self, fallback: Fallback, errors: Errors) {
        if !errors.is_empty() {
            self.errors.extend(errors);
            self.fallback = self.fallback.max(fallback);
        }
    }
}

/// Checks the options that depend on the function: `retry_if` judges an `Err(E)`, so the
/// task must return a `Result`, and it only chooses among retries, so `max_retries` must
/// allow some. Reported at the `retry_if` key.
fn check_options(options: &TaskArgs, output: &Output) -> syn::Result<()> {
    let Some(retry_if) = &options.retry_if else {
        return Ok(());
    };
    let mut errors = Errors::default();
    // An `impl Trait` return is already reported: whether it is a `Result` is unknown.
    if !matches!(output, Output::Result { .. } | Output::Opaque) {
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

/// Repairs what the errors about the signature say to repair, so that the expansion is what
/// the function will be once it is fixed: `async` is added, and `const`, `extern "..."` and a
/// variadic `...` are dropped (a body that compiles with them compiles without them).
///
/// A function that returned a future of `future_output` now returns `future_output`: its
/// body becomes a call of the function as written, nested inside, and an `.await` of the
/// future it returns. The function as written keeps its return type, which its body may
/// need (to coerce two futures to one `Pin<Box<dyn Future>>`) and its imports name.
fn mend(func: &mut ItemFn, args: &[Arg], future_output: Option<Type>) {
    if let (Some(output), ReturnType::Type(arrow, _)) = (future_output, &func.sig.output) {
        let arrow = *arrow;
        let as_written = ItemFn {
            attrs: Vec::new(),
            vis: Visibility::Inherited,
            modifiers: func.modifiers.clone(),
            sig: func.sig.clone(),
            block: func.block.clone(),
        };
        let ident = &func.sig.ident;
        let names = args.iter().map(|arg| &arg.ident);
        func.block = parse_quote!({
            #as_written
            #ident(#(#names),*).await
        });
        func.sig.output = ReturnType::Type(arrow, Box::new(output));
        // The arguments are passed on by name.
        let typed = func.sig.inputs.iter_mut().filter_map(|input| match input {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        });
        for (input, arg) in typed.zip(args) {
            *input.pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: arg.ident.clone(),
                subpat: None,
            });
        }
    }
    let sig = &mut func.sig;
    sig.asyncness
        .get_or_insert_with(|| Token![async](sig.fn_token.span));
    sig.constness = None;
    sig.abi = None;
    sig.variadic = None;
}

/// The task's arguments. An argument written as a pattern (refused) gets a stand-in name, since
/// the sending methods need one; `call` still takes the pattern, for the body.
fn task_args(sig: &Signature) -> Vec<Arg> {
    let typed = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(arg) => Some(arg),
        FnArg::Receiver(_) => None,
    });
    typed
        .enumerate()
        .map(|(i, arg)| Arg {
            cfg: (arg.attrs.iter())
                .filter(|attr| attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr"))
                .cloned()
                .collect(),
            ident: match &*arg.pat {
                Pat::Ident(pat) => pat.ident.clone(),
                other => Ident::new(&format!("__taskq_arg_{i}"), other.span()),
            },
            ty: (*arg.ty).clone(),
        })
        .collect()
}

/// Checks the function's signature; reports every problem, not just the first.
fn check_signature(sig: &Signature) -> Findings {
    let mut findings = Findings::default();
    let future_output = future_output(sig);
    check_qualifiers(sig, future_output.is_some(), &mut findings);
    check_generics(sig, &mut findings);
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => findings.push(
                Fallback::AsWritten,
                Error::new_spanned(
                    receiver,
                    "`#[task]` functions cannot take `self`: a task is a free `async fn` that \
                     workers call by name with its arguments only",
                ),
            ),
            FnArg::Typed(arg) => {
                for attr in &arg.attrs {
                    if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                        findings.push(
                            Fallback::Handle,
                            Error::new_spanned(
                                attr,
                                "task arguments cannot be conditional: the argument list is \
                                 the task's signature on the wire",
                            ),
                        );
                    }
                }
                check_pattern(&arg.pat, &mut findings);
                let mut finder = Borrows::new(Position::Argument);
                // A lifetime parameter is reported once, at the generics, not at every use.
                finder.declared = sig
                    .generics
                    .lifetimes()
                    .map(|l| l.lifetime.clone())
                    .collect();
                finder.visit_type(&arg.ty);
                findings.extend(Fallback::Handle, finder.errors);
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        findings.push(
            Fallback::Mended,
            Error::new_spanned(variadic, "`#[task]` functions cannot be variadic"),
        );
    }
    match &future_output {
        // The future's output is the task's result, once `async` is written.
        Some(output) => check_output(
            &ReturnType::Type(Token![->](output.span()), Box::new(output.clone())),
            &mut findings,
        ),
        None => check_output(&sig.output, &mut findings),
    }
    findings.future_output = future_output;
    findings
}

/// For a function that is not `async` but returns a future (`impl Future<Output = T>`, or
/// `Pin<Box<dyn Future<Output = T> + Send>>`), `T`: what it returns once written as an
/// `async fn`, which the error about `async` asks for.
fn future_output(sig: &Signature) -> Option<Type> {
    match (&sig.asyncness, &sig.output) {
        (None, ReturnType::Type(_, ty)) => future_output_of(ty),
        _ => None,
    }
}

/// `T` of a type written `impl Future<Output = T>` or `dyn Future<Output = T>`, maybe in a
/// `Box` and a `Pin`.
fn future_output_of(ty: &Type) -> Option<Type> {
    let bounds = match strip(ty) {
        Type::ImplTrait(impl_trait) => &impl_trait.bounds,
        Type::TraitObject(dyn_trait) => &dyn_trait.bounds,
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.ident != "Pin" && last.ident != "Box" {
                return None;
            }
            return type_arguments(&last.arguments).find_map(future_output_of);
        }
        _ => return None,
    };
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

/// The type arguments of a path segment: `T, E` of `Result<T, E>`.
fn type_arguments(arguments: &PathArguments) -> impl Iterator<Item = &Type> {
    let args = match arguments {
        PathArguments::AngleBracketed(args) => Some(args.args.iter()),
        _ => None,
    };
    args.into_iter().flatten().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// `async` is required; `const`, `unsafe` and `extern` are refused.
fn check_qualifiers(sig: &Signature, returns_future: bool, findings: &mut Findings) {
    if let Some(constness) = &sig.constness {
        findings.push(
            Fallback::Mended,
            Error::new_spanned(constness, "`#[task]` functions cannot be `const fn`"),
        );
    }
    if sig.asyncness.is_none() {
        // Without `async`, the task's signature is not written out; but the fix this error asks
        // for gives it, so the function is expanded as if fixed, and call sites are checked as
        // they will be once it is. A sync body is a valid async body, and a future it returns
        // is awaited (see `mend`).
        let message = if returns_future {
            "`#[task]` functions must be `async fn`: write `async fn` here, and return the \
             future's `Output` type instead of a future"
        } else {
            "`#[task]` functions must be `async fn`: write `async fn` here"
        };
        findings.push(Fallback::Mended, Error::new(sig.fn_token.span, message));
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        // Not mended: without `unsafe`, the body's unsafe operations would be reported too.
        findings.push(
            Fallback::Handle,
            Error::new_spanned(
                unsafety,
                "`#[task]` functions cannot be `unsafe`: workers call them with arguments \
                 taken from the wire and cannot uphold a safety contract",
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        findings.push(
            Fallback::Mended,
            Error::new_spanned(abi, "`#[task]` functions cannot have an `extern` ABI"),
        );
    }
}

/// Type, lifetime and const parameters, and where clauses, are refused.
fn check_generics(sig: &Signature, findings: &mut Findings) {
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
        findings.push(
            Fallback::Handle,
            Error::new_spanned(
                generics,
                format!("`#[task]` functions cannot be generic: {kind}"),
            ),
        );
    } else if let Some(where_clause) = &generics.where_clause {
        findings.push(
            Fallback::Handle,
            Error::new_spanned(
                where_clause,
                "`#[task]` functions cannot be generic: remove the `where` clause",
            ),
        );
    }
}

/// Arguments must be plain names: the names are the task's keyword-argument names.
///
/// Mended with a stand-in name: the argument's type is fine, so the whole task can be
/// generated.
fn check_pattern(pat: &Pat, findings: &mut Findings) {
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
    findings.push(Fallback::Mended, Error::new_spanned(pat, message));
}

/// The return type must be owned and nameable.
fn check_output(output: &ReturnType, findings: &mut Findings) {
    let ReturnType::Type(_, ty) = output else {
        return;
    };
    let mut impl_traits = Borrows::new(Position::ImplTraitOnly);
    impl_traits.visit_type(ty);
    if !impl_traits.errors.is_empty() {
        findings.extend(Fallback::Handle, impl_traits.errors);
        findings.opaque_output = true;
        return;
    }
    let value = match output_shape(output) {
        Output::Unit | Output::Opaque => return,
        Output::Plain(ty) => ty,
        // Only `T` must be owned: `E` may well be `&'static str`.
        Output::Result { ok: Some(ok), .. } => ok,
        Output::Result { ok: None, .. } => return,
    };
    let mut borrows = Borrows::new(Position::Output);
    borrows.visit_type(&value);
    findings.extend(Fallback::Handle, borrows.errors);
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
                let mut types = type_arguments(&last.arguments).cloned();
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

    fn visit_type_fn_ptr(&mut self, _: &'ast syn::TypeFnPtr) {}

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
    use quote::{quote, ToTokens};

    fn errors(func: ItemFn) -> Vec<String> {
        match check_signature(&func.sig).errors.finish() {
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
            Output::Opaque => "opaque".to_owned(),
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

    fn fallback(func: ItemFn) -> Fallback {
        check_signature(&func.sig).fallback
    }

    fn check_fn(item: TokenStream) -> (Validated, usize) {
        let mut errors = Errors::default();
        let validated = check(TaskArgs::default(), item, &mut errors);
        let count = errors.finish().err().map_or(0, |e| e.into_iter().count());
        (validated, count)
    }

    #[test]
    fn each_mistake_leaves_the_closest_valid_expansion() {
        let mended: [ItemFn; 5] = [
            parse_quote!(
                fn f(x: u8) -> u8 {
                    x
                }
            ),
            parse_quote!(
                const fn f() {}
            ),
            parse_quote!(
                async extern "C" fn f() {}
            ),
            parse_quote!(
                async fn f((a, b): (u8, u8)) {}
            ),
            parse_quote!(
                async fn f(_: u8) {}
            ),
        ];
        for func in mended {
            assert_eq!(
                fallback(func.clone()),
                Fallback::Mended,
                "{}",
                quote!(#func)
            );
        }
        let handle_only: [ItemFn; 9] = [
            parse_quote!(
                async unsafe fn f() {}
            ),
            parse_quote!(
                async fn f<T>(x: Vec<T>) {}
            ),
            parse_quote!(
                async fn f<'a>(x: Cow<'a, str>) {}
            ),
            parse_quote!(
                async fn f()
                where
                    u8: Copy,
                {
                }
            ),
            parse_quote!(
                async fn f(x: &str) {}
            ),
            parse_quote!(
                async fn f(x: impl Clone) {}
            ),
            parse_quote!(
                async fn f(#[cfg(test)] x: u8) {}
            ),
            parse_quote!(
                async fn f() -> &'static str {
                    ""
                }
            ),
            parse_quote!(
                async fn f() -> impl Serialize {
                    1
                }
            ),
        ];
        for func in handle_only {
            assert_eq!(
                fallback(func.clone()),
                Fallback::Handle,
                "{}",
                quote!(#func)
            );
        }
        assert_eq!(
            fallback(parse_quote!(
                async fn f(&self, x: &str) {}
            )),
            Fallback::AsWritten
        );
    }

    #[test]
    fn mended_signatures_give_the_whole_task() {
        let (validated, errors) = check_fn(quote! {
            const extern "C" fn f((a, b): (u8, u8), c: u8) -> u8 { a + b + c }
        });
        assert_eq!(errors, 4);
        let Validated::Task(task) = validated else {
            panic!("expected the whole task");
        };
        let sig = &task.func.sig;
        assert!(sig.asyncness.is_some() && sig.constness.is_none() && sig.abi.is_none());
        let names: Vec<String> = task.args.iter().map(|a| a.ident.to_string()).collect();
        assert_eq!(names, ["__taskq_arg_0", "c"]);
        assert!(matches!(task.output, Output::Plain(_)));
    }

    #[test]
    fn unnameable_results_leave_a_handle_with_an_opaque_output() {
        let (validated, errors) = check_fn(quote! {
            async fn f(#[cfg(test)] x: u8) -> Result<impl Serialize, E> { Ok(1) }
        });
        assert_eq!(errors, 2);
        let Validated::Handle(task) = validated else {
            panic!("expected the handle only");
        };
        assert!(matches!(task.output, Output::Opaque));
        assert_eq!(task.args[0].cfg.len(), 1);
    }

    #[test]
    fn methods_and_other_items_are_left_as_written() {
        for item in [
            quote! { async fn send(&self, to: String) {} },
            quote! { struct S; },
            quote! { async fn f() -> },
        ] {
            let (validated, errors) = check_fn(item.clone());
            assert_eq!(errors, 1, "{item}");
            let Validated::AsWritten(tokens) = validated else {
                panic!("expected {item} as written");
            };
            assert_eq!(tokens.to_string(), item.to_string());
        }
    }

    #[test]
    fn a_sync_function_returning_a_future_becomes_the_async_fn_of_its_output() {
        let (validated, count) = check_fn(quote! {
            fn f(x: u8) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
                Box::pin(async move { Ok(x) })
            }
        });
        assert_eq!(count, 1);
        let Validated::Task(task) = validated else {
            panic!("expected the whole task");
        };
        let func = &task.func;
        assert_eq!(
            func.sig.output.to_token_stream().to_string(),
            quote!(-> Result<u8, String>).to_string()
        );
        assert!(matches!(task.output, Output::Result { ok: Some(_), .. }));
        let awaited: syn::Block = parse_quote!({
            fn f(x: u8) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
                Box::pin(async move { Ok(x) })
            }
            f(x).await
        });
        assert_eq!(
            func.block.to_token_stream().to_string(),
            awaited.to_token_stream().to_string()
        );
        let message = errors(parse_quote!(
            fn f() -> impl Future<Output = u8> {
                async { 1 }
            }
        ));
        assert_eq!(message.len(), 1, "{message:#?}");
        assert!(message[0].contains("return the future's `Output` type"));
        // The output is checked as the task's result.
        let message = errors(parse_quote!(
            fn f() -> impl Future<Output = &'static str> {
                async { "" }
            }
        ));
        assert_eq!(message.len(), 2, "{message:#?}");
        assert!(message[1].starts_with("a task's result is serialized"));
    }
}
