//! The seeds' tasks. Their names are the ones a Python Celery app would give them in a module
//! called `tasks`, so Python producers and workers can share them.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// File the push notification task appends to, in the working directory.
///
/// ```
/// assert_eq!(taskq_examples::tasks::NOTIFICATION_LOG, "notification.log");
/// ```
pub const NOTIFICATION_LOG: &str = "notification.log";

/// The simulated duration of a slow call: `default_ms`, or `TASKQ_EXAMPLE_DELAY_MS`.
///
/// ```
/// // 10 s unless TASKQ_EXAMPLE_DELAY_MS says otherwise.
/// let delay = taskq_examples::tasks::simulated_delay(10_000);
/// ```
pub fn simulated_delay(default_ms: u64) -> Duration {
    let ms = std::env::var("TASKQ_EXAMPLE_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_ms);
    Duration::from_millis(ms)
}

/// Sends a push notification (simulated: waits 10 s), then records it in `notification.log`.
///
/// The push provider takes at most 20 sends a second from the whole app, so the limit is
/// fleet-wide: however many workers run, they start at most 20 of these a second.
///
/// ```no_run
/// # async fn demo() -> taskq::Result<()> {
/// let sent = taskq_examples::tasks::send_push_notification.delay("device-1".to_owned()).await?;
/// println!("task {}", sent.id());
/// # Ok(()) }
/// ```
#[taskq::task(name = "tasks.send_push_notification", rate_limit = "20/s")]
pub async fn send_push_notification(device_token: String) -> anyhow::Result<()> {
    tokio::time::sleep(simulated_delay(10_000)).await;
    let line = format!("Successfully sent push notification to: {device_token}");
    append_line(NOTIFICATION_LOG, line).await
}

/// Appends `line` to the file `path` in the working directory, off the async threads, in
/// one write: lines from concurrent tasks and processes never interleave.
async fn append_line(path: &'static str, line: String) -> anyhow::Result<()> {
    let entry = format!("{line}\n");
    tokio::task::spawn_blocking(move || {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        log.write_all(entry.as_bytes())
    })
    .await??;
    Ok(())
}

/// A generated report.
///
/// ```
/// let report = taskq_examples::tasks::Report { user_id: 1, status: "completed".into(), report_id: "r-1".into() };
/// assert_eq!(serde_json::to_value(&report).unwrap()["status"], "completed");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Whose report it is.
    pub user_id: u64,
    /// Always `"completed"`.
    pub status: String,
    /// A fresh id for the report.
    pub report_id: String,
}

/// Generates a report for a user (simulated: waits 5 s). User ids start at 1: a report for
/// user 0 fails at once (a failure to look at in the dashboard, with its cause).
///
/// Unique for up to 5 minutes: while a user's report is queued or being made, asking again
/// (a second click) queues nothing and gets the report already under way.
///
/// ```
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// std::env::set_var("TASKQ_EXAMPLE_DELAY_MS", "0");
/// let report = taskq_examples::tasks::generate_report.call(42).await?;
/// assert_eq!((report.user_id, report.status.as_str()), (42, "completed"));
/// # Ok(()) }
/// ```
#[taskq::task(name = "tasks.generate_report", unique_for = 300)]
pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
    let user = find_user(user_id).context("cannot generate the report")?;
    tokio::time::sleep(simulated_delay(5_000)).await;
    Ok(Report {
        user_id: user,
        status: "completed".to_owned(),
        report_id: uuid::Uuid::new_v4().to_string(),
    })
}

/// The user `id`, if there is one (every id but 0, in this example).
fn find_user(id: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(id != 0, "no user {id}: user ids start at 1");
    Ok(id)
}

/// Adds two numbers: the smallest task there is.
///
/// ```
/// # #[tokio::main] async fn main() {
/// assert_eq!(taskq_examples::tasks::add.call(2, 3).await, 5);
/// # }
/// ```
#[taskq::task(name = "tasks.add")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// File the campaign summary task appends to, in the working directory.
///
/// ```
/// assert_eq!(taskq_examples::tasks::CAMPAIGN_LOG, "campaign.log");
/// ```
pub const CAMPAIGN_LOG: &str = "campaign.log";

/// Summarises a push campaign once every notification of it went out: the body of a chord
/// whose header sends one [`send_push_notification`] per device token. It gets the header's
/// results (one `()` per notification), appends one line to `campaign.log` and returns it.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// // Appends to ./campaign.log.
/// let line = taskq_examples::tasks::summarise_campaign.call(vec![(), (), ()]).await?;
/// assert_eq!(line, "campaign done: 3 notifications sent");
/// # Ok(()) }
/// ```
#[taskq::task(name = "tasks.summarise_campaign")]
pub async fn summarise_campaign(sent: Vec<()>) -> anyhow::Result<String> {
    let line = format!("campaign done: {} notifications sent", sent.len());
    append_line(CAMPAIGN_LOG, line.clone()).await?;
    Ok(line)
}

/// File the periodic tick appends to, in the working directory.
///
/// ```
/// assert_eq!(taskq_examples::tasks::BEAT_LOG, "beat.log");
/// ```
pub const BEAT_LOG: &str = "beat.log";

/// The tick's period: `TASKQ_EXAMPLE_TICK_MS` milliseconds, else 10 s.
///
/// ```
/// // "every 10000ms" unless TASKQ_EXAMPLE_TICK_MS says otherwise.
/// let schedule = taskq_examples::tasks::tick_schedule();
/// assert!(schedule.starts_with("every "));
/// ```
pub fn tick_schedule() -> String {
    let ms = std::env::var("TASKQ_EXAMPLE_TICK_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(10_000);
    format!("every {ms}ms")
}

/// A periodic task: appends `tick <slot> <task id>` to `beat.log`, the slot being the time it
/// was scheduled for (RFC 3339, milliseconds), so a run of the scheduler can be checked slot
/// by slot (and a run repeated after a crash told from a slot sent twice). Sent by a worker
/// started with `-B`.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// // Appends to ./beat.log.
/// taskq_examples::tasks::tick.call("2026-12-04T10:00:00.000Z".into()).await?;
/// # Ok(()) }
/// ```
#[taskq::task(name = "tasks.tick")]
pub async fn tick(slot: String) -> anyhow::Result<()> {
    let id = taskq::request::current().map(|r| r.id).unwrap_or_default();
    append_line(BEAT_LOG, format!("tick {slot} {id}")).await
}

taskq::periodic!("tasks.tick", tick_schedule(), |slot: chrono::DateTime<
    chrono::Utc,
>| {
    tick.s(slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
});
