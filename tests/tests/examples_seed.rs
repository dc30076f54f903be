//! End-to-end tests of the two example binaries of `taskq-examples`, driven the way a user
//! would drive them with curl:
//!
//! * `fastapi_like` (the web app) and `worker` as separate processes on a private Redis,
//! * `fastapi_like` alone on `memory://`, running its tasks in-process.
//!
//! Every test starts its own `redis-server`, runs the binaries in a fresh temporary directory
//! (so `notification.log` lands there), captures their stdout/stderr to files in that
//! directory and prints the tails of those files when the test fails.
//!
//! The binaries must be built first: `cargo build -p taskq-examples --examples` (which
//! `cargo test --workspace` does on its own).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use taskq_tests::keys;

use base64::Engine as _;
use serde_json::{json, Value};
use taskq_tests::worker::{assert_nothing_unacked, meta_key, query};
use taskq_tests::{example_binary, file_tail, free_port, port_is_open, ChildGuard, RedisServer};
use tempfile::TempDir;

/// How long a binary gets to start listening / print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Generous upper bound for any single HTTP request to the web app.
const MAX_REQUEST_TIME: Duration = Duration::from_millis(500);

/// The push endpoint must answer well before its task (seconds long) could finish.
const MAX_PUSH_TIME: Duration = Duration::from_millis(200);

/// Pause between two polls of `/task-status/{id}`.
const POLL_EVERY: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Running an example binary
// ---------------------------------------------------------------------------

