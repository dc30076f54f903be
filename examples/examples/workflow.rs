//! Run with: `cargo run --example workflow` (with `cargo run --example worker` running)
//!
//! Sends two workflows to the workers and waits for their results:
//!
//! * a chain, `add(2, 2)` → `add(·, 4)` → `add(·, 8)`: each step gets the previous result
//!   first, as in Celery's `chain(add.s(2, 2), add.s(4), add.s(8))`;
//! * a chord: a push to 5 devices in parallel, then one summary given their results, as in
//!   Celery's `chord(group(send_push.s(t) for t in tokens), summarise.s())`.
//!
//! The broker comes from `TASKQ_BROKER_URL` (or `.env`), as for the worker.

use std::time::Duration;

use taskq::canvas::{chain, chord, group};
use taskq_examples::tasks::{add, send_push_notification, summarise_campaign};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq_examples::init_tracing();
    let client = taskq::Client::from_env()?;

    let sum = chain(add.s(2, 2))
        .then(add.partial(4))
        .then(add.partial(8))
        .apply_async(&client)
        .await?;
    println!("chain: {}", sum.get(Duration::from_secs(30)).await?); // 16

    let pushes = (1..=5).map(|n| send_push_notification.s(format!("device-{n}")));
    let summary = chord(group(pushes), summarise_campaign.partial())
        .apply_async(&client)
        .await?;
    println!("chord: {}", summary.get(Duration::from_secs(60)).await?);
    Ok(())
}
