//! The answers that describe the worker (`celery inspect …`): what it holds, its statistics,
//! its queues and its settings.

use serde_json::Value;

use super::super::Shared;
use super::{reply as json, task_ids};
use crate::config::DEFAULT_MAX_MESSAGE_SIZE;
use crate::keys::DEFAULT_PRIORITY_STEPS;
use crate::protocol::{raw_object, RawJson, RawObject};

/// `query_task`: `{id: [state, request info]}` for each id this worker runs, has reserved or
/// has parked (ETA); unknown ids are left out, as in Celery.
pub(super) fn query_task(shared: &Shared, arguments: &Value) -> RawObject {
    let hostname = shared.settings.hostname.as_str();
    let now = shared.broker_now();
    let mut found = RawObject::new();
    for id in task_ids(arguments.get("ids")) {
        let state = match shared.running_tasks.find(&id, hostname) {
            Some(info) => Some(("active", info)),
            None => shared.requests.find(&id, hostname, now),
        };
        if let Some((state, info)) = state {
            found.set(id, &(state, info));
        }
    }
    found
}

/// `stats`, with the pool's size now and, when autoscaling, Celery's `autoscaler` entry.
pub(super) fn stats(shared: &Shared) -> RawObject {
    let config = shared.config();
    let mut stats = raw_object! {
        "total" => shared.running_tasks.totals(),
        "pid" => std::process::id(),
        "clock" => shared.tick().to_string(),
        "uptime" => shared.started.elapsed().as_secs(),
        "pool" => raw_object! {
            "implementation" => "taskq:tokio",
            "max-concurrency" => shared.pool.size(),
            "processes" => [std::process::id()],
            "max-tasks-per-child" => "N/A",
            "put-guarded-by-semaphore" => false,
            "timeouts" => [0, 0],
        },
        "broker" => broker_info(&config.broker_url),
        "prefetch_count" => shared.pool.reservations(),
        "rusage" => RawObject::new(),
        "sw_ident" => "taskq",
        "sw_ver" => env!("CARGO_PKG_VERSION"),
    };
    if let Some(autoscaler) = &shared.autoscaler {
        stats.set(
            "autoscaler",
            &autoscaler.info(&shared.pool, shared.tasks_held()),
        );
    }
    stats
}

/// The broker connection as Celery's `stats` describes it (no password).
pub(super) fn broker_info(url: &str) -> RawObject {
    let parsed = url::Url::parse(url).ok();
    let scheme = parsed.as_ref().map_or("redis", url::Url::scheme);
    let host = parsed.as_ref().and_then(url::Url::host_str).unwrap_or("");
    let port = parsed.as_ref().and_then(url::Url::port).unwrap_or(6379);
    let db = parsed
        .as_ref()
        .map(|u| u.path().trim_start_matches('/'))
        .filter(|db| !db.is_empty())
        .unwrap_or("0");
    raw_object! {
        "hostname" => host,
        "userid" => (),
        "virtual_host" => db,
        "port" => port,
        "insist" => false,
        "ssl" => scheme == "rediss",
        "transport" => scheme,
        "connect_timeout" => 4,
        "transport_options" => RawObject::new(),
        "login_method" => (),
        "uri_prefix" => (),
        "heartbeat" => 120.0,
        "failover_strategy" => "round-robin",
        "alternates" => [(); 0],
    }
}

/// `active_queues`: the queues consumed now (paused ones included: they are still this
/// worker's), as kombu's `Queue.as_dict`.
pub(super) fn active_queues(shared: &Shared) -> Vec<RawObject> {
    shared.queues.consumed().iter().map(queue_dict).collect()
}

fn queue_dict(q: &String) -> RawObject {
    raw_object! {
        "name" => q,
        "exchange" => raw_object! {"name" => q, "type" => "direct", "arguments" => (),
            "durable" => true, "passive" => false, "auto_delete" => false,
            "delivery_mode" => (), "no_declare" => false},
        "routing_key" => q,
        "queue_arguments" => (), "binding_arguments" => (), "consumer_arguments" => (),
        "durable" => true, "exclusive" => false, "auto_delete" => false, "no_ack" => false,
        "alias" => (), "bindings" => [(); 0], "no_declare" => (), "expires" => (),
        "message_ttl" => (), "max_length" => (), "max_length_bytes" => (),
        "max_priority" => (),
    }
}

