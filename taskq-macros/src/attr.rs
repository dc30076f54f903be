//! The attribute's options: `#[task(name = "...", queue = "...", ignore_result, time_limit = 30,
//! soft_time_limit = 20, max_retries = 3, retry_backoff = 1, retry_if = ..., rate_limit = "10/s",
//! unique_for = 300, crate = "...")]`.
//!
//! Parsing is lenient where it can be: a misspelt key, a repeated key or a bad value is
//! recorded as an error and parsing goes on, so that every mistake in the attribute is reported
//! at once and the valid options still take effect. Only broken syntax (a missing `,` or `=`)
//! stops it.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Error, Ident, Lit, LitBool, LitInt, LitStr, Path, Token};

use crate::model::{Errors, Rate, RetryIf, Seconds, TaskArgs};

/// The option keys, as custom keywords (`crate` is a real keyword: `Token![crate]`).
pub(crate) mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(queue);
    syn::custom_keyword!(ignore_result);
    syn::custom_keyword!(time_limit);
    syn::custom_keyword!(soft_time_limit);
    syn::custom_keyword!(max_retries);
    syn::custom_keyword!(retry_backoff);
    syn::custom_keyword!(retry_if);
    syn::custom_keyword!(rate_limit);
    syn::custom_keyword!(unique_for);
}

/// Every accepted key, in the order the documentation lists them.
pub(crate) const KEYS: [&str; 11] = [
    "name",
    "queue",
    "ignore_result",
    "time_limit",
    "soft_time_limit",
    "max_retries",
    "retry_backoff",
    "retry_if",
    "rate_limit",
    "unique_for",
    "crate",
];

/// Parses the attribute's options: the valid ones, and every mistake found.
///
/// Broken syntax leaves no option to trust, so it gives the defaults (the task is still
/// generated, so that call sites are not reported too).
pub(crate) fn parse(args: TokenStream) -> (TaskArgs, Errors) {
    let lenient = |input: ParseStream<'_>| TaskArgs::parse_lenient(input);
    lenient.parse2(args).unwrap_or_else(|error| {
        let mut errors = Errors::default();
        errors.push(error);
        (TaskArgs::default(), errors)
    })
}

impl Parse for TaskArgs {
    /// Strict parsing: any mistake is an error.
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (args, errors) = Self::parse_lenient(input)?;
        errors.finish()?;
        Ok(args)
    }
}