/// A running example binary, its output captured in files. When the test panics, dropping
/// it prints the tails of those files; the process is then killed by its `ChildGuard`.
struct Example {
    name: &'static str,
    child: ChildGuard,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Example {
    /// Starts example `name` in `dir` with `envs`. Any `TASKQ_*` / `CELERY_*` variable of the
    /// test's own environment is removed first, so only what the test sets counts.
    fn spawn(name: &'static str, dir: &Path, envs: &[(&str, String)]) -> Example {
        let stdout = dir.join(format!("{name}.stdout.txt"));
        let stderr = dir.join(format!("{name}.stderr.txt"));
        let out = File::create(&stdout)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", stdout.display()));
        let err = File::create(&stderr)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", stderr.display()));
        let mut cmd = Command::new(example_binary(name));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("TASKQ_") || key.starts_with("CELERY_") {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.current_dir(dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Example {
            name,
            child: ChildGuard::spawn(&mut cmd),
            stdout,
            stderr,
        }
    }

    fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The tails of both output files, for failure messages.
    fn logs(&self) -> String {
        format!(
            "----- {name} stdout (tail) -----\n{}\n----- {name} stderr (tail) -----\n{}\n-----",
            file_tail(&self.stdout, 40),
            file_tail(&self.stderr, 40),
            name = self.name,
        )
    }

    /// Polls `condition` until it holds; panics (with the logs) if the process exits or
    /// `timeout` passes first.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return;
            }
            if let Some(status) = self.child.try_wait() {
                panic!("{} exited ({status}) while waiting for {what}", self.name);
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} ({})",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_port(&mut self, port: u16) {
        self.wait_for(
            &format!("the web app to listen on 127.0.0.1:{port}"),
            START_TIMEOUT,
            |_| port_is_open(port),
        );
    }

    fn wait_for_stdout(&mut self, needle: &str) {
        self.wait_for(&format!("{needle:?} on stdout"), START_TIMEOUT, |me| {
            me.stdout_text().contains(needle)
        });
    }

    /// Waits for a log line containing `needle`, on stdout or stderr (`init_tracing` writes
    /// its logs to stdout today although its documentation says stderr).
    fn wait_for_log(&mut self, needle: &str) {
        self.wait_for(&format!("{needle:?} in the logs"), START_TIMEOUT, |me| {
            me.stdout_text().contains(needle) || me.stderr_text().contains(needle)
        });
    }

    /// Sends `signal` ("INT", "TERM") and waits up to `timeout` for the process to exit;
    /// returns its status and how long after the signal it exited. Panics if it still runs.
    fn stop_with(&mut self, signal: &str, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.child.signal(signal);
        match self.child.wait_timeout(timeout) {
            Some(status) => (status, started.elapsed()),
            None => panic!("{} still runs {timeout:?} after the signal", self.name),
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A fresh working directory for the binaries.
fn work_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("taskq-examples-seed-")
        .tempdir()
        .expect("cannot create a temp dir")
}

/// Environment for either binary on the Redis at `url`.
fn redis_env(url: &str, delay_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("TASKQ_BROKER_URL", url.to_owned()),
        ("TASKQ_RESULT_BACKEND", url.to_owned()),
        ("TASKQ_EXAMPLE_DELAY_MS", delay_ms.to_string()),
        ("TASKQ_CONCURRENCY", "4".to_owned()),
        ("TASKQ_QUEUES", "celery".to_owned()),
        ("TASKQ_SHUTDOWN_GRACE", "1".to_owned()),
    ]
}

/// Starts the web app on a free port and waits until it listens.
fn start_web(dir: &Path, mut envs: Vec<(&'static str, String)>) -> (Example, u16) {
    let port = free_port();
    envs.push(("PORT", port.to_string()));
    let mut web = Example::spawn("fastapi_like", dir, &envs);
    web.wait_for_port(port);
    (web, port)
}

/// Starts the worker and waits until it is ready (it then answers pings).
fn start_worker(dir: &Path, envs: &[(&'static str, String)]) -> Example {
    let mut worker = Example::spawn("worker", dir, envs);
    worker.wait_for_stdout("[tasks]");
    worker.wait_for_log("worker ready");
    worker
}

fn notification_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("notification.log")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A small blocking HTTP client for the web app that records how long each request took.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    /// (endpoint, wall time) of every request made.
    timings: Vec<(&'static str, Duration)>,
}

impl Http {
    fn new(port: u16) -> Http {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cannot build a tokio runtime");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("cannot build an HTTP client");
        Http {
            rt,
            client,
            base: format!("http://127.0.0.1:{port}"),
            timings: Vec::new(),
        }
    }

    /// Sends one request, checks for a 2xx JSON answer, and returns the body and the wall
    /// time of the request.
    fn request(
        &mut self,
        endpoint: &'static str,
        method: reqwest::Method,
        path: &str,
    ) -> (Value, Duration) {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let sent = self.rt.block_on(async {
            let response = self.client.request(method.clone(), &url).send().await?;
            let status = response.status();
            let text = response.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        });
        let took = started.elapsed();
        let (status, text) = sent.unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} answered non-JSON ({e}): {text}"));
        self.timings.push((endpoint, took));
        (body, took)
    }

    fn push(&mut self, token: &str) -> (Value, Duration) {
        self.request(
            "GET /push/{device_token}",
            reqwest::Method::GET,
            &format!("/push/{token}"),
        )
    }

    fn start_report(&mut self, user_id: u64) -> (Value, Duration) {
        self.request(
            "POST /start-report/{user_id}",
            reqwest::Method::POST,
            &format!("/start-report/{user_id}"),
        )
    }

    fn start_campaign(&mut self, devices: u32) -> (Value, Duration) {
        self.request(
            "POST /campaign/{devices}",
            reqwest::Method::POST,
            &format!("/campaign/{devices}"),
        )
    }

    fn status(&mut self, task_id: &str) -> Value {
        self.request(
            "GET /task-status/{task_id}",
            reqwest::Method::GET,
            &format!("/task-status/{task_id}"),
        )
        .0
    }

    /// Polls `/task-status/{task_id}` until the task is no longer PENDING.
    fn wait_finished(&mut self, task_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.status(task_id);
            if body != json!({"status": "PENDING"}) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} still PENDING after {timeout:?}"
            );
            thread::sleep(POLL_EVERY);
        }
    }

    /// Prints the measured request times per endpoint and checks that every request took
    /// less than `max`.
    fn check_timings(&self, max: Duration) {
        let mut endpoints: Vec<&'static str> = self.timings.iter().map(|(e, _)| *e).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        println!("request wall times ({} requests):", self.timings.len());
        for endpoint in endpoints {
            let mut times: Vec<Duration> = self
                .timings
                .iter()
                .filter(|(e, _)| *e == endpoint)
                .map(|(_, t)| *t)
                .collect();
            let all: Vec<String> = times.iter().take(12).map(|t| format!("{t:.1?}")).collect();
            let more = if times.len() > 12 { ", …" } else { "" };
            times.sort_unstable();
            println!(
                "  {endpoint:<30} n={:<3} min={:.1?} median={:.1?} max={:.1?}  [{}{more}]",
                times.len(),
                times[0],
                times[times.len() / 2],
                times[times.len() - 1],
                all.join(", ")
            );
        }
        for (endpoint, took) in &self.timings {
            assert!(*took < max, "{endpoint} took {took:?}, more than {max:?}");
        }
    }
}

/// The `task_id` of an answer: a non-empty string.
fn task_id_of(body: &Value) -> String {
    let id = body["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string task_id in {body}"));
    assert!(!id.is_empty(), "empty task_id in {body}");
    id.to_owned()
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// A hand-made Celery protocol-2 message, the minimal envelope kombu's Redis transport
/// accepts, for task `task` with id `id` and positional `args`.
fn celery_message(task: &str, id: &str, args: Value) -> String {
    let body = json!([
        args,
        {},
        {"callbacks": null, "errbacks": null, "chain": null, "chord": null}
    ]);
    let body = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    json!({
        "body": body,
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"task": task, "id": id},
        "properties": {
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "celery"}
        }
    })
    .to_string()
}