/// Celery's mask for secrets in `conf` (`filter_hidden_settings`).
const MASK: &str = "********";

/// `conf`: the worker's settings under Celery's names; by default only those that differ
/// from Celery's defaults (`with_defaults`: all of them), secrets masked as Celery masks them.
pub(super) fn conf(shared: &Shared, arguments: &Value) -> RawObject {
    let with_defaults = truthy(arguments.get("with_defaults"));
    let mut table = RawObject::new();
    for (name, value, celery_default) in settings(shared) {
        if with_defaults || celery_default.as_ref() != Some(&value) {
            table.insert(name, value);
        }
    }
    table
}

/// Celery's `strtobool` as the CLI applies it, or a JSON boolean.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "yes" | "t" | "true" | "on" | "1"
        ),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

/// Each setting: Celery's name, taskq's value, and Celery's default (`None`: Celery has none
/// that taskq could match, so it is always listed).
fn settings(shared: &Shared) -> Vec<(&'static str, RawJson, Option<RawJson>)> {
    let config = shared.config();
    let steps = raw_object! {"priority_steps" => config.priority_steps};
    let default_steps = raw_object! {"priority_steps" => DEFAULT_PRIORITY_STEPS};
    vec![
        ("broker_url", json(&masked(&config.broker_url)), None),
        (
            "result_backend",
            json(&masked(&config.result_backend)),
            None,
        ),
        (
            "result_expires",
            json(&config.result_expires.map(|d| d.as_secs())),
            Some(json(&86_400)),
        ),
        (
            "task_default_queue",
            json(&config.default_queue),
            Some(json(&"celery")),
        ),
        ("worker_concurrency", json(&config.concurrency), None),
        (
            "worker_prefetch_multiplier",
            json(&config.prefetch_multiplier),
            Some(json(&4)),
        ),
        // taskq acknowledges a message only once its result is stored, always.
        ("task_acks_late", json(&true), Some(json(&false))),
        (
            "task_track_started",
            json(&config.track_started),
            Some(json(&false)),
        ),
        (
            "result_extended",
            json(&config.result_extended),
            Some(json(&false)),
        ),
        (
            "worker_send_task_events",
            json(&shared.events.enabled()),
            Some(json(&false)),
        ),
        (
            "broker_transport_options",
            steps.to_raw(),
            Some(default_steps.to_raw()),
        ),
        (
            "taskq_max_message_size",
            json(&config.max_message_size),
            Some(json(&DEFAULT_MAX_MESSAGE_SIZE)),
        ),
    ]
}

/// A URL with its password replaced by Celery's mask, as `conf` shows `broker_url` and
/// `result_backend` (`redis://:********@host:6379/0`).
fn masked(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some(MASK)) {
            Ok(()) => parsed.into(),
            Err(()) => MASK.to_owned(),
        },
        Ok(_) => url.to_owned(),
        Err(_) if url.contains('@') => MASK.to_owned(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn urls_are_masked_as_celery_masks_them() {
        assert_eq!(
            masked("redis://:hunter2@10.0.0.5:6390/3"),
            "redis://:********@10.0.0.5:6390/3"
        );
        assert_eq!(
            masked("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(masked("not a url@x"), MASK);
    }

    #[test]
    fn with_defaults_reads_celerys_strtobool() {
        assert!(truthy(Some(&json!("True"))) && truthy(Some(&json!(true))));
        assert!(!truthy(Some(&json!("false"))) && !truthy(None));
    }

    #[test]
    fn broker_info_names_host_port_and_db() {
        let info = broker_info("redis://:pw@10.0.0.5:6390/3").to_raw();
        assert!(info.as_str().starts_with(
            r#"{"hostname": "10.0.0.5", "userid": null, "virtual_host": "3", "port": 6390,"#
        ));
        let encoded = broker_info("rediss://app:p%40ss@cache.internal/0?ssl_cert_reqs=CERT_NONE")
            .to_raw()
            .to_value()
            .unwrap();
        assert_eq!(encoded["hostname"], "cache.internal");
        assert_eq!(
            (encoded["port"].as_u64(), encoded["ssl"].as_bool()),
            (Some(6379), Some(true))
        );
        let memory = broker_info("memory://").to_raw().to_value().unwrap();
        assert_eq!(memory["virtual_host"], "0");
    }
}