impl TaskArgs {
    /// Parses every option, keeping the valid ones, and returns the mistakes next to them.
    ///
    /// Fails outright only on broken syntax.
    pub(crate) fn parse_lenient(input: ParseStream<'_>) -> syn::Result<(Self, Errors)> {
        let mut args = Self::default();
        let mut errors = Errors::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                let value = parse_value(input, "name", key.span)?;
                let lit = value.and_then(|v| errors.keep(string_value("name", &v)));
                set(&mut args.name, lit, "name", key.span, &mut errors);
            } else if lookahead.peek(kw::queue) {
                let key: kw::queue = input.parse()?;
                let value = parse_value(input, "queue", key.span)?;
                let lit = value.and_then(|v| errors.keep(string_value("queue", &v)));
                set(&mut args.queue, lit, "queue", key.span, &mut errors);
            } else if lookahead.peek(kw::ignore_result) {
                let key: kw::ignore_result = input.parse()?;
                let flag = if input.peek(Token![=]) {
                    let value = parse_value(input, "ignore_result", key.span)?;
                    value.and_then(|v| errors.keep(bool_value(&v)))
                } else {
                    Some(LitBool::new(true, key.span))
                };
                set(
                    &mut args.ignore_result,
                    flag,
                    "ignore_result",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::time_limit) {
                let key: kw::time_limit = input.parse()?;
                let value = parse_value(input, "time_limit", key.span)?;
                let limit = value.and_then(|v| errors.keep(seconds_value("time_limit", &v)));
                set(
                    &mut args.time_limit,
                    limit,
                    "time_limit",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::soft_time_limit) {
                let key: kw::soft_time_limit = input.parse()?;
                let value = parse_value(input, "soft_time_limit", key.span)?;
                let limit = value.and_then(|v| errors.keep(seconds_value("soft_time_limit", &v)));
                set(
                    &mut args.soft_time_limit,
                    limit,
                    "soft_time_limit",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::max_retries) {
                let key: kw::max_retries = input.parse()?;
                let value = parse_value(input, "max_retries", key.span)?;
                let count = value.and_then(|v| errors.keep(count_value("max_retries", &v)));
                set(
                    &mut args.max_retries,
                    count,
                    "max_retries",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::retry_backoff) {
                let key: kw::retry_backoff = input.parse()?;
                let value = parse_value(input, "retry_backoff", key.span)?;
                let delay = value.and_then(|v| errors.keep(seconds_value("retry_backoff", &v)));
                set(
                    &mut args.retry_backoff,
                    delay,
                    "retry_backoff",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::retry_if) {
                let key: kw::retry_if = input.parse()?;
                let value = parse_value(input, "retry_if", key.span)?;
                let matcher = value.and_then(|v| errors.keep(syn::parse2::<syn::Expr>(v)));
                let retry_if = matcher.map(|matcher| RetryIf {
                    key: key.span,
                    matcher,
                });
                set(
                    &mut args.retry_if,
                    retry_if,
                    "retry_if",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::rate_limit) {
                let key: kw::rate_limit = input.parse()?;
                let value = parse_value(input, "rate_limit", key.span)?;
                let rate = value.and_then(|v| errors.keep(rate_value(&v)));
                set(
                    &mut args.rate_limit,
                    rate,
                    "rate_limit",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(kw::unique_for) {
                let key: kw::unique_for = input.parse()?;
                let value = parse_value(input, "unique_for", key.span)?;
                let secs = value.and_then(|v| errors.keep(seconds_value("unique_for", &v)));
                set(
                    &mut args.unique_for,
                    secs,
                    "unique_for",
                    key.span,
                    &mut errors,
                );
            } else if lookahead.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                let value = parse_value(input, "crate", key.span)?;
                let path = value.and_then(|v| errors.keep(crate_value(&v)));
                set(&mut args.krate, path, "crate", key.span, &mut errors);
            } else if input.peek(Ident::peek_any) {
                let key = Ident::parse_any(input)?;
                errors.push(unknown_key(&key));
                if input.peek(Token![=]) {
                    parse_value(input, "", key.span())?;
                }
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        if let Err(error) = args.check_limits_in_order() {
            errors.push(error);
            args.soft_time_limit = None;
        }
        Ok((args, errors))
    }

    /// The soft limit warns the task before the hard one stops it, so it must come first: a
    /// soft limit at or past the hard one could never fire. Reported at the soft limit's value.
    fn check_limits_in_order(&self) -> syn::Result<()> {
        let (Some(soft), Some(hard)) = (&self.soft_time_limit, &self.time_limit) else {
            return Ok(());
        };
        if soft.secs < hard.secs {
            return Ok(());
        }
        Err(Error::new(
            soft.span,
            format!(
                "`soft_time_limit` ({} s) must be below `time_limit` ({} s): the soft limit \
                 tells the task to wind down before the hard limit stops it",
                soft.secs, hard.secs
            ),
        ))
    }
}

/// Stores an option's value; a second occurrence of a key is an error at that occurrence.
fn set<T>(slot: &mut Option<T>, value: Option<T>, key: &str, at: Span, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(Error::new(
            at,
            format!("duplicate option `{key}`: each option may be given only once"),
        ));
    } else {
        *slot = value;
    }
}

/// Parses `= <tokens up to the next top-level comma>`; `None` if the value is missing, which is
/// recorded as an error at the key.
fn parse_value(input: ParseStream<'_>, key: &str, at: Span) -> syn::Result<Option<TokenStream>> {
    if !input.peek(Token![=]) {
        if input.is_empty() || input.peek(Token![,]) {
            return Err(Error::new(
                at,
                format!("option `{key}` needs a value: `{key} = ...`"),
            ));
        }
        // Let syn say what it expected instead of what is there.
        input.parse::<Token![=]>()?;
    }
    let eq: Token![=] = input.parse()?;
    let mut value = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        value.extend([input.parse::<TokenTree>()?]);
    }
    if value.is_empty() {
        return Err(Error::new(
            eq.span,
            format!("option `{key}` is missing its value after `=`"),
        ));
    }
    Ok(Some(value))
}

/// The error for a key that is not an option, with a suggestion when one is close.
fn unknown_key(key: &Ident) -> Error {
    let given = key.unraw().to_string();
    let accepted = KEYS.map(|k| format!("`{k}`")).join(", ");
    let message = match suggestion(&given) {
        Some(close) => format!(
            "unknown `#[task]` option `{given}`: did you mean `{close}`? \
             Accepted options are: {accepted}"
        ),
        None => format!("unknown `#[task]` option `{given}`; accepted options are: {accepted}"),
    };
    Error::new(key.span(), message)
}

/// A key the user probably meant, if any.
fn suggestion(given: &str) -> Option<&'static str> {
    const ALIASES: [(&str, &str); 18] = [
        ("autoretry_for", "retry_if"),
        ("retry_on", "retry_if"),
        ("retry_when", "retry_if"),
        ("retries", "max_retries"),
        ("backoff", "retry_backoff"),
        ("retry_delay", "retry_backoff"),
        ("timeout", "time_limit"),
        ("time_limit_secs", "time_limit"),
        ("timelimit", "time_limit"),
        ("soft_limit", "soft_time_limit"),
        ("soft_timeout", "soft_time_limit"),
        ("queue_name", "queue"),
        ("ratelimit", "rate_limit"),
        ("rate", "rate_limit"),
        ("unique", "unique_for"),
        ("deduplicate", "unique_for"),
        ("task_name", "name"),
        ("krate", "crate"),
    ];
    if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| *alias == given) {
        return Some(key);
    }
    KEYS.into_iter()
        .map(|key| (edit_distance(given, key), key))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Parses `value` as exactly one `T`: `Ok(None)` if it does not start with a `T`, an error if
/// something follows the `T` (most likely a forgotten `,`).
fn exactly<T: Parse>(value: &TokenStream) -> syn::Result<Option<T>> {
    let parser = |input: ParseStream<'_>| {
        if input.fork().parse::<T>().is_err() {
            input.parse::<TokenStream>()?;
            return Ok(None);
        }
        let parsed: T = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("expected `,` before the next option"));
        }
        Ok(Some(parsed))
    };
    parser.parse2(value.clone())
}

/// `name = "..."` / `queue = "..."`: a non-empty string literal.
pub(crate) fn string_value(key: &str, value: &TokenStream) -> syn::Result<LitStr> {
    let example = if key == "queue" {
        "reports"
    } else {
        "tasks.add"
    };
    let Some(lit) = exactly::<LitStr>(value)? else {
        return Err(Error::new_spanned(
            value,
            format!("option `{key}` must be a string literal, e.g. `{key} = \"{example}\"`"),
        ));
    };
    if lit.value().trim().is_empty() {
        return Err(Error::new(
            lit.span(),
            format!("option `{key}` must not be empty"),
        ));
    }
    Ok(lit)
}

/// `ignore_result = true|false`.
pub(crate) fn bool_value(value: &TokenStream) -> syn::Result<LitBool> {
    exactly::<LitBool>(value)?.ok_or_else(|| {
        Error::new_spanned(
            value,
            "option `ignore_result` takes `true` or `false` (or no value, meaning `true`)",
        )
    })
}

/// `time_limit = 30` / `retry_backoff = 2.5`: a positive, finite number of seconds.
pub(crate) fn seconds_value(option: &str, value: &TokenStream) -> syn::Result<Seconds> {
    let expected = format!(
        "option `{option}` must be a positive number of seconds, \
         e.g. `{option} = 30` or `{option} = 2.5`"
    );
    let secs = match exactly::<Lit>(value)? {
        Some(Lit::Int(int)) => int.base10_parse::<f64>(),
        Some(Lit::Float(float)) => float.base10_parse::<f64>(),
        _ => return Err(Error::new_spanned(value, expected)),
    }
    .map_err(|_| Error::new_spanned(value, &expected))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::new_spanned(value, expected));
    }
    Ok(Seconds {
        secs,
        span: value.span(),
    })
}

