//! `taskq dev`, the auto-reload loop: it runs the example worker, and when a watched source
//! changes it restarts it with a short grace. A task running at the change goes back to the
//! queue and the new worker runs it to the end: nothing is lost. Unix only (it signals the
//! worker's process group).
//!
//! Needs the example binaries: `cargo build -p taskq-examples --examples`.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use taskq_tests::taskq_cli::taskq_binary;
use taskq_tests::worker::query;
use taskq_tests::{count_in_file, example_binary, keys, wait_for_log, ChildGuard, RedisServer};

const WAIT: Duration = Duration::from_secs(30);

/// A running `taskq dev`. Dropping it (also when a test fails) stops it with SIGTERM, so that
/// it stops its worker: the worker runs in a process group of its own, which killing the loop
/// alone would leave running.
struct DevLoop(ChildGuard);

impl Drop for DevLoop {
    fn drop(&mut self) {
        if self.0.try_wait().is_none() {
            self.0.signal("TERM");
            let _ = self.0.wait_timeout(WAIT);
        }
    }
}

/// `taskq dev` watching `sources`, running the example worker on `server`, its output (and the
/// worker's) in `log`.
fn dev_loop(server: &RedisServer, sources: &Path, log: &Path) -> DevLoop {
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(taskq_binary());
    cmd.args(["dev", "--poll-ms", "100", "--watch"])
        .arg(sources)
        .arg("--")
        .arg(example_binary("worker"))
        .env("TASKQ_BROKER_URL", server.url())
        .env("TASKQ_RESULT_BACKEND", server.url())
        .env("TASKQ_EXAMPLE_DELAY_MS", "3000")
        .env_remove("TASKQ_SHUTDOWN_GRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    DevLoop(ChildGuard::spawn(&mut cmd))
}

#[test]
fn a_source_change_restarts_the_worker_and_the_running_task_completes_on_the_new_one() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("src");
    std::fs::create_dir(&sources).unwrap();
    std::fs::write(sources.join("tasks.rs"), "// first version\n").unwrap();
    let log = dir.path().join("dev.log");
    let mut dev = dev_loop(&server, &sources, &log);
    wait_for_log(&log, "worker ready", 1, WAIT);

    // A 3 s task, running when the source changes.
    let send = Command::new(example_binary("send"))
        .args(["tasks.send_push_notification", r#"["dev-loop"]"#])
        .env("TASKQ_BROKER_URL", server.url())
        .env("TASKQ_RESULT_BACKEND", server.url())
        .output()
        .unwrap();
    assert!(send.status.success(), "{send:?}");
    let id = String::from_utf8(send.stdout).unwrap().trim().to_owned();
    wait_for_log(&log, &format!("[{id}] received"), 1, WAIT);
    std::fs::write(sources.join("tasks.rs"), "// second version\n").unwrap();

    // The old worker gets the dev loop's 1 s grace, puts the task back, and a new one starts
    // and runs it to the end.
    wait_for_log(&log, "tasks.rs changed", 1, WAIT);
    wait_for_log(&log, "put back in its queue", 1, WAIT);
    wait_for_log(&log, "worker ready", 2, WAIT);
    wait_for_log(&log, &format!("[{id}] succeeded"), 1, WAIT);
    assert_eq!(count_in_file(&log, &format!("[{id}] received")), 2);
    assert!(
        count_in_file(&log, "grace=1s") >= 1,
        "the loop's short grace, not the default 30 s"
    );
    let stored: String = query(&server.url(), &["GET", &keys::result_meta(&id)]);
    let meta: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(meta["status"], "SUCCESS", "{meta}");

    // SIGTERM to the loop stops the worker too.
    dev.0.signal("TERM");
    dev.0.wait_timeout(WAIT).expect("the loop stops on SIGTERM");
    wait_for_log(&log, "worker stopped", 2, WAIT);
}

#[test]
fn a_change_outside_the_watched_extensions_restarts_nothing() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.rs"), "// v1\n").unwrap();
    let log = dir.path().join("dev.log");
    let mut dev = dev_loop(&server, dir.path(), &log);
    wait_for_log(&log, "worker ready", 1, WAIT);
    std::fs::write(dir.path().join("notes.txt"), "not a source\n").unwrap();
    std::fs::write(dir.path().join("dev.log.bak"), "").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count_in_file(&log, "changed"), 0);
    std::fs::write(dir.path().join("main.rs"), "// v2\n").unwrap();
    wait_for_log(&log, "main.rs changed", 1, WAIT);
    wait_for_log(&log, "worker ready", 2, WAIT);

    // A closed terminal (SIGHUP) stops the loop and its worker, which is in a process group of
    // its own and does not get the terminal's signal.
    dev.0.signal("HUP");
    dev.0.wait_timeout(WAIT).expect("the loop stops on SIGHUP");
    wait_for_log(&log, "worker stopped", 2, WAIT);
}
