//! The start-up banner, laid out like Celery's so operators find what they expect.

use super::Settings;
use crate::{registry, Client};

pub(super) fn render(client: &Client, settings: &Settings) -> String {
    let config = client.config();
    // Celery shows an autoscaling worker's range as `{min=1, max=10}`.
    let (concurrency, most) = match settings.autoscale {
        Some((max, min)) => (format!("{{min={min}, max={max}}}"), max),
        None => (config.concurrency.to_string(), config.concurrency),
    };
    let version = env!("CARGO_PKG_VERSION");
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
    let mut out = format!(
        "
 -------------- {node} v{version}
--- ***** -----
-- ******* ---- {os} {now} UTC
- *** --- * ---
- ** ---------- [config]
- ** ---------- .> app:         taskq
- ** ---------- .> transport:   {transport}
- ** ---------- .> results:     {results}
- *** --- * --- .> concurrency: {concurrency} (tokio)
-- ******* ---- .> prefetch:    {prefetch} messages
--- ***** -----
 -------------- [queues]
",
        node = settings.hostname,
        os = std::env::consts::OS,
        transport = client.broker().describe(),
        results = client.backend().describe(),
        prefetch = most * config.prefetch_multiplier,
    );
    for queue in &client.config().queues {
        out.push_str(&format!("                .> {queue}\n"));
    }
    out.push_str("\n[tasks]\n");
    for task in registry::all() {
        out.push_str(&format!("  . {}\n", task.name));
    }
    out
}
