//! The log subscriber a worker installs when its application installed none, so that a new
//! worker binary shows "received", "succeeded", "failed" and "retry" lines instead of nothing
//! (tracing drops every event while no subscriber is set).

use tracing::level_filters::LevelFilter;

/// Installs a `fmt` subscriber on stderr unless one is already the global default: `level`
/// when given (`--loglevel`), else `RUST_LOG`, else INFO. Colours only at a terminal.
#[cfg(feature = "logging")]
pub(super) fn install_default(level: Option<LevelFilter>) {
    use tracing_subscriber::EnvFilter;

    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = match level {
        Some(level) => EnvFilter::new(level.to_string()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Without the `logging` feature the application installs its own subscriber.
#[cfg(not(feature = "logging"))]
pub(super) fn install_default(_level: Option<LevelFilter>) {}
