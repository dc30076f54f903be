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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        // Colours for people at a terminal, plain text for files and log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
