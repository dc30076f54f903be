//! Configuration from the environment and a `.env` file.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TASKQ_BROKER_URL` (or `CELERY_BROKER_URL`) | `redis://127.0.0.1:6379/0` | broker: `redis://`, `rediss://`, `sentinel://` (Celery's form, see the README), `memory://` |
//! | `TASKQ_RESULT_BACKEND` (or `CELERY_RESULT_BACKEND`) | the broker URL | result store, same schemes |
//! | `TASKQ_RESULT_EXPIRES` | `86400` | seconds results are kept; `0` keeps them forever |
//! | `TASKQ_DEFAULT_QUEUE` | `celery` | queue for tasks that name none |
//! | `TASKQ_CONCURRENCY` | `100` ([`DEFAULT_CONCURRENCY`]) | tasks a worker runs at once (async tasks: not a number of processes) |
//! | `TASKQ_QUEUES` | the default queue | comma-separated queues a worker consumes |
//! | `TASKQ_PREFETCH_MULTIPLIER` | `4` | messages a worker reserves per execution slot |
//! | `TASKQ_SHUTDOWN_GRACE` | `30` | seconds running tasks get to finish on SIGTERM |
//! | `TASKQ_TRACK_STARTED` | `false` | store a STARTED state when a task starts |
//! | `TASKQ_RESULT_EXTENDED` | `false` | Celery's `result_extended`: results also record the task's name, arguments, worker, retries and queue |
//! | `TASKQ_REQUIRE_NOEVICTION` | `false` | refuse to start a worker unless Redis's `maxmemory-policy` is `noeviction` |
//! | `TASKQ_MAX_RECOVERIES` | `5` | crashes (worker lost while running the task) after which the message is dead-lettered |
//! | `TASKQ_VISIBILITY_TIMEOUT` | `30` | seconds a killed or frozen taskq worker's messages stay claimed before recovery returns them to their queue (live workers renew their leases) |
//! | `TASKQ_CELERY_VISIBILITY_TIMEOUT` | unset | taskq never takes back messages Python Celery workers hold (they renew no lease; kombu restores them); set it (at least their `visibility_timeout`) only when no Python worker is left to do that |
//! | `TASKQ_HOSTNAME` | `taskq-<pid>@<host>` | the worker's node name, Celery's `-n`: `%h` host name, `%n` without domain, `%d` domain |
//! | `TASKQ_SEND_EVENTS` | `false` | publish Celery events (`celeryev`) for Flower and `celery events` (Celery's `-E`) |
//! | `TASKQ_MAX_MESSAGE_SIZE` | `8388608` (8 MiB) | largest message in bytes, as stored and once decompressed: bigger ones are refused at send, and at fetch dead-lettered with FAILURE stored |
//! | `TASKQ_UNKNOWN_TASK_RETRIES` | `3` | times a worker puts back a task it does not know (another worker may) before failing it |
//! | `TASKQ_PRIORITY_STEPS` | `0,3,6,9` | kombu's `priority_steps` transport option: the priority buckets, each a Redis list; must match the Celery apps' |

use std::time::Duration;

use crate::backend::DEFAULT_RESULT_EXPIRES;
use crate::keys::DEFAULT_PRIORITY_STEPS;
use crate::{Error, Result};

/// The broker URL used when none is configured.
///
/// ```
/// assert_eq!(taskq::Config::default().broker_url, taskq::config::DEFAULT_BROKER_URL);
/// ```
pub const DEFAULT_BROKER_URL: &str = "redis://127.0.0.1:6379/0";

/// The default [`Config::concurrency`]: 100 tasks at once.
///
/// Celery's default, the number of CPUs, is a prefork habit: each slot there is a process,
/// and a process waiting on the network wastes a CPU's worth of capacity. taskq's tasks are
/// `async fn`s on one tokio runtime: a task waiting on I/O (HTTP, a database, a sleep) costs a
/// few kilobytes and no thread, so with one slot per CPU a worker whose tasks mostly wait sits
/// idle while its queue grows. 100 is the order of magnitude async workers use (Celery's own
/// gevent/eventlet pools are commonly run with `-c 100` or more) and what the drain benchmark
/// in `BENCHMARKS.md` was measured with against the CPU count. CPU-bound work does not get
/// faster with more slots than CPUs: set `-c`/`TASKQ_CONCURRENCY` to the CPU count for it
/// (or move it to `tokio::task::spawn_blocking`). A worker reserves concurrency × prefetch
/// (4) messages, 400 by default, each at most [`DEFAULT_MAX_MESSAGE_SIZE`].
///
/// ```
/// assert_eq!(taskq::Config::default().concurrency, taskq::config::DEFAULT_CONCURRENCY);
/// ```
pub const DEFAULT_CONCURRENCY: usize = 100;

