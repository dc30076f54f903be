//! The example worker's command line (`taskq::Worker::from_args`): Celery's worker flags,
//! `--help`, clap's exit code 2 for an unknown flag, flags over `TASKQ_*` variables (`-Q`,
//! `-c`, `-n`, `-E`; `-l` over `RUST_LOG`), a start that fails with the masked address, and
//! no "ready", when Redis refuses the password, and one that waits, loudly, while it is away.
//!
//! Needs the example binaries: `cargo build -p taskq-examples --examples`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use taskq_tests::{
    example_binary, example_command, file_tail, free_port, redis_cmd, wait_for_log, ChildGuard,
    RedisServer,
};

const START: Duration = Duration::from_secs(30);

/// Runs the example worker with `args` to its end, with the broker at `broker` (nothing needs
/// to listen there for the commands that never connect).
fn run_worker(args: &[&str], broker: &str) -> Output {
    let mut cmd = Command::new(example_binary("worker"));
    cmd.args(args)
        .env("TASKQ_BROKER_URL", broker)
        .env("TASKQ_RESULT_BACKEND", broker)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let mut child = ChildGuard::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    child
        .wait_timeout(START)
        .unwrap_or_else(|| panic!("the worker with {args:?} did not exit within {START:?}"));
    child.into_inner().wait_with_output().expect("its output")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A broker address where nothing listens: the commands under test exit before connecting.
fn nowhere() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

#[test]
fn help_lists_celerys_worker_flags_and_exits_0() {
    let output = run_worker(&["--help"], &nowhere());
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    for flag in [
        "-Q, --queues <QUEUES>",
        "-c, --concurrency <N>",
        "-n, --hostname <NAME>",
        "-l, --loglevel <LEVEL>",
        "-E, --task-events",
        "-B, --beat",
        "--prefetch-multiplier <N>",
        "--shutdown-grace <SECS>",
        "-V, --version",
        "TASKQ_",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag:?}:\n{stdout}");
    }
    assert!(!stdout.contains("worker ready") && !stderr.contains("worker ready"));

    let version = run_worker(&["--version"], &nowhere());
    let (stdout, _) = text(&version);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        stdout.trim(),
        format!("taskq-worker {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_flag_or_a_bad_value_exits_2_with_claps_error() {
    let output = run_worker(&["--frobnicate"], &nowhere());
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("unexpected argument '--frobnicate' found"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: worker [OPTIONS]"), "{stderr}");

    for bad in [&["-c", "0"][..], &["-n", "w@%p"], &["-l", "loud"]] {
        let output = run_worker(bad, &nowhere());
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("error: invalid value"), "{bad:?}: {stderr}");
    }
}

/// Starts the example worker with `args` and `envs` on `server`, logging to `dir/<log>`, and
/// waits for "worker ready"; returns the guard and the log's text so far.
fn start_ready(
    server: &RedisServer,
    dir: &Path,
    log: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (ChildGuard, String) {
    let mut cmd = example_command("worker", server, dir, log, &[]);
    cmd.env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .args(args);
    let worker = ChildGuard::spawn(&mut cmd);
    let path = dir.join(log);
    wait_for_log(&path, "worker ready", 1, START);
    let text = std::fs::read_to_string(&path).unwrap();
    (worker, text)
}

/// The channels of the worker events published on `server`'s db 0 from now on.
fn worker_events(server: &RedisServer) -> std::sync::mpsc::Receiver<String> {
    let client = redis::Client::open(server.url()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.psubscribe("/0.celeryev/worker.*").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = ready_tx.send(());
        loop {
            match pubsub.get_message() {
                Ok(msg) => {
                    if tx.send(msg.get_channel_name().to_owned()).is_err() {
                        return;
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.recv().unwrap();
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_concurrency_and_node_name_flags_take_effect_over_the_environment() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host = hostname::get().unwrap().into_string().unwrap();
    let short = host.split('.').next().unwrap().to_owned();
    let events = worker_events(&server);
    let (mut worker, log) = start_ready(
        &server,
        dir.path(),
        "flags.log",
        &["-Q", "alpha,beta", "-c", "7", "-n", "cli-%n@%h", "-E"],
        // The flags win over these.
        &[
            ("TASKQ_QUEUES", "gamma"),
            ("TASKQ_CONCURRENCY", "3"),
            ("TASKQ_HOSTNAME", "env@x"),
        ],
    );
    let node = format!("cli-{short}@{host}");
    assert!(log.contains(&format!(" {node} v")), "banner node:\n{log}");
    assert!(log.contains(".> concurrency: 7 (tokio)"), "{log}");
    assert!(log.contains(".> prefetch:    28 messages"), "{log}");
    assert!(
        log.contains(".> alpha\n") && log.contains(".> beta\n"),
        "{log}"
    );
    assert!(!log.contains(".> gamma"), "{log}");
    // The default log subscriber is on: the example installs none of its own.
    assert!(log.contains("worker ready") && log.contains(&node), "{log}");
    // -Q alpha,beta leaves the example's tasks (queue `celery`) without a worker here.
    assert!(
        log.contains(
            "queue \"celery\" is not consumed by this worker (it consumes alpha,beta), yet \
             tasks registered here are sent to it: tasks.add, tasks.generate_report, \
             tasks.send_push_notification, tasks.summarise_campaign, tasks.tick; add it with \
             -Q/--queues \
             alpha,beta,celery"
        ),
        "{log}"
    );
    // -E: the worker announces itself on Celery's event exchange.
    let online = events
        .recv_timeout(Duration::from_secs(10))
        .expect("an event from the worker started with -E");
    assert_eq!(online, "/0.celeryev/worker.online");
    // It consumes `beta`: a call sent there is run (with the result in db 0, as the example's).
    let client = taskq_tests::worker::client(&server, |c| c.result_backend = server.url());
    let sent = client
        .send_by_name(
            "tasks.add",
            vec![2.into(), 3.into()],
            serde_json::Map::new(),
            taskq::Options::new().queue("beta"),
        )
        .await
        .unwrap();
    let five: serde_json::Value = sent.get(Duration::from_secs(20)).await.unwrap();
    assert_eq!(five, 5);
    worker.terminate();
    let status = worker.wait_timeout(START).expect("stops on SIGTERM");
    assert!(
        status.success(),
        "{}",
        file_tail(&dir.path().join("flags.log"), 20)
    );
}

#[test]
fn loglevel_sets_the_default_subscribers_level_over_rust_log() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // -l warning: the warning about queue `celery` shows, INFO lines ("worker ready") do not.
    let mut cmd = example_command("worker", &server, dir.path(), "warning.log", &[]);
    cmd.args(["-l", "warning", "-Q", "alpha"])
        .env("RUST_LOG", "info");
    let mut quiet = ChildGuard::spawn(&mut cmd);
    let path = dir.path().join("warning.log");
    wait_for_log(&path, "[tasks]", 1, START); // the banner; the reports and "ready" follow
    std::thread::sleep(Duration::from_secs(1));
    quiet.terminate();
    quiet.wait_timeout(START).expect("stops on SIGTERM");
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(
        log.contains("WARN") && log.contains("is not consumed"),
        "{log}"
    );
    assert!(!log.contains(" INFO "), "{log}");

    // RUST_LOG alone is the filter without -l; -l info wins over RUST_LOG=warn.
    let (_loud, log) = start_ready(
        &server,
        dir.path(),
        "info.log",
        &["-l", "info"],
        &[("RUST_LOG", "warn")],
    );
    assert!(
        log.contains(" INFO ") && log.contains("worker ready"),
        "{log}"
    );
}

#[test]
fn without_flags_the_environment_still_configures_the_worker() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_worker, log) = start_ready(
        &server,
        dir.path(),
        "env.log",
        &[],
        &[("TASKQ_QUEUES", "celery,gamma"), ("TASKQ_CONCURRENCY", "5")],
    );
    assert!(log.contains(".> concurrency: 5 (tokio)"), "{log}");
    assert!(log.contains(".> gamma\n"), "{log}");
    assert!(!log.contains("is not consumed"), "{log}");
}

#[test]
fn a_wrong_password_fails_the_start_naming_the_masked_address_and_no_ready() {
    let server = RedisServer::start();
    redis_cmd(
        &server.url(),
        &[
            "ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all",
        ],
    );
    let url = format!("redis://app:wrong@127.0.0.1:{}/0", server.port());
    let output = run_worker(&[], &url);
    let (stdout, stderr) = text(&output);
    println!("{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let masked = format!("redis://app:**@127.0.0.1:{}/0", server.port());
    assert!(
        stderr.contains(&format!(
            "the broker at {masked} refused this worker's credentials"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong@"),
        "the password is not shown: {stderr}"
    );
    assert!(!stdout.contains("worker ready") && !stderr.contains("worker ready"));
    assert!(
        !stdout.contains("[tasks]"),
        "no banner before Redis answered"
    );
}

#[test]
fn an_unreachable_redis_is_waited_for_loudly_and_ready_comes_once_it_answers() {
    let mut server = RedisServer::start();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = example_command("worker", &server, dir.path(), "waiting.log", &[]);
    let _worker = ChildGuard::spawn(&mut cmd);
    let log = dir.path().join("waiting.log");
    let address = server.url();
    wait_for_log(
        &log,
        &format!("cannot reach the broker at {address}"),
        1,
        START,
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("trying again in 2 s (1/100)"), "{text}");
    assert!(!text.contains("worker ready"), "{text}");
    // Redis comes back on its port: a later try reaches it, and only then is the worker ready.
    server.restart();
    wait_for_log(&log, "worker ready", 1, Duration::from_secs(15));
}

#[test]
fn a_worker_binary_without_tasks_says_how_to_link_them() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = example_command("worker_without_tasks", &server, dir.path(), "bare.log", &[]);
    cmd.env_remove("RUST_LOG");
    let _worker = ChildGuard::spawn(&mut cmd);
    let path = dir.path().join("bare.log");
    wait_for_log(&path, "worker ready", 1, START);
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(
        log.contains(
            "no tasks registered: the worker binary must reference the task crate/module, e.g."
        ),
        "{log}"
    );
    let warned = log.find("no tasks registered").unwrap();
    assert!(warned < log.find("worker ready").unwrap(), "{log}");
}
