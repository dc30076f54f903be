//! The worker's metrics part: serves what [`super::Recorder`] counted, with the gauges read
//! at each scrape, through [`crate::metrics`]'s endpoint.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::super::part::{Loop, LoopPart};
use super::super::Shared;
use crate::metrics::http;

/// Binds the metrics address, before the worker starts, so that a taken address fails the
/// start with a clear error instead of a worker without its metrics.
pub(in crate::worker) async fn bind(addr: std::net::SocketAddr) -> crate::Result<TcpListener> {
    http::bind(addr, "TASKQ_METRICS_ADDR").await
}

/// The part that serves the metrics.
#[derive(Debug)]
pub(in crate::worker) struct MetricsServer(Loop);

impl MetricsServer {
    /// Serves `shared`'s metrics on `listener` until shut down.
    pub(in crate::worker) fn start(shared: Arc<Shared>, listener: TcpListener) -> Self {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        let render = move || {
            let text = scrape(&shared);
            async move { text }
        };
        Self(Loop::spawn(|stop| http::serve(listener, stop, render)))
    }
}

impl LoopPart for MetricsServer {
    const NAME: &'static str = "metrics";

    fn into_loop(self) -> Loop {
        self.0
    }
}

/// The metrics now, with the gauges read at this moment.
fn scrape(shared: &Shared) -> String {
    let Some(metrics) = &shared.metrics.0 else {
        return String::new();
    };
    let slots = shared.pool.size();
    let running = slots.saturating_sub(shared.execution_slots.available_permits());
    metrics.slots.set(slots as i64);
    metrics
        .prefetched
        .set(shared.held.len().saturating_sub(running) as i64);
    metrics.encode()
}
