//! The `taskq` command line without a worker: its help and argument errors, an unreachable
//! broker, and the subcommands that only need Redis (`call`, `queues`, `purge`,
//! `dead-letters`), in both people's and `--json` output, checked against what Redis holds.

use serde_json::{json, Value};
use taskq_tests::taskq_cli::{taskq, taskq_in, taskq_raw};
use taskq_tests::worker::{client, query};
use taskq_tests::{free_port, keys, RedisServer};

/// The envelopes waiting in `list`, oldest first.
fn waiting(server: &RedisServer, list: &str) -> Vec<Value> {
    let raw: Vec<String> = query(&server.url(), &["LRANGE", list, "0", "-1"]);
    raw.iter()
        .rev()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

/// A task message's body `[args, kwargs, embed]`.
fn body(envelope: &Value) -> Value {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(envelope["body"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_subcommand_and_unknown_flags_fail() {
    let server = RedisServer::start();
    let help = taskq_raw(&["--help".to_owned()], &[]).await.success();
    for sub in [
        "call",
        "result",
        "inspect",
        "control",
        "status",
        "queues",
        "purge",
        "dead-letters",
        "events",
    ] {
        assert!(
            help.stdout.contains(&format!("\n  {sub} ")),
            "{sub}: {help}"
        );
    }
    assert!(help.stdout.contains("--broker") && help.stdout.contains("--json"));
    let inspect = taskq_raw(&["inspect".into(), "--help".into()], &[])
        .await
        .success();
    assert!(inspect.stdout.contains("active_queues"), "{inspect}");

    let bogus = taskq(&server, &["queues", "--bogus"]).await.exit_code(2);
    assert!(
        bogus.stderr.contains("unexpected argument '--bogus'"),
        "{bogus}"
    );
    let method = taskq(&server, &["inspect", "nosuch"]).await.exit_code(2);
    assert!(method.stderr.contains("invalid value 'nosuch'"), "{method}");
    let missing = taskq_raw(&[], &[]).await.exit_code(2);
    assert!(missing.stderr.contains("Usage: taskq"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_named_masked_and_fails() {
    let port = free_port();
    let url = format!("redis://:s3cret@127.0.0.1:{port}/0");
    let run = taskq_raw(&["-b".into(), url, "queues".into()], &[])
        .await
        .exit_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot reach the broker at redis://:**@127.0.0.1:{port}/0"
        )),
        "{run}"
    );
    assert!(!run.stderr.contains("s3cret"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_comes_from_the_environment_without_b() {
    let server = RedisServer::start();
    let url = server.url();
    let run = taskq_raw(
        &["call".into(), "test.cli.env".into(), "--json".into()],
        &[("CELERY_BROKER_URL", url.as_str())],
    )
    .await
    .success();
    let id = run.json()["id"].as_str().unwrap().to_owned();
    let sent = waiting(&server, "celery");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["headers"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_comes_from_dotenv_and_b_wins_over_both() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("TASKQ_BROKER_URL={}\n", server.url()),
    )
    .unwrap();
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    taskq_in(dir.path(), &args(&["call", "test.cli.dotenv"]), &[])
        .await
        .success();
    assert_eq!(waiting(&server, "celery").len(), 1);

    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let env = [("TASKQ_BROKER_URL", dead.as_str())];
    let failed = taskq_in(dir.path(), &args(&["queues"]), &env)
        .await
        .exit_code(1);
    assert!(
        failed.stderr.contains(&dead),
        "the variable wins over .env: {failed}"
    );
    let url = server.url();
    let stats = taskq_in(dir.path(), &args(&["-b", &url, "queues", "--json"]), &env)
        .await
        .success()
        .json();
    assert_eq!(stats[0]["waiting"], 1, "-b wins over both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sends_a_celery_message_with_its_options() {
    let server = RedisServer::start();
    let plain = taskq(
        &server,
        &[
            "call",
            "test.cli.add",
            "--args",
            "[2, 100000000000000000000000000000]",
            "--kwargs",
            r#"{"z": 1, "a": "x"}"#,
            "-Q",
            "math",
            "--priority",
            "5",
        ],
    )
    .await
    .success();
    let id = plain.stdout.trim().to_owned();
    assert_eq!(id.len(), 36, "a uuid: {plain}");
    // Priority 5 goes to kombu's bucket 3.
    let sent = waiting(&server, &keys::broker().queue_list("math", 3));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["headers"]["id"], id.as_str());
    assert_eq!(sent[0]["headers"]["task"], "test.cli.add");
    assert_eq!(sent[0]["properties"]["priority"], 5);
    let raw_body: String = {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sent[0]["body"].as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert!(
        raw_body.starts_with(r#"[[2, 100000000000000000000000000000], {"z": 1, "a": "x"}"#),
        "arguments exactly as given: {raw_body}"
    );

    let later = taskq(
        &server,
        &["call", "test.cli.later", "--countdown", "60", "--json"],
    )
    .await
    .success()
    .json();
    assert_eq!(later["task"], "test.cli.later");
    assert_eq!(later["queue"], "celery");
    let sent = waiting(&server, "celery");
    assert_eq!(sent[0]["headers"]["id"], later["id"]);
    assert!(sent[0]["headers"]["eta"].is_string(), "{}", sent[0]);
    assert_eq!(body(&sent[0])[0], json!([]));

    taskq(
        &server,
        &["call", "test.cli.at", "--eta", "2030-01-01T09:00:00Z"],
    )
    .await
    .success();
    let sent = waiting(&server, "celery");
    let eta = sent[1]["headers"]["eta"].as_str().unwrap();
    assert!(eta.starts_with("2030-01-01T09:00:00"), "{eta}");

    let bad = taskq(&server, &["call", "t", "--args", r#"{"x": 1}"#])
        .await
        .exit_code(1);
    assert!(bad.stderr.contains("--args must be a JSON list"), "{bad}");
    let bad = taskq(&server, &["call", "t", "--eta", "tomorrow"])
        .await
        .exit_code(1);
    assert!(bad.stderr.contains("not an RFC 3339 time"), "{bad}");
    let bad = taskq(&server, &["call", "t", "--priority", "12"])
        .await
        .exit_code(2);
    assert!(bad.stderr.contains("12"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_count_and_purge_deletes_only_with_consent() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    for queue in ["celery", "celery", "celery", "reports"] {
        taskq(&server, &["call", "test.cli.n", "-Q", queue])
            .await
            .success();
    }
    let broker = client.broker();
    let held = broker
        .fetch(&["celery".to_owned()], 1, 1 << 20)
        .await
        .unwrap();
    broker
        .dead_letter(&held.deliveries[0], "NotRegistered: test.cli.n")
        .await
        .unwrap();

    let stats = taskq(&server, &["queues", "--json"]).await.success().json();
    assert_eq!(
        stats,
        json!([
            {"queue": "celery", "waiting": 2, "unacked": 0, "scheduled": 0, "dead_letters": 1, "paused": false},
            {"queue": "reports", "waiting": 1, "unacked": 0, "scheduled": 0, "dead_letters": 0, "paused": false},
        ])
    );
    let table = taskq(&server, &["queues", "-Q", "reports"]).await.success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("QUEUE") && lines[0].contains("DEAD LETTERS"));
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, ["reports", "1", "0", "0", "0", "no"]);

    // Paused for every taskq worker (none runs here: recorded, no confirmation), and back.
    let paused = taskq(&server, &["queues", "pause", "reports", "-t", "0.2"])
        .await
        .success();
    assert!(
        paused
            .stdout
            .contains("queue reports paused (recorded in the broker; 0 taskq worker(s) confirmed)"),
        "{paused}"
    );
    let table = taskq(&server, &["queues", "-Q", "reports"]).await.success();
    let row: Vec<&str> = table
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["reports", "1", "0", "0", "0", "yes"],
        "messages stay queued"
    );
    taskq(&server, &["queues", "resume", "reports", "-t", "0.2"])
        .await
        .success();
    let stats = taskq(&server, &["queues", "--json", "-Q", "reports"])
        .await
        .success()
        .json();
    assert_eq!(stats[0]["paused"], false);

    // No terminal, no -f: refused, nothing deleted.
    let refused = taskq(&server, &["purge", "-Q", "celery"])
        .await
        .exit_code(1);
    assert!(
        refused
            .stderr
            .contains("refusing to purge celery without confirmation"),
        "{refused}"
    );
    assert!(refused.stderr.contains("-f"), "{refused}");
    assert_eq!(waiting(&server, "celery").len(), 2);

    let purged = taskq(&server, &["purge", "-f"]).await.success();
    assert_eq!(purged.stdout.trim(), "purged 2 messages from celery");
    assert!(waiting(&server, "celery").is_empty());
    assert_eq!(waiting(&server, "reports").len(), 1, "other queues stay");
    let purged = taskq(&server, &["purge", "-Q", "reports,celery", "-f", "--json"])
        .await
        .success()
        .json();
    assert_eq!(
        purged,
        json!({"purged": 1, "queues": ["reports", "celery"]})
    );
    let dead: i64 = query(&server.url(), &["LLEN", &keys::broker().dead_letter()]);
    assert_eq!(dead, 1, "purge leaves dead letters alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_requeued_by_reason() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = taskq(&server, &["call", "test.cli.dead"]).await.success();
        ids.push(run.stdout.trim().to_owned());
    }
    let broker = client.broker();
    let held = broker
        .fetch(&["celery".to_owned()], 3, 1 << 20)
        .await
        .unwrap()
        .deliveries;
    broker
        .dead_letter(&held[0], "NotRegistered: test.cli.dead")
        .await
        .unwrap();
    broker.dead_letter(&held[1], "too large").await.unwrap();
    broker
        .dead_letter(&held[2], "NotRegistered: again")
        .await
        .unwrap();

    let listed = taskq(&server, &["dead-letters", "list"]).await.success();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].contains("celery  test.cli.dead"), "{listed}");
    assert!(
        lines[0].ends_with(&format!("{}: NotRegistered: again", ids[2])),
        "newest first: {listed}"
    );
    let entries = taskq(&server, &["dead-letters", "list", "--limit", "2", "--json"])
        .await
        .success()
        .json();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["task_id"], ids[1].as_str());
    assert_eq!(entries[1]["reason"], "too large");
    assert_eq!(entries[1]["queue"], "celery");
    assert_eq!(entries[1]["task"], "test.cli.dead");

    let requeued = taskq(
        &server,
        &[
            "dead-letters",
            "requeue",
            "--reason",
            "NotRegistered",
            "--json",
        ],
    )
    .await
    .success()
    .json();
    assert_eq!(requeued, json!({"requeued": 2}));
    let back: Vec<Value> = waiting(&server, "celery");
    let back_ids: Vec<&str> = back
        .iter()
        .map(|e| e["headers"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(back_ids, [ids[0].as_str(), ids[2].as_str()]);
    let rest = taskq(&server, &["dead-letters", "requeue"]).await.success();
    assert_eq!(rest.stdout.trim(), "requeued 1 message");
    let none = taskq(&server, &["dead-letters", "list"]).await.success();
    assert_eq!(none.stdout.trim(), "no dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_worker_control_says_so_and_a_revoke_still_holds() {
    let server = RedisServer::start();
    let status = taskq(&server, &["status", "-t", "0.2"]).await.exit_code(1);
    assert_eq!(
        status.stderr.trim(),
        "Error: No nodes replied within time constraint"
    );
    let inspect = taskq(&server, &["inspect", "active", "-t", "0.2", "--json"])
        .await
        .exit_code(1);
    assert!(inspect.stdout.is_empty(), "{inspect}");

    let revoked = taskq(&server, &["control", "revoke", "r-1", "r-2", "-t", "0.2"])
        .await
        .success();
    assert_eq!(
        revoked.stdout.trim(),
        "revoked r-1, r-2 (recorded in the broker; no node replied)"
    );
    let json = taskq(
        &server,
        &["control", "revoke", "r-3", "-t", "0.2", "--json"],
    )
    .await
    .success()
    .json();
    assert_eq!(json, json!({}));
    let mut ids: Vec<String> = query(
        &server.url(),
        &["ZRANGE", &keys::broker().revoked(), "0", "-1"],
    );
    ids.sort();
    assert_eq!(ids, ["r-1", "r-2", "r-3"]);
    // No reply queue or binding is left behind.
    let left: Vec<String> = query(&server.url(), &["KEYS", "*reply*"]);
    assert!(left.is_empty(), "{left:?}");

    let events = taskq(&server, &["events", "--timeout", "0.3", "--json"])
        .await
        .success();
    assert!(events.stdout.is_empty(), "{events}");
}

/// `purge` on a terminal asks first: `script` gives it one (util-linux), and the answer is
/// typed on it.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_on_a_terminal_asks_and_honours_the_answer() {
    use tokio::io::AsyncWriteExt as _;

    let server = RedisServer::start();
    for _ in 0..2 {
        taskq(&server, &["call", "test.cli.n"]).await.success();
    }
    let binary = taskq_tests::taskq_cli::taskq_binary();
    let answer = |typed: &'static str| {
        let command = format!("{} -b {} purge -Q celery", binary.display(), server.url());
        async move {
            let mut child = tokio::process::Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("util-linux `script` runs the command on a terminal");
            let mut stdin = child.stdin.take().unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            stdin.write_all(typed.as_bytes()).await.unwrap();
            let out =
                tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
                    .await
                    .expect("purge answered")
                    .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };

    let (code, shown) = answer("n\n").await;
    assert!(
        shown.contains("Purge 2 messages waiting in celery? This cannot be undone [y/N]"),
        "{shown}"
    );
    assert!(shown.contains("not purged"), "{shown}");
    assert_eq!(code, Some(1), "{shown}");
    assert_eq!(waiting(&server, "celery").len(), 2);

    let (code, shown) = answer("y\n").await;
    assert!(shown.contains("purged 2 messages from celery"), "{shown}");
    assert_eq!(code, Some(0), "{shown}");
    assert!(waiting(&server, "celery").is_empty());
}

/// `result --wait` shows what it waits for on a terminal (state and time, rewritten in place)
/// and prints nothing of it to a pipe, where scripts read the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_wait_shows_progress_on_a_terminal_only() {
    let server = RedisServer::start();
    let piped = taskq(&server, &["result", "never-sent", "--wait", "0.5"])
        .await
        .exit_code(1);
    assert!(!piped.stderr.contains("waiting for"), "{piped}");
    assert!(piped.stderr.contains("is still PENDING"), "{piped}");

    let binary = taskq_tests::taskq_cli::taskq_binary();
    let command = format!(
        "{} -b {} result never-sent --wait 1.5",
        binary.display(),
        server.url()
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("util-linux `script` runs the command on a terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("waiting for never-sent: PENDING (1s)"),
        "{shown}"
    );
    assert_eq!(out.status.code(), Some(1), "{shown}");
}
