//! The seeds' tasks. Their names are the ones a Python Celery app would give them in a module
//! called `tasks`, so Python producers and workers can share them.

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// File the push notification task appends to, in the working directory.
pub const NOTIFICATION_LOG: &str = "notification.log";

/// The simulated duration of a slow call: `default_ms`, or `TASKQ_EXAMPLE_DELAY_MS`.
pub fn simulated_delay(default_ms: u64) -> Duration {
    let ms = std::env::var("TASKQ_EXAMPLE_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_ms);
    Duration::from_millis(ms)
}

/// Sends a push notification (simulated: waits 10 s), then records it in `notification.log`.
#[taskq::task(name = "tasks.send_push_notification")]
pub async fn send_push_notification(device_token: String) -> anyhow::Result<()> {
    tokio::time::sleep(simulated_delay(10_000)).await;
    let line = format!("Successfully sent push notification to: {device_token}\n");
    tokio::task::spawn_blocking(move || {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(NOTIFICATION_LOG)?;
        log.write_all(line.as_bytes())
    })
    .await??;
    Ok(())
}

/// A generated report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Whose report it is.
    pub user_id: u64,
    /// Always `"completed"`.
    pub status: String,
    /// A fresh id for the report.
    pub report_id: String,
}

/// Generates a report for a user (simulated: waits 5 s).
#[taskq::task(name = "tasks.generate_report")]
pub async fn generate_report(user_id: u64) -> anyhow::Result<Report> {
    tokio::time::sleep(simulated_delay(5_000)).await;
    Ok(Report {
        user_id,
        status: "completed".to_owned(),
        report_id: uuid::Uuid::new_v4().to_string(),
    })
}

/// Adds two numbers: the smallest task there is.
#[taskq::task(name = "tasks.add")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}