/// LPUSHes `message` onto the default queue, as a Celery producer does.
fn send_raw(server: &RedisServer, message: &str) {
    let _: i64 = redis::cmd("LPUSH")
        .arg("celery")
        .arg(message)
        .query(&mut server.connection())
        .expect("LPUSH celery failed");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The seed scenario with the web app and the worker as two processes on Redis.
#[test]
fn web_and_worker_on_redis_run_push_and_report() {
    let server = RedisServer::start();
    let dir = work_dir();
    let env = redis_env(&server.url(), 2000);
    let mut worker = start_worker(dir.path(), &env);
    let (mut web, port) = start_web(dir.path(), env);
    let mut http = Http::new(port);
    // The app found the worker, so it runs no tasks itself.
    let masked = server.url();
    web.wait_for_log(&format!(
        "broker {masked}: tasks run on 1 worker(s): taskq-"
    ));

    // Push: answered at once although the task takes 2 s.
    let token = format!("device-{}", uuid::Uuid::new_v4().simple());
    let pushed_at = Instant::now();
    let (push, push_took) = http.push(&token);
    assert_eq!(push["message"], "Notification sent", "{push}");
    let push_id = task_id_of(&push);
    assert!(
        push_took < MAX_PUSH_TIME,
        "GET /push took {push_took:?} (limit {MAX_PUSH_TIME:?})"
    );
    assert_eq!(http.status(&push_id), json!({"status": "PENDING"}));

    // Report: "processing" at once, PENDING until the worker is done.
    let (report, report_took) = http.start_report(42);
    assert_eq!(report["status"], "processing", "{report}");
    let report_id = task_id_of(&report);
    assert_ne!(report_id, push_id);
    assert!(report_took < MAX_REQUEST_TIME, "POST took {report_took:?}");
    assert_eq!(http.status(&report_id), json!({"status": "PENDING"}));

    // The worker finishes the push after its 2 s delay.
    let done = http.wait_finished(&push_id, Duration::from_secs(10));
    let push_done_after = pushed_at.elapsed();
    assert_eq!(done, json!({"status": "completed", "result": null}));
    assert!(
        push_done_after >= Duration::from_millis(1900),
        "the push task completed after {push_done_after:?}, before its 2 s delay"
    );
    let expected_line = format!("Successfully sent push notification to: {token}");
    let log = notification_log(dir.path());
    assert_eq!(
        log.lines().filter(|l| *l == expected_line).count(),
        1,
        "notification.log should hold {expected_line:?} once:\n{log}"
    );

    // And the report.
    let done = http.wait_finished(&report_id, Duration::from_secs(10));
    assert_eq!(done["status"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["user_id"], 42, "{done}");
    assert_eq!(result["status"], "completed", "{done}");
    let report_key = result["report_id"]
        .as_str()
        .unwrap_or_else(|| panic!("report_id is not a string: {done}"));
    assert!(!report_key.is_empty(), "empty report_id: {done}");

    // Both messages were acknowledged.
    worker.wait_for(
        "the broker queues to be empty",
        Duration::from_secs(5),
        |_| {
            query::<i64>(&server.url(), &["LLEN", "celery"]) == 0
                && query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]) == 0
        },
    );

    run_campaign(&mut http, dir.path());

    println!("push answered in {push_took:?}; its task completed after {push_done_after:?}");
    http.check_timings(MAX_REQUEST_TIME);

    // Both stop cleanly on Ctrl-C.
    let (status, took) = worker.stop_with("INT", Duration::from_secs(5));
    assert!(status.success(), "worker exited with {status} on SIGINT");
    println!("worker stopped {took:?} after SIGINT");
    let (status, _) = web.stop_with("INT", Duration::from_secs(5));
    assert!(
        status.success(),
        "fastapi_like exited with {status} on SIGINT"
    );
}