/// `rate_limit = "10/s"`: Celery's syntax (`/s`, `/m`, `/h`; a bare number is per second),
/// above zero (no limit is no option).
pub(crate) fn rate_value(value: &TokenStream) -> syn::Result<Rate> {
    const EXPECTED: &str = "option `rate_limit` must be a rate in Celery's syntax, e.g. \
                            `rate_limit = \"10/s\"`, `\"100/m\"` or `\"2/h\"`";
    let Some(lit) = exactly::<LitStr>(value)? else {
        return Err(Error::new_spanned(value, EXPECTED));
    };
    let text = lit.value();
    let (count, unit) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(Error::new(lit.span(), EXPECTED)),
    };
    match count.trim().parse::<f64>() {
        Ok(count) if count.is_finite() && count > 0.0 => Ok(Rate {
            per_second: count / seconds,
            span: lit.span(),
        }),
        Ok(0.0) => Err(Error::new(
            lit.span(),
            "a `rate_limit` of zero means no limit: leave the option out instead",
        )),
        _ => Err(Error::new(lit.span(), EXPECTED)),
    }
}

/// `max_retries = 3`: a whole number from 0 up.
pub(crate) fn count_value(option: &str, value: &TokenStream) -> syn::Result<LitInt> {
    let expected = format!("option `{option}` must be a whole number, e.g. `{option} = 3`");
    match exactly::<Lit>(value)? {
        Some(Lit::Int(int)) if int.base10_parse::<u32>().is_ok() => Ok(int),
        _ => Err(Error::new_spanned(value, expected)),
    }
}

