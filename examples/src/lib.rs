//! The seeds' tasks and web app in Rust, shared by the `worker` and `fastapi_like` examples.
//!
//! * `cargo run --example worker`: a worker that runs the tasks below.
//! * `cargo run --example fastapi_like`: the web app on 127.0.0.1:8000 that sends them.

pub mod tasks;
pub mod web;

/// Logs to stderr, `info` by default, `RUST_LOG` to change.
///
/// ```
/// taskq_examples::init_tracing();
/// tracing::info!("visible with RUST_LOG=info (the default)");
/// ```
pub fn init_tracing() {
    taskq::worker::init_logging();
}