/// `POST /campaign/5`: five pushes in parallel, then one summary (a chord), answered at once;
/// the summary's status reads as its line, which `campaign.log` holds once.
fn run_campaign(http: &mut Http, dir: &Path) {
    let (campaign, took) = http.start_campaign(5);
    assert_eq!(campaign["status"], "processing", "{campaign}");
    assert!(took < MAX_REQUEST_TIME, "POST /campaign took {took:?}");
    let summary_id = task_id_of(&campaign);
    let done = http.wait_finished(&summary_id, Duration::from_secs(15));
    let line = "campaign done: 5 notifications sent";
    assert_eq!(done, json!({"status": "completed", "result": line}));
    let log = std::fs::read_to_string(dir.join("campaign.log")).unwrap_or_default();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [line],
        "campaign.log:\n{log}"
    );
    let pushes = notification_log(dir);
    for n in 1..=5 {
        let expected = format!("Successfully sent push notification to: device-{n}");
        assert!(
            pushes.lines().any(|l| l == expected),
            "{expected:?} missing:\n{pushes}"
        );
    }
}

/// A task that fails (here: an unknown task name) reads as `{"status": "failed", "error"}`.
#[test]
fn failed_task_reads_as_failed_with_its_error() {
    let server = RedisServer::start();
    let dir = work_dir();
    let mut env = redis_env(&server.url(), 300);
    // No other worker will ever know tasks.nope: fail it at once rather than after retries.
    env.push(("TASKQ_UNKNOWN_TASK_RETRIES", "0".to_owned()));
    let mut worker = start_worker(dir.path(), &env);
    let (_web, port) = start_web(dir.path(), env);
    let mut http = Http::new(port);

    let id = uuid::Uuid::new_v4().to_string();
    send_raw(&server, &celery_message("tasks.nope", &id, json!([])));

    let done = http.wait_finished(&id, Duration::from_secs(10));
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error is not a string: {done}"));
    assert!(
        error.contains("NotRegistered") || error.contains("tasks.nope"),
        "the error should name NotRegistered or tasks.nope: {done}"
    );
    assert_eq!(done.as_object().map(|o| o.len()), Some(2), "{done}");
    // The message does not stay in the queue or in the unacked set (the worker settles it
    // right after storing the result).
    worker.wait_for(
        "the message to leave celery and unacked",
        Duration::from_secs(5),
        |_| {
            query::<i64>(&server.url(), &["LLEN", "celery"]) == 0
                && query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]) == 0
        },
    );
    http.check_timings(MAX_REQUEST_TIME);
}

/// An id nobody sent reads as PENDING, as in Celery.
#[test]
fn unknown_task_id_reads_as_pending() {
    let server = RedisServer::start();
    let dir = work_dir();
    let (_web, port) = start_web(dir.path(), redis_env(&server.url(), 300));
    let mut http = Http::new(port);

    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(http.status(&id), json!({"status": "PENDING"}));
    assert_eq!(http.status("not-even-a-uuid"), json!({"status": "PENDING"}));
    http.check_timings(MAX_REQUEST_TIME);
}

/// The worker's banner, and SIGTERM during a long task: the task gets the grace period, then
/// its message goes back to the queue and the worker exits successfully.
#[test]
fn worker_banner_and_sigterm_puts_running_task_back() {
    // A password-protected ACL user, so the banner's URL has something to mask; the default
    // user stays password-less for the test's own connections.
    let server = RedisServer::start_with(&[
        "--user",
        "seeduser",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
    ]);
    let url = format!("redis://seeduser:s3cret-pw@127.0.0.1:{}/0", server.port());
    let masked = format!("redis://seeduser:**@127.0.0.1:{}/0", server.port());
    let dir = work_dir();
    let mut worker = start_worker(dir.path(), &redis_env(&url, 5000));

    let banner = worker.stdout_text();
    let tasks: Vec<&str> = banner
        .split("[tasks]")
        .nth(1)
        .unwrap_or("")
        .lines()
        .skip(1) // the rest of the "[tasks]" line
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches(". ").trim())
        .collect();
    for name in [
        "tasks.add",
        "tasks.generate_report",
        "tasks.send_push_notification",
    ] {
        assert!(
            tasks.contains(&name),
            "the banner's [tasks] should list {name}:\n{banner}"
        );
    }
    assert!(
        banner.contains(&format!("transport:   {masked}")),
        "the banner should show the masked transport URL {masked}:\n{banner}"
    );
    assert!(
        !banner.contains("s3cret-pw"),
        "the banner shows the password:\n{banner}"
    );

    // A long task, running.
    let id = uuid::Uuid::new_v4().to_string();
    send_raw(
        &server,
        &celery_message("tasks.send_push_notification", &id, json!(["tok-term"])),
    );
    worker.wait_for_log(&format!("[{id}] received"));
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 0);
    assert_eq!(
        query::<i64>(&server.url(), &["HLEN", &keys::broker().unacked()]),
        1
    );

    let (status, took) = worker.stop_with("TERM", Duration::from_secs(4));
    println!("worker exited {took:?} after SIGTERM (grace 1 s): {status}");
    assert!(status.success(), "worker exited with {status} on SIGTERM");
    assert!(
        took >= Duration::from_millis(900),
        "the worker exited after {took:?}, without giving the task its 1 s grace"
    );

    // The unfinished message is back in its queue, not in unacked, and has no result.
    assert_eq!(query::<i64>(&server.url(), &["LLEN", "celery"]), 1);
    assert_nothing_unacked(&server);
    let back: String = redis::cmd("LINDEX")
        .arg("celery")
        .arg(0)
        .query(&mut server.connection())
        .expect("LINDEX celery 0 failed");
    let back: Value = serde_json::from_str(&back).expect("the requeued message is not JSON");
    assert_eq!(back["headers"]["id"], id.as_str(), "{back}");
    assert_eq!(
        query::<i64>(&server.url(), &["EXISTS", &meta_key(&id)]),
        0,
        "a result was stored for the interrupted task"
    );
    assert_eq!(notification_log(dir.path()), "");
}

