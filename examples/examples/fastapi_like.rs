//! Run with: `cargo run --example fastapi_like`
//!
//! The seeds' web app on http://127.0.0.1:8000 (`PORT` overrides):
//!
//! ```text
//! curl http://127.0.0.1:8000/push/my-device          # {"message": "Notification sent", "task_id": ...}
//! curl -X POST http://127.0.0.1:8000/start-report/42  # {"task_id": ..., "status": "processing"}
//! curl http://127.0.0.1:8000/task-status/<task_id>    # {"status": "completed", "result": ...}
//! curl -X POST http://127.0.0.1:8000/campaign/5       # 5 pushes, then a summary (a chord)
//! ```
//!
//! Tasks run on workers (`cargo run --example worker`) through Redis. When the broker is
//! `memory://`, when no broker is configured and no Redis answers at the default address, or
//! when no worker answers a ping on the Redis in use, the app runs a worker inside its own
//! process instead, and says so at start: the scenario completes on any machine.

use std::time::Duration;

use taskq::config::mask_url;
use taskq::control::ControlOptions;
use taskq::{Client, Config, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq_examples::init_tracing();
    let (client, run_here) = choose_client().await?;
    client.set_global();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);

    let worker = run_here.then(|| {
        let worker = Worker::builder(client.clone()).banner(false).build();
        let stop = worker.shutdown_handle();
        (tokio::spawn(worker.run_until(std::future::pending())), stop)
    });
    // One signal (SIGINT or SIGTERM) stops the server, then the embedded worker.
    axum::serve(listener, taskq_examples::web::router())
        .with_graceful_shutdown(taskq::worker::shutdown_signal())
        .await?;
    if let Some((running, stop)) = worker {
        stop.shutdown();
        running.await??;
    }
    Ok(())
}

/// The client, and whether this process must run the tasks itself: on `memory://` (asked
/// for, or when nothing is configured and no Redis answers at the default address), or on a
/// Redis where no worker answers a ping, so that a report always completes. Says which.
async fn choose_client() -> anyhow::Result<(Client, bool)> {
    let config = Config::from_env()?;
    let explicit = config.broker_url_is_explicit;
    let address = mask_url(&config.broker_url);
    let client = Client::from_config(config)?;
    if address.starts_with("memory://") {
        tracing::info!("broker {address}: tasks run in this process");
        return Ok((client, true));
    }
    let reachable = tokio::time::timeout(Duration::from_secs(2), client.broker().ping())
        .await
        .is_ok_and(|r| r.is_ok());
    if !reachable && !explicit {
        tracing::warn!(
            "no Redis answers at {address} and TASKQ_BROKER_URL is not set: broker memory://, \
             tasks run in this process"
        );
        let mut config = Config::from_env()?;
        config.broker_url = "memory://".to_owned();
        config.result_backend = "memory://".to_owned();
        return Ok((Client::from_config(config)?, true));
    }
    if !reachable {
        tracing::warn!("broker {address} does not answer; tasks are sent when it does");
        return Ok((client, false));
    }
    let workers = client
        .control()
        .ping(&ControlOptions::new().timeout(Duration::from_secs(1)))
        .await?;
    if workers.is_empty() {
        tracing::warn!(
            "broker {address}: no worker answered a ping, so this process runs the tasks too \
             (start `cargo run --example worker` to run them in a worker of their own)"
        );
        return Ok((client, true));
    }
    let nodes: Vec<&str> = workers.iter().map(|w| w.node.as_str()).collect();
    tracing::info!(
        "broker {address}: tasks run on {} worker(s): {}",
        nodes.len(),
        nodes.join(", ")
    );
    Ok((client, false))
}
