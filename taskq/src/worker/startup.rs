//! What a worker checks and reports before it says "ready": that Redis answers (with the
//! worker's credentials), and what is wrong with its task registry for the queues it consumes.
//! Every mistake a new user makes here otherwise shows as a worker that is "ready" and then
//! logs errors forever, or runs nothing.

use std::time::Duration;

use crate::config::mask_url;
use crate::registry::{self, TaskEntry};
use crate::{Client, Config, Error, Result};

/// Celery's start-up retry (`broker_connection_retry_on_startup` with kombu's defaults): up
/// to [`CONNECT_TRIES`] tries, waiting 2 s, 4 s, 6 s, ... up to 30 s between them, about 48
/// minutes in all. A Redis started at the same moment (a compose file), or restarted during a
/// deploy, is waited for, loudly; a wrong password fails at once.
const CONNECT_TRIES: u32 = 100;
const FIRST_WAIT: Duration = Duration::from_secs(2);
const WAIT_STEP: Duration = Duration::from_secs(2);
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// The wait after failed try `tried` (1-based).
fn wait_after(tried: u32) -> Duration {
    (FIRST_WAIT + WAIT_STEP * (tried - 1)).min(LONGEST_WAIT)
}

/// Pings the broker and reads from the result store, until both answer. Fails at once when
/// Redis refuses the credentials (retrying cannot fix a wrong password or a user without
/// permission), and after [`CONNECT_TRIES`] tries when Redis cannot be reached, each failed
/// try logged; the errors name the store's address with its password masked.
pub(super) async fn check_redis(client: &Client) -> Result<()> {
    let config = client.config();
    let mut tried = 0;
    loop {
        let broker = client.broker().ping().await.err();
        // Any id: reading a result is the cheapest call the result store has.
        let backend = client.backend().get("taskq-credentials-check").await.err();
        let failure = [
            ("broker", &config.broker_url, broker),
            ("result store", &config.result_backend, backend),
        ]
        .into_iter()
        .find_map(|(store, url, error)| error.map(|e| (store, mask_url(url), e)));
        let Some((store, address, error)) = failure else {
            return Ok(());
        };
        if let Error::Config(why) = &error {
            // Not a passing fault (a cluster node, a bad URL): no try will fix it.
            return Err(Error::Config(format!("the {store} at {address}: {why}")));
        }
        if let Error::Redis(e) = &error {
            if refuses_credentials(e) {
                return Err(Error::Config(format!(
                    "the {store} at {address} refused this worker's credentials ({e}): check \
                     the user and password in its URL"
                )));
            }
        }
        tried += 1;
        if tried >= CONNECT_TRIES {
            return Err(Error::Config(format!(
                "cannot reach the {store} at {address} after {tried} tries: {error}"
            )));
        }
        let wait = wait_after(tried);
        tracing::error!(
            "cannot reach the {store} at {address}: {error}; trying again in {} s \
             ({tried}/{CONNECT_TRIES})",
            wait.as_secs()
        );
        tokio::time::sleep(wait).await;
    }
}

/// Whether Redis refused the connection's credentials or their permissions.
fn refuses_credentials(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// What a worker reports at start about its tasks: each line is logged as a warning.
pub(super) fn registry_warnings(config: &Config) -> Vec<String> {
    warnings_for(&registry::all(), registry::duplicates(), config)
}

/// The warnings for `tasks` (the registry), `duplicates` (pairs registered under one name,
/// the kept one first) and the queues `config` consumes.
fn warnings_for(
    tasks: &[&TaskEntry],
    duplicates: &[[&TaskEntry; 2]],
    config: &Config,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if tasks.is_empty() {
        warnings.push(
            "no tasks registered: the worker binary must reference the task crate/module, \
             e.g. `let _ = &my_tasks::send_email;` in main (a #[taskq::task] registers itself \
             only when the linker keeps its crate), so every message will fail as NotRegistered"
                .to_owned(),
        );
    }
    for [kept, ignored] in duplicates {
        warnings.push(format!(
            "two tasks are registered under the name {:?}: {} and {}; this worker runs {} only \
             (rename one with #[taskq::task(name = \"...\")])",
            kept.name,
            kept.origin(),
            ignored.origin(),
            kept.origin()
        ));
    }
    // One line per queue, naming its tasks: a binary that links every task of a fleet
    // whose workers split the queues would otherwise repeat a line per task at each start.
    let mut unconsumed: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for task in tasks {
        let queue = task.options.queue.unwrap_or(&config.default_queue);
        if !config.queues.iter().any(|q| q == queue) {
            unconsumed.entry(queue).or_default().push(task.name);
        }
    }
    let consumed = config.queues.join(",");
    for (queue, names) in unconsumed {
        warnings.push(format!(
            "queue {queue:?} is not consumed by this worker (it consumes {consumed}), yet \
             tasks registered here are sent to it: {}; add it with -Q/--queues \
             {consumed},{queue} (or TASKQ_QUEUES), or their calls wait for another worker",
            names.join(", ")
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RawArgs;
    use crate::task::{BoxFuture, TaskOptions};
    use crate::TaskFailure;

    fn run(_: RawArgs) -> BoxFuture<std::result::Result<crate::protocol::RawJson, TaskFailure>> {
        Box::pin(async { Err(TaskFailure::panic("unused")) })
    }

    fn entry(name: &'static str, function: &'static str, queue: Option<&'static str>) -> TaskEntry {
        let options = match queue {
            Some(queue) => TaskOptions::new().queue(queue),
            None => TaskOptions::new(),
        };
        TaskEntry {
            name,
            arg_names: &[],
            options,
            run,
            function,
        }
    }

    #[test]
    fn an_empty_registry_says_how_to_link_tasks() {
        let warnings = warnings_for(&[], &[], &Config::default());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with(
            "no tasks registered: the worker binary must reference the task crate/module"
        ));
    }

    #[test]
    fn a_task_on_a_queue_not_consumed_is_named_with_the_flag_to_add() {
        let report = entry("tasks.report", "app::report", Some("reports"));
        let add = entry("tasks.add", "app::add", None);
        let stats = entry("tasks.stats", "app::stats", Some("reports"));
        let warnings = warnings_for(&[&report, &add, &stats], &[], &Config::default());
        assert_eq!(warnings.len(), 1, "one line per queue: {warnings:?}");
        assert!(
            warnings[0].starts_with(
                "queue \"reports\" is not consumed by this worker (it consumes celery), yet tasks \
             registered here are sent to it: tasks.report, tasks.stats; add it with \
             -Q/--queues celery,reports"
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn duplicate_names_name_both_functions() {
        let a = entry("tasks.same", "app::a::same", None);
        let b = entry("tasks.same", "app::b::same", None);
        let warnings = warnings_for(&[&a], &[[&a, &b]], &Config::default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("app::a::same and app::b::same"),
            "{warnings:?}"
        );
    }
}
