//! The worker's node name, as `celery inspect`, Flower and events show it: Celery's `-n`
//! templates (`%h`, `%n`, `%d`), and a default that is unique per worker, so that several
//! workers on one host are several nodes, not one that answers many times.

use std::sync::atomic::{AtomicU32, Ordering};

/// Workers built in this process so far, to tell them apart.
static WORKERS: AtomicU32 = AtomicU32::new(0);

/// The name of a new worker on `host`: `template` filled in, or by default
/// `taskq-<pid>@<host>` (`taskq-<pid>-<k>@<host>` for the k-th worker of a process).
pub(super) fn for_new_worker(template: Option<&str>, host: &str) -> String {
    let k = WORKERS.fetch_add(1, Ordering::Relaxed) + 1;
    match template {
        Some(template) => expand(template, host),
        None if k == 1 => format!("taskq-{}@{host}", std::process::id()),
        None => format!("taskq-{}-{k}@{host}", std::process::id()),
    }
}

/// Celery's `--hostname` template: `%h` the host name with its domain, `%n` the host name
/// alone, `%d` the domain, `%%` a `%`. A name without `@` gets `@<host>`, so it stays a node
/// name Celery's tools can split.
pub(super) fn expand(template: &str, host: &str) -> String {
    let (short, domain) = host.split_once('.').unwrap_or((host, ""));
    let mut name = String::with_capacity(template.len() + host.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            name.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => name.push_str(host),
            Some('n') => name.push_str(short),
            Some('d') => name.push_str(domain),
            Some('%') => name.push('%'),
            Some(other) => {
                name.push('%');
                name.push(other);
            }
            None => name.push('%'),
        }
    }
    if !name.contains('@') {
        name = format!("{name}@{host}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_templates_are_filled_in() {
        let host = "web-3.prod.example.com";
        assert_eq!(expand("reports@%h", host), "reports@web-3.prod.example.com");
        assert_eq!(expand("w1@%n", host), "w1@web-3");
        assert_eq!(
            expand("%n.%d", host),
            "web-3.prod.example.com@web-3.prod.example.com"
        );
        assert_eq!(expand("a%%b@%n", host), "a%b@web-3");
        assert_eq!(expand("plain", "h"), "plain@h");
        assert_eq!(expand("odd%x@%n", "h"), "odd%x@h");
    }

    #[test]
    fn default_names_differ_between_workers_and_processes() {
        let first = for_new_worker(None, "h");
        let second = for_new_worker(None, "h");
        assert_ne!(first, second);
        let pid = std::process::id().to_string();
        assert!(first.starts_with(&format!("taskq-{pid}")) && first.ends_with("@h"));
        assert_eq!(for_new_worker(Some("x@%h"), "h"), "x@h");
    }
}