/// The README's first command on a machine whose Redis runs no worker: the app says so, runs
/// the tasks itself, and the report completes.
#[test]
fn web_on_redis_without_a_worker_runs_tasks_in_process_and_says_so() {
    let server = RedisServer::start();
    let dir = work_dir();
    let (mut web, port) = start_web(dir.path(), redis_env(&server.url(), 300));
    web.wait_for_log("no worker answered a ping, so this process runs the tasks too");
    let mut http = Http::new(port);
    let (report, _) = http.start_report(42);
    let report_id = task_id_of(&report);
    let done = http.wait_finished(&report_id, Duration::from_secs(10));
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["user_id"], 42, "{done}");
    // It ran through the Redis: the result is stored there, where any process can read it.
    let stored: String = query(&server.url(), &["GET", &meta_key(&report_id)]);
    assert!(stored.contains(r#""status": "SUCCESS""#), "{stored}");
    let (status, _) = web.stop_with("INT", Duration::from_secs(5));
    assert!(
        status.success(),
        "fastapi_like exited with {status} on SIGINT"
    );
}

/// With `memory://` the web app runs the whole scenario in its own process.
#[test]
fn web_alone_on_memory_runs_tasks_in_process() {
    let dir = work_dir();
    let env = vec![
        ("TASKQ_BROKER_URL", "memory://".to_owned()),
        ("TASKQ_EXAMPLE_DELAY_MS", "300".to_owned()),
    ];
    let (mut web, port) = start_web(dir.path(), env);
    let mut http = Http::new(port);

    let token = format!("mem-{}", uuid::Uuid::new_v4().simple());
    let (push, _) = http.push(&token);
    assert_eq!(push["message"], "Notification sent", "{push}");
    let push_id = task_id_of(&push);
    let (report, _) = http.start_report(7);
    assert_eq!(report["status"], "processing", "{report}");
    let report_id = task_id_of(&report);

    let done = http.wait_finished(&push_id, Duration::from_secs(10));
    assert_eq!(done, json!({"status": "completed", "result": null}));
    let done = http.wait_finished(&report_id, Duration::from_secs(10));
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["user_id"], 7, "{done}");
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert!(
        done["result"]["report_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{done}"
    );
    let expected_line = format!("Successfully sent push notification to: {token}");
    let log = notification_log(dir.path());
    assert!(
        log.lines().any(|l| l == expected_line),
        "notification.log should hold {expected_line:?}:\n{log}"
    );
    run_campaign(&mut http, dir.path());
    http.check_timings(MAX_REQUEST_TIME);

    let (status, _) = web.stop_with("INT", Duration::from_secs(5));
    assert!(
        status.success(),
        "fastapi_like exited with {status} on SIGINT"
    );
}

/// SIGTERM stops the web app in memory:// mode: the server and its embedded worker stop on the
/// same signal (the worker must not swallow it and leave the server taking tasks nobody runs).
#[test]
fn web_alone_on_memory_stops_on_sigterm() {
    let dir = work_dir();
    let env = vec![
        ("TASKQ_BROKER_URL", "memory://".to_owned()),
        ("TASKQ_EXAMPLE_DELAY_MS", "300".to_owned()),
    ];
    let (mut web, _port) = start_web(dir.path(), env);
    web.stop_with("TERM", Duration::from_secs(5));
}
