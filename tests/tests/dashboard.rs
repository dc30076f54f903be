//! The dashboard (`taskq dashboard`) in a real browser, Debian's chromium headless, over a
//! taskq worker and a Python Celery worker sharing one Redis: both workers show, failures
//! show with their tracebacks, and the page's buttons act for real (a dead letter requeued
//! and run, a running task revoked, a queue paused, resumed and purged). Screenshots land in
//! `target/ci-artifacts/screenshots/`. And the dashboard's guard: no open dashboard off
//! loopback, a token when asked for one, and no action without its header.

use std::time::Duration;

use serde_json::{json, Map};
use taskq::broker::Outgoing;
use taskq::protocol::NewMessage;
use taskq::{Options, TaskState};
use taskq_tests::browser::Browser;
use taskq_tests::python::{PythonEnv, CELERY_LATEST};
use taskq_tests::taskq_cli::taskq_binary;
use taskq_tests::worker::{client, eventually};
use taskq_tests::{example_command, free_port, wait_for_port, ChildGuard, RedisServer};

const WAIT: Duration = Duration::from_secs(30);

/// `taskq dashboard` on `port` over `server`, with `args`.
fn start_dashboard(server: &RedisServer, port: u16, args: &[&str]) -> ChildGuard {
    ChildGuard::spawn(
        std::process::Command::new(taskq_binary())
            .env("TASKQ_BROKER_URL", server.url())
            .env("TASKQ_RESULT_BACKEND", server.url())
            .env_remove("TASKQ_DASHBOARD_TOKEN")
            .env_remove("TASKQ_DASHBOARD_AUTH")
            .arg("dashboard")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

/// Sends task `name` by name with `args` (a JSON list).
async fn send(
    client: &taskq::Client,
    name: &str,
    args: serde_json::Value,
    options: Options,
) -> taskq::AsyncResult<serde_json::Value> {
    let args = args.as_array().expect("a list of arguments").clone();
    client
        .send_by_name(name, args, Map::new(), options)
        .await
        .unwrap_or_else(|e| panic!("cannot send {name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_both_workers_and_acts_from_the_browser() {
    let python = tokio::task::spawn_blocking(|| PythonEnv::get(CELERY_LATEST))
        .await
        .unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&server, |c| c.result_backend = server.url());

    // A dead letter made as a worker makes one: the message taken, then set aside.
    let held = NewMessage::new("tasks.add", "dead-add-1")
        .args(vec![json!(20), json!(22)])
        .encode("celery")
        .unwrap();
    let broker = client.broker();
    let outgoing = Outgoing {
        queue: "celery".into(),
        priority: 0,
        envelope: held,
    };
    broker.publish(&[outgoing]).await.unwrap();
    let taken = broker.fetch(&["celery".into()], 1, 1 << 20).await.unwrap();
    let reason = "held back by the test: its database was down";
    broker
        .dead_letter(&taken.deliveries[0], reason)
        .await
        .unwrap();

    let _rust_worker = ChildGuard::spawn(
        example_command(
            "worker",
            &server,
            dir.path(),
            "worker.log",
            &[("TASKQ_EXAMPLE_DELAY_MS", "60000")],
        )
        .args(["-n", "rust@dashboard", "-c", "4"]),
    );
    // With result_extended, as a Python app that wants retries from a board would run.
    let _python_worker = python.start_worker_with(
        &server.url(),
        &server.url(),
        &["py"],
        &dir.path().join("py.log"),
        &[("RESULT_EXTENDED", "1")],
    );
    let port = free_port();
    let _dashboard = start_dashboard(&server, port, &[]);
    wait_for_port(port, WAIT);

    let browser = Browser::start().await;
    browser.goto(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_for(r#"tr[data-worker="rust@dashboard"]"#)
        .await;
    browser.wait_for(r#"tr[data-worker^="py@"]"#).await;
    browser
        .wait_for_text(r#"tr[data-worker="rust@dashboard"]"#, "taskq")
        .await;
    browser
        .wait_for_text(r#"tr[data-worker^="py@"]"#, "py-celery")
        .await;
    // The workers answered a poll, so the dashboard has switched their events on: tasks
    // sent from now on show.
    let added = send(&client, "tasks.add", json!([1, 2]), Options::new()).await;
    let no_user = send(&client, "tasks.generate_report", json!([0]), Options::new()).await;
    let boom = send(
        &client,
        "py.boom",
        json!(["kaboom"]),
        Options::new().queue("py"),
    )
    .await;
    let report = send(&client, "tasks.generate_report", json!([7]), Options::new()).await;

    let later = send(
        &client,
        "tasks.add",
        json!([5, 5]),
        Options::new().countdown(Duration::from_secs(600)),
    )
    .await;

    // Recent tasks, and one's details from the result store.
    let row = format!(r#"#tasks tr[data-task="{}"]"#, added.id());
    browser.wait_for_text(&row, "SUCCESS").await;
    browser.click(&format!("{row} a")).await;
    browser.wait_for_text("#detail-fields", "Result").await;
    browser.wait_for_text("#detail-fields", "3").await;
    browser.screenshot("task-detail").await;
    browser.click("#task-detail .close").await;

    // Failures, from both workers, with their tracebacks: the Rust error's chain of causes,
    // Python's traceback.
    let failures = [
        (&no_user, "no user 0"),
        (&boom, "Traceback (most recent call last)"),
    ];
    for (failed, traceback) in failures {
        let row = format!(r#"#failed tr[data-task="{}"]"#, failed.id());
        browser.click(&format!("{row} summary")).await;
        browser
            .wait_for_text(&format!("{row} pre.traceback"), traceback)
            .await;
    }
    browser
        .wait_for_text(
            &format!(r#"#failed tr[data-task="{}"]"#, boom.id()),
            "py.boom",
        )
        .await;
    browser.screenshot("failed-tasks").await;

    // Retry: the Python task's record keeps its call (result_extended), so it goes again
    // under a new id (and fails again); the taskq worker here keeps none, and the page says so.
    let boom_row = format!(r#"#failed tr[data-task="{}"]"#, boom.id());
    browser
        .click(&format!(r#"{boom_row} button[data-action="retry"]"#))
        .await;
    let toast = browser.wait_for_text("#toast", "retried as ").await;
    let text = toast.text().await.unwrap();
    let new_id = text.trim_start_matches("retried as ").trim();
    browser
        .wait_for_text(&format!(r#"#failed tr[data-task="{new_id}"]"#), "py.boom")
        .await;
    let no_user_row = format!(r#"#failed tr[data-task="{}"]"#, no_user.id());
    browser
        .click(&format!(r#"{no_user_row} button[data-action="retry"]"#))
        .await;
    browser.wait_for_text("#toast", "result_extended").await;

    // A task waiting for its ETA.
    let scheduled_row = format!(r#"#scheduled tr[data-task="{}"]"#, later.id());
    browser.wait_for_text(&scheduled_row, "tasks.add").await;

    // A dead letter requeued from the page runs.
    let dead_row = r#"#dead-letters tr[data-task="dead-add-1"]"#;
    browser.wait_for_text(dead_row, "database was down").await;
    browser
        .click(&format!(r#"{dead_row} button[data-action="requeue"]"#))
        .await;
    browser.wait_for_none(dead_row).await;
    let requeued: i64 = client
        .result("dead-add-1")
        .get(WAIT)
        .await
        .expect("the requeued message ran");
    assert_eq!(requeued, 42);

    // A running task revoked from the page (a second click confirms) ends as REVOKED.
    let report_row = format!(
        r#"#tasks tr[data-task="{}"][data-state="STARTED"]"#,
        report.id()
    );
    browser
        .click(&format!(r#"{report_row} button[data-action="revoke"]"#))
        .await;
    browser
        .click(&format!(r#"{report_row} button[data-action="revoke"]"#))
        .await;
    eventually(WAIT, "the revoked report to be REVOKED", || async {
        report.state().await.ok() == Some(TaskState::Revoked)
    })
    .await;

    // Pause and resume a queue; purge another.
    let queue_row = r#"tr[data-queue="celery"]"#;
    browser.wait_for(queue_row).await;
    browser
        .click(&format!(r#"{queue_row} button[data-action="pause"]"#))
        .await;
    browser.wait_for_text(queue_row, "paused").await;
    assert_eq!(client.control().paused_queues().await.unwrap(), ["celery"]);
    browser.screenshot("dashboard").await;
    browser
        .click(&format!(r#"{queue_row} button[data-action="resume"]"#))
        .await;
    browser
        .wait_for(&format!(r#"{queue_row} button[data-action="pause"]"#))
        .await;
    assert!(client.control().paused_queues().await.unwrap().is_empty());

    for n in 0..3 {
        send(
            &client,
            "tasks.add",
            json!([n, n]),
            Options::new().queue("nobody"),
        )
        .await;
    }
    let nobody_row = r#"tr[data-queue="nobody"]"#;
    browser.wait_for(nobody_row).await;
    browser
        .click(&format!(r#"{nobody_row} button[data-action="purge"]"#))
        .await;
    browser
        .click(&format!(r#"{nobody_row} button[data-action="purge"]"#))
        .await;
    browser
        .wait_for_text("#toast", "purged 3 from nobody")
        .await;
    let stats = broker.queue_stats(&["nobody".into()]).await.unwrap();
    assert!(stats.iter().all(|q| q.waiting == 0), "{stats:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_guards_what_it_can_do() {
    let server = RedisServer::start();
    let http = reqwest::Client::new();

    // Open on a non-loopback address: refused before serving.
    let open = std::process::Command::new(taskq_binary())
        .env("TASKQ_BROKER_URL", server.url())
        .env_remove("TASKQ_DASHBOARD_TOKEN")
        .env_remove("TASKQ_DASHBOARD_AUTH")
        .args(["dashboard", "--listen", &format!("0.0.0.0:{}", free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(!open.status.success());
    assert!(stderr.contains("give it a token or a password"), "{stderr}");

    // With a token: nothing without it, everything with it.
    let port = free_port();
    let _dashboard = start_dashboard(&server, port, &["--token", "s3cret"]);
    wait_for_port(port, WAIT);
    let base = format!("http://127.0.0.1:{port}");
    let state = |token: Option<&str>| {
        let mut request = http.get(format!("{base}/api/state"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(state(None).await.unwrap().status(), 401);
    assert_eq!(state(Some("wrong")).await.unwrap().status(), 401);
    let answer = state(Some("s3cret")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["workers"].is_array() && body["dead_letters"].is_array());

    // A browser opens it once with ?token= and keeps it in a cookie.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .get(format!("{base}/?token=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let page = http
        .get(format!("{base}/"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("taskq dashboard"));

    // An action without its header is refused (a form on another site cannot send one).
    let purge = format!("{base}/api/queues/celery/purge");
    let refused = http
        .post(&purge)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let done = http
        .post(&purge)
        .bearer_auth("s3cret")
        .header("x-taskq-action", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let body: serde_json::Value = done.json().await.unwrap();
    assert_eq!(body["purged"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_nests_under_a_path_of_an_application() {
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let dashboard = taskq::dashboard::Dashboard::start(client);
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the application" }))
        .nest("/ops/taskq", dashboard.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "the application"
    );
    let page = get("/ops/taskq").await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<base href="/ops/taskq/">"#), "{page}");
    // What the page's relative links reach from there.
    for asset in ["app.js", "app.css", "api/state"] {
        let answer = get(&format!("/ops/taskq/{asset}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
    }
    dashboard.shutdown().await;
}