/// `crate = "path::to::taskq"` (a bare path is accepted as well).
pub(crate) fn crate_value(value: &TokenStream) -> syn::Result<Path> {
    const EXPECTED: &str = "option `crate` must be the path of the taskq crate as a string, \
                            e.g. `crate = \"::my_app::taskq\"`";
    if let Some(lit) = exactly::<LitStr>(value)? {
        return lit
            .parse::<Path>()
            .map_err(|_| Error::new(lit.span(), EXPECTED));
    }
    exactly::<Path>(value)?.ok_or_else(|| Error::new_spanned(value, EXPECTED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: TokenStream) -> syn::Result<TaskArgs> {
        syn::parse2(tokens)
    }

    fn error(tokens: TokenStream) -> String {
        match parse(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    #[test]
    fn no_options_is_all_defaults() {
        let args = parse(quote!()).unwrap();
        assert!(args.name.is_none() && args.queue.is_none() && args.krate.is_none());
        assert!(args.ignore_result.is_none() && args.time_limit.is_none());
    }

    #[test]
    fn every_option_parses() {
        let args = parse(quote! {
            name = "tasks.add",
            queue = "math",
            ignore_result,
            time_limit = 2.5,
            crate = "::my_app::taskq",
        })
        .unwrap();
        assert_eq!(args.name.unwrap().value(), "tasks.add");
        assert_eq!(args.queue.unwrap().value(), "math");
        assert!(args.ignore_result.unwrap().value);
        assert_eq!(args.time_limit.unwrap().secs, 2.5);
        let path = args.krate.unwrap();
        assert_eq!(
            quote! { #path }.to_string(),
            quote! { ::my_app::taskq }.to_string()
        );
    }

    #[test]
    fn ignore_result_takes_an_optional_bool() {
        let args = parse(quote! { ignore_result = false }).unwrap();
        assert!(!args.ignore_result.unwrap().value);
        let args = parse(quote! { ignore_result = true }).unwrap();
        assert!(args.ignore_result.unwrap().value);
        assert!(error(quote! { ignore_result = 1 }).contains("takes `true` or `false`"));
    }

    #[test]
    fn time_limit_accepts_integers_and_floats() {
        let secs = |tokens| parse(tokens).unwrap().time_limit.unwrap().secs;
        assert_eq!(secs(quote! { time_limit = 30 }), 30.0);
        assert_eq!(secs(quote! { time_limit = 30u64 }), 30.0);
        assert_eq!(secs(quote! { time_limit = 0.5 }), 0.5);
    }

    #[test]
    fn soft_time_limit_must_be_below_the_hard_one() {
        let args = parse(quote! { soft_time_limit = 1, time_limit = 10 }).unwrap();
        assert_eq!(args.soft_time_limit.unwrap().secs, 1.0);
        assert_eq!(
            parse(quote! { soft_time_limit = 0.5 })
                .unwrap()
                .soft_time_limit
                .unwrap()
                .secs,
            0.5
        );
        for tokens in [
            quote! { time_limit = 5, soft_time_limit = 5 },
            quote! { soft_time_limit = 10, time_limit = 2.5 },
        ] {
            assert!(error(tokens).contains("must be below `time_limit`"));
        }
        assert!(error(quote! { soft_limit = 3 }).contains("did you mean `soft_time_limit`?"));
    }

    #[test]
    fn time_limit_must_be_a_positive_number() {
        for bad in [
            quote! { time_limit = 0 },
            quote! { time_limit = -3 },
            quote! { time_limit = "30" },
            quote! { time_limit = 0.0 },
            quote! { time_limit = 1e999 },
            quote! { time_limit = secs },
        ] {
            let message = error(bad);
            assert!(
                message.contains("must be a positive number of seconds"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_crate_path_can_also_be_written_bare() {
        let path = parse(quote! { crate = my_app::taskq }).unwrap().krate;
        let path = path.unwrap();
        assert_eq!(
            quote! { #path }.to_string(),
            quote! { my_app::taskq }.to_string()
        );
        assert!(error(quote! { crate = "not a path" }).contains("path of the taskq crate"));
    }

    #[test]
    fn names_and_queues_must_be_non_empty_strings() {
        assert_eq!(
            error(quote! { name = tasks.add }),
            "option `name` must be a string literal, e.g. `name = \"tasks.add\"`"
        );
        assert!(error(quote! { queue = 5 }).contains("option `queue` must be a string literal"));
        assert_eq!(
            error(quote! { name = "" }),
            "option `name` must not be empty"
        );
    }

    #[test]
    fn retry_options_parse_and_reject_bad_values() {
        let args = parse(quote! { max_retries = 5, retry_backoff = 0.25 }).unwrap();
        assert_eq!(args.max_retries.unwrap().base10_digits(), "5");
        assert_eq!(args.retry_backoff.unwrap().secs, 0.25);
        assert!(error(quote! { max_retries = -1 }).contains("must be a whole number"));
        assert!(error(quote! { max_retries = 2.5 }).contains("must be a whole number"));
        assert!(error(quote! { retry_backoff = 0 }).contains("positive number of seconds"));
        let args = parse(quote! { retry_if = |e| e.is_timeout(), max_retries = 1 }).unwrap();
        assert!(matches!(
            args.retry_if.unwrap().matcher,
            syn::Expr::Closure(_)
        ));
    }

    #[test]
    fn rate_limits_read_celery_syntax() {
        let per_second = |tokens| parse(tokens).unwrap().rate_limit.unwrap().per_second;
        assert_eq!(per_second(quote! { rate_limit = "10/s" }), 10.0);
        assert_eq!(per_second(quote! { rate_limit = "120/m" }), 2.0);
        assert_eq!(per_second(quote! { rate_limit = "3600/h" }), 1.0);
        assert_eq!(per_second(quote! { rate_limit = "4" }), 4.0);
        assert!(error(quote! { rate_limit = 10 }).contains("Celery's syntax"));
        assert!(error(quote! { rate_limit = "10/d" }).contains("Celery's syntax"));
        assert!(error(quote! { rate_limit = "0/s" }).contains("leave the option out"));
        assert!(error(quote! { ratelimit = "1/s" }).contains("did you mean `rate_limit`?"));
        let args = parse(quote! { unique_for = 300 }).unwrap();
        assert_eq!(args.unique_for.unwrap().secs, 300.0);
        assert!(error(quote! { unique_for = "5m" }).contains("positive number of seconds"));
    }

    #[test]
    fn unknown_keys_list_the_accepted_ones() {
        assert_eq!(
            error(quote! { priority = 3 }),
            "unknown `#[task]` option `priority`; accepted options are: \
             `name`, `queue`, `ignore_result`, `time_limit`, `soft_time_limit`, `max_retries`, \
             `retry_backoff`, `retry_if`, `rate_limit`, `unique_for`, `crate`"
        );
        assert!(error(quote! { retries = 3 }).contains("did you mean `max_retries`?"));
        assert!(error(quote! { autoretry_for = x }).contains("did you mean `retry_if`?"));
        assert!(error(quote! { qeue = "x" }).starts_with(
            "unknown `#[task]` option `qeue`: did you mean `queue`? Accepted options are: `name`,"
        ));
        assert!(error(quote! { timeout = 3 }).contains("did you mean `time_limit`?"));
        assert!(!error(quote! { bind }).contains("did you mean"));
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_occurrence() {
        let tokens = quote! { queue = "a", queue = "b" };
        let err = parse(tokens).err().unwrap();
        assert_eq!(
            err.to_string(),
            "duplicate option `queue`: each option may be given only once"
        );
    }

    #[test]
    fn every_mistake_is_reported_and_valid_options_are_kept() {
        let parser = |input: ParseStream<'_>| TaskArgs::parse_lenient(input);
        let (args, errors) = syn::parse::Parser::parse2(
            parser,
            quote! { name = 1, queue = "q", timeout = 3, queue = "again", time_limit = 0 },
        )
        .unwrap();
        assert_eq!(args.queue.unwrap().value(), "q");
        assert!(args.name.is_none() && args.time_limit.is_none());
        assert_eq!(errors.finish().unwrap_err().into_iter().count(), 4);
    }

    #[test]
    fn broken_syntax_is_an_error() {
        assert!(error(quote! { name "x" }).contains("expected `=`"));
        assert!(error(quote! { name }).contains("option `name` needs a value"));
        assert!(error(quote! { name = }).contains("missing its value"));
        assert!(error(quote! { queue = "a" name = "b" }).contains("expected `,`"));
        assert!(error(quote! { "x" }).contains("expected one of"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("queue", "queue"), 0);
        assert_eq!(edit_distance("qeue", "queue"), 1);
        assert_eq!(edit_distance("nmae", "name"), 2);
        assert_eq!(edit_distance("", "crate"), 5);
    }
}