/// The default [`Config::max_message_size`]: 8 MiB. Celery sets no limit, and its users do
/// send arguments of a few megabytes (2 MB of JSON is a 2.7 MB envelope, the body being
/// base64): 8 MiB takes about 6 MB of JSON arguments. Redis would take up to 512 MB, but a
/// worker holds up to its prefetch (concurrency × 4) messages at once, so the limit bounds
/// its memory: 32 messages of 8 MiB at concurrency 8 (lower the concurrency, or this limit, for
/// workers of large messages: the default concurrency, 100, reserves 400). Larger data belongs in storage, passed
/// to the task by reference.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 << 20;

/// taskq's settings.
///
/// ```
/// use taskq::Config;
///
/// let config = Config::from_lookup(|name| match name {
///     "TASKQ_BROKER_URL" => Some("memory://".into()),
///     "TASKQ_QUEUES" => Some("celery, reports".into()),
///     _ => None,
/// })
/// .unwrap();
/// assert_eq!(config.result_backend, "memory://");
/// assert_eq!(config.queues, ["celery", "reports"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Broker URL.
    pub broker_url: String,
    /// Whether the broker URL was set explicitly (rather than defaulted).
    pub broker_url_is_explicit: bool,
    /// Result store URL.
    pub result_backend: String,
    /// How long results are kept; `None` keeps them forever.
    pub result_expires: Option<Duration>,
    /// Queue for tasks that name none.
    pub default_queue: String,
    /// Workers' node name template, Celery's `-n`: `%h` (host name), `%n` (host name without
    /// its domain), `%d` (domain). `None`: `taskq-<pid>@<host>`, unique per worker.
    pub worker_name: Option<String>,
    /// Tasks a worker runs at once: [`DEFAULT_CONCURRENCY`] (100) unless `TASKQ_CONCURRENCY`
    /// says otherwise, since tasks are `async` (see there why, and when to use the CPU count).
    pub concurrency: usize,
    /// Queues a worker consumes.
    pub queues: Vec<String>,
    /// Messages a worker reserves per execution slot.
    pub prefetch_multiplier: usize,
    /// How long running tasks get to finish on shutdown before they are put back.
    pub shutdown_grace: Duration,
    /// Whether workers store a STARTED state.
    pub track_started: bool,
    /// Celery's `result_extended`: whether the records workers store also carry the task's
    /// name, arguments, keyword arguments, worker, retries and queue (see
    /// [`ExtendedFields`](crate::state::ExtendedFields)), which Python's `AsyncResult.name`,
    /// `.args` and `.kwargs` read. Off by default, as in Celery: arguments can be large.
    pub result_extended: bool,
    /// Whether workers publish Celery events (`celeryev`).
    pub send_events: bool,
    /// Where a worker serves its Prometheus metrics (`GET /metrics`), e.g. `127.0.0.1:9808`;
    /// `None`, the default: no metrics are kept or served (`TASKQ_METRICS_ADDR`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long the messages of a taskq worker that stopped renewing its leases (it died or
    /// froze) stay claimed before recovery returns them to their queue. Live workers renew
    /// theirs, so long tasks are never taken from them, however long they run.
    pub visibility_timeout: Duration,
    /// Whether, and after how long, taskq's recovery returns messages held by Python Celery
    /// workers (which hold no taskq lease). `None`, the default: never; kombu's restore in
    /// the Python workers does it with their own `visibility_timeout`, which only they know.
    /// Set it (to at least the Python workers' `visibility_timeout`) only for a fleet whose
    /// Python workers are gone for good.
    pub celery_visibility_timeout: Option<Duration>,
    /// After how many crashes (its worker died or froze while running its task) a message is
    /// no longer run but stored as FAILURE (`WorkerLostError`) and dead-lettered. Messages a
    /// dead worker only held (prefetched) do not count.
    pub max_recoveries: u32,
    /// Refuse to start a worker when the broker's `maxmemory-policy` is not `noeviction`
    /// (by default it only warns).
    pub require_noeviction: bool,
    /// The largest message, in bytes, that a client sends or a worker takes. A send of a
    /// bigger one fails with [`Error::MessageTooLarge`] and
    /// writes nothing; a bigger one found in a queue (from another producer) goes to the
    /// dead-letter list without reaching the worker's memory, and its caller gets a FAILURE
    /// (`MessageTooLarge`). A compressed body may decompress to this size at most.
    pub max_message_size: usize,
    /// How many times a worker puts back a task it does not know, with backoff, before it
    /// stores FAILURE (`NotRegistered`) and dead-letters the message.
    pub unknown_task_retries: u32,
    /// kombu's `priority_steps` (`broker_transport_options`): each step is a priority bucket
    /// with a Redis list of its own; default `[0, 3, 6, 9]`. Use the same steps as the
    /// Celery apps sharing the broker, or their messages wait in lists no taskq worker reads.
    pub priority_steps: Vec<u8>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            broker_url: DEFAULT_BROKER_URL.to_owned(),
            broker_url_is_explicit: false,
            result_backend: DEFAULT_BROKER_URL.to_owned(),
            result_expires: Some(DEFAULT_RESULT_EXPIRES),
            default_queue: "celery".to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
            queues: vec!["celery".to_owned()],
            prefetch_multiplier: 4,
            shutdown_grace: Duration::from_secs(30),
            track_started: false,
            result_extended: false,
            send_events: false,
            metrics_addr: None,
            worker_name: None,
            unknown_task_retries: 3,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            visibility_timeout: Duration::from_secs(30),
            celery_visibility_timeout: None,
            max_recoveries: 5,
            require_noeviction: false,
            priority_steps: DEFAULT_PRIORITY_STEPS.to_vec(),
        }
    }
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory (or a
    /// parent) if there is one. Variables already set win over `.env`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a value does not parse.
    ///
    /// ```no_run
    /// let config = taskq::Config::from_env()?;
    /// println!("broker: {}", taskq::config::mask_url(&config.broker_url));
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name → its value).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a value does not parse.
    ///
    /// ```
    /// let config = taskq::Config::from_lookup(|name| (name == "TASKQ_CONCURRENCY").then(|| "8".to_owned()))?;
    /// assert_eq!(config.concurrency, 8);
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |names: &[&str]| {
            names.iter().find_map(|n| {
                lookup(n)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        let mut config = Config::default();
        if let Some(url) = get(&["TASKQ_BROKER_URL", "CELERY_BROKER_URL"]) {
            config.broker_url = url;
            config.broker_url_is_explicit = true;
        }
        config.result_backend = get(&["TASKQ_RESULT_BACKEND", "CELERY_RESULT_BACKEND"])
            .unwrap_or_else(|| config.broker_url.clone());
        if let Some(secs) = get(&["TASKQ_RESULT_EXPIRES"]) {
            let secs: u64 = parse("TASKQ_RESULT_EXPIRES", &secs)?;
            config.result_expires = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(queue) = get(&["TASKQ_DEFAULT_QUEUE"]) {
            config.default_queue = queue;
        }
        config.queues = match get(&["TASKQ_QUEUES"]) {
            Some(list) => parse_queues(&list)?,
            None => vec![config.default_queue.clone()],
        };
        if let Some(n) = get(&["TASKQ_CONCURRENCY"]) {
            config.concurrency = parse_positive("TASKQ_CONCURRENCY", &n)?;
        }
        if let Some(n) = get(&["TASKQ_PREFETCH_MULTIPLIER"]) {
            config.prefetch_multiplier = parse_positive("TASKQ_PREFETCH_MULTIPLIER", &n)?;
        }
        if let Some(secs) = get(&["TASKQ_SHUTDOWN_GRACE"]) {
            config.shutdown_grace = Duration::from_secs_f64(parse("TASKQ_SHUTDOWN_GRACE", &secs)?);
        }
        if let Some(secs) = get(&["TASKQ_VISIBILITY_TIMEOUT"]) {
            config.visibility_timeout = parse_positive_secs("TASKQ_VISIBILITY_TIMEOUT", &secs)?;
        }
        if let Some(secs) = get(&["TASKQ_CELERY_VISIBILITY_TIMEOUT"]) {
            config.celery_visibility_timeout = Some(parse_positive_secs(
                "TASKQ_CELERY_VISIBILITY_TIMEOUT",
                &secs,
            )?);
        }
        if let Some(n) = get(&["TASKQ_MAX_RECOVERIES"]) {
            config.max_recoveries = parse_positive("TASKQ_MAX_RECOVERIES", &n)? as u32;
        }
        if let Some(n) = get(&["TASKQ_MAX_MESSAGE_SIZE"]) {
            config.max_message_size = parse_positive("TASKQ_MAX_MESSAGE_SIZE", &n)?;
        }
        if let Some(n) = get(&["TASKQ_UNKNOWN_TASK_RETRIES"]) {
            config.unknown_task_retries = parse("TASKQ_UNKNOWN_TASK_RETRIES", &n)?;
        }
        if let Some(flag) = get(&["TASKQ_REQUIRE_NOEVICTION"]) {
            config.require_noeviction = parse_bool("TASKQ_REQUIRE_NOEVICTION", &flag)?;
        }
        if let Some(flag) = get(&["TASKQ_TRACK_STARTED"]) {
            config.track_started = parse_bool("TASKQ_TRACK_STARTED", &flag)?;
        }
        if let Some(flag) = get(&["TASKQ_RESULT_EXTENDED"]) {
            config.result_extended = parse_bool("TASKQ_RESULT_EXTENDED", &flag)?;
        }
        if let Some(flag) = get(&["TASKQ_SEND_EVENTS"]) {
            config.send_events = parse_bool("TASKQ_SEND_EVENTS", &flag)?;
        }
        if let Some(addr) = get(&["TASKQ_METRICS_ADDR"]) {
            config.metrics_addr = Some(parse_socket_addr("TASKQ_METRICS_ADDR", &addr)?);
        }
        if let Some(name) = get(&["TASKQ_HOSTNAME"]) {
            config.worker_name = Some(name);
        }
        if let Some(steps) = get(&["TASKQ_PRIORITY_STEPS"]) {
            config.priority_steps = parse_priority_steps(&steps)?;
        }
        Ok(config)
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| Error::Config(format!("{name}={value:?} is not a valid number")))
}

fn parse_positive(name: &str, value: &str) -> Result<usize> {
    match parse::<usize>(name, value)? {
        0 => Err(Error::Config(format!("{name} must be at least 1"))),
        n => Ok(n),
    }
}

fn parse_positive_secs(name: &str, value: &str) -> Result<Duration> {
    let secs: f64 = parse(name, value)?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::Config(format!(
            "{name} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `host:port` with an IP address, e.g. `127.0.0.1:9808` or `[::]:9808`.
pub(crate) fn parse_socket_addr(name: &str, value: &str) -> Result<std::net::SocketAddr> {
    value.trim().parse().map_err(|_| {
        Error::Config(format!(
            "{name} must be an address to listen on, like 127.0.0.1:9808 or 0.0.0.0:9808, not {value:?}"
        ))
    })
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!("{name}={value:?} is not a boolean"))),
    }
}

/// `0,5,7` (or kombu's list spelling `[0, 5, 7]`): priorities 0–9, strictly ascending from 0,
/// as kombu needs them for its bucket lookup.
fn parse_priority_steps(list: &str) -> Result<Vec<u8>> {
    let name = "TASKQ_PRIORITY_STEPS";
    let steps = list
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|step| parse::<u8>(name, step.trim()))
        .collect::<Result<Vec<u8>>>()?;
    let ascending = steps.windows(2).all(|pair| pair[0] < pair[1]);
    if steps.first() != Some(&0) || !ascending || steps.iter().any(|s| *s > 9) {
        return Err(Error::Config(format!(
            "{name}={list:?} must be priorities 0-9 in ascending order, starting with 0"
        )));
    }
    Ok(steps)
}

fn parse_queues(list: &str) -> Result<Vec<String>> {
    let queues: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .collect();
    if queues.is_empty() {
        return Err(Error::Config(format!(
            "TASKQ_QUEUES={list:?} names no queue"
        )));
    }
    Ok(queues)
}

/// Hides the password in a URL: `redis://user:secret@host/0` → `redis://user:**@host/0`.
/// The URL is parsed (a percent-encoded `@` or `:` in the password is part of it); one that
/// does not parse but holds credentials shows only its scheme.
///
/// ```
/// assert_eq!(taskq::config::mask_url("redis://:hunter2@127.0.0.1:6379/0"), "redis://:**@127.0.0.1:6379/0");
/// assert_eq!(taskq::config::mask_url("redis://app:p%40ss%3Aw@h:6379/0"), "redis://app:**@h:6379/0");
/// assert_eq!(taskq::config::mask_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
/// assert_eq!(
///     taskq::config::mask_url("sentinel://:pw@s1:26379;sentinel://s2:26379?master_name=m&sentinel_password=sp"),
///     "sentinel://:**@s1:26379;sentinel://s2:26379?master_name=m&sentinel_password=**",
/// );
/// ```
pub fn mask_url(url: &str) -> String {
    if url.starts_with("sentinel://") {
        // One URL per sentinel, and the sentinels' own password as a parameter.
        let parts: Vec<String> = url.split(';').map(mask_one_url).collect();
        return parts.join(";");
    }
    if crate::cluster::is_cluster_url(url) {
        return mask_cluster_url(url);
    }
    mask_one_url(url)
}

/// A cluster URL's hosts are a list, which no URL parser reads: the password is found by hand,
/// between the scheme and the last `@` before the hosts.
fn mask_cluster_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:**{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn mask_one_url(url: &str) -> String {
    let url = match url.split_once("sentinel_password=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |at| &after[at..]);
            format!("{before}sentinel_password=**{rest}")
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("**")).is_ok() {
                return parsed.into();
            }
            url.to_owned()
        }
        Err(_) if url.contains('@') => {
            let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
            format!("{scheme}://** (unparsable URL hidden)")
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_match_celery() {
        let c = config(&[]).unwrap();
        assert_eq!(c.broker_url, DEFAULT_BROKER_URL);
        assert_eq!(c.result_backend, DEFAULT_BROKER_URL);
        assert_eq!(c.result_expires, Some(Duration::from_secs(86_400)));
        assert_eq!(c.queues, ["celery"]);
        assert!(!c.broker_url_is_explicit);
        assert_eq!(c.concurrency, 100, "async tasks: not one slot per CPU");
        assert!(!c.result_extended, "off, as Celery's result_extended");
    }

    #[test]
    fn result_extended_is_a_boolean_setting() {
        let on = config(&[("TASKQ_RESULT_EXTENDED", "true")]).unwrap();
        assert!(on.result_extended);
        assert!(config(&[("TASKQ_RESULT_EXTENDED", "sometimes")]).is_err());
    }

    #[test]
    fn celery_names_are_accepted_and_taskq_names_win() {
        let c = config(&[
            ("CELERY_BROKER_URL", "redis://a/1"),
            ("CELERY_RESULT_BACKEND", "redis://b/2"),
        ])
        .unwrap();
        assert_eq!(
            (c.broker_url.as_str(), c.result_backend.as_str()),
            ("redis://a/1", "redis://b/2")
        );
        let c = config(&[
            ("CELERY_BROKER_URL", "redis://a/1"),
            ("TASKQ_BROKER_URL", "redis://c/3"),
        ])
        .unwrap();
        assert_eq!(c.broker_url, "redis://c/3");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = config(&[("TASKQ_CONCURRENCY", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TASKQ_CONCURRENCY=\"lots\""), "{err}");
        assert!(config(&[("TASKQ_CONCURRENCY", "0")]).is_err());
        assert!(config(&[("TASKQ_QUEUES", " , ")]).is_err());
        assert_eq!(
            config(&[("TASKQ_RESULT_EXPIRES", "0")])
                .unwrap()
                .result_expires,
            None
        );
    }

    #[test]
    fn priority_steps_read_like_kombus_option() {
        let steps =
            |text: &str| config(&[("TASKQ_PRIORITY_STEPS", text)]).map(|c| c.priority_steps);
        assert_eq!(config(&[]).unwrap().priority_steps, [0, 3, 6, 9]);
        assert_eq!(steps("0,5,7").unwrap(), [0, 5, 7]);
        assert_eq!(
            steps("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]").unwrap(),
            (0..=9).collect::<Vec<u8>>()
        );
        for bad in ["5,7", "0,7,5", "0,0", "0,10", "0,x"] {
            assert!(steps(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_passwords_with_users() {
        assert_eq!(
            mask_url("rediss://app:pw@h:6380/2"),
            "rediss://app:**@h:6380/2"
        );
        assert_eq!(mask_url("memory://"), "memory://");
        assert_eq!(
            mask_url("redis+cluster://app:p@ss@h1:7000,h2:7001?shards=3"),
            "redis+cluster://app:**@h1:7000,h2:7001?shards=3"
        );
        assert_eq!(
            mask_url("rediss+cluster://h1:7000"),
            "rediss+cluster://h1:7000"
        );
    }
}
