//! Run with: `cargo run --example fastapi_like`
//!
//! The seeds' web app on http://127.0.0.1:8000 (`PORT` overrides):
//!
//! ```text
//! curl http://127.0.0.1:8000/push/my-device          # {"message": "Notification sent", "task_id": ...}
//! curl -X POST http://127.0.0.1:8000/start-report/42  # {"task_id": ..., "status": "processing"}
//! curl http://127.0.0.1:8000/task-status/<task_id>    # {"status": "completed", "result": ...}
//! ```
//!
//! Tasks run on workers (`cargo run --example worker`) through Redis. When the broker is
//! `memory://`, or when no broker is configured and no Redis answers at the default address,
//! the app runs a worker inside its own process instead, so the whole scenario works on a
//! machine without Redis.

use std::time::Duration;

use taskq::{Client, Config, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    taskq_examples::init_tracing();
    let client = choose_client().await?;
    client.set_global();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);

    let embedded = client.broker().describe().starts_with("memory://");
    let worker = embedded.then(|| {
        let worker = Worker::builder(client.clone()).build();
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

/// The configured client, or an in-process one when nothing is configured and no Redis runs.
async fn choose_client() -> anyhow::Result<Client> {
    let config = Config::from_env()?;
    let explicit = config.broker_url_is_explicit;
    let client = Client::from_config(config)?;
    if explicit
        || tokio::time::timeout(Duration::from_secs(2), client.broker().ping())
            .await
            .is_ok_and(|r| r.is_ok())
    {
        return Ok(client);
    }
    tracing::warn!(
        "no Redis answers at {} and TASKQ_BROKER_URL is not set: running tasks in this process on memory://",
        client.broker().describe()
    );
    let mut config = Config::from_env()?;
    config.broker_url = "memory://".to_owned();
    config.result_backend = "memory://".to_owned();
    Ok(Client::from_config(config)?)
}
