//! The metrics scenario: the drain scenario with the worker's Prometheus metrics off (the
//! default) and on (served on a free loopback port, every task counted and timed), to show
//! what counting costs on the hot path.

use taskq::Client;

use super::{drain, Bench};
use crate::cli::Scenario;
use crate::report::Row;

/// Drains `n` no-op tasks at `concurrency`, with the worker's metrics on or off.
pub async fn drain(
    bench: &mut Bench,
    n: u64,
    concurrency: usize,
    metrics: bool,
) -> anyhow::Result<Row> {
    let plain = bench.client.clone();
    if metrics {
        bench.client = with_metrics(&plain)?;
    }
    let drained = drain::drain(bench, n, concurrency).await;
    bench.client = plain;
    let mut row = drained?;
    row.scenario = Scenario::Metrics;
    let state = if metrics { "on" } else { "off" };
    row.label = format!("drain with results, metrics {state}, concurrency {concurrency}");
    Ok(row)
}

/// `client` with its worker's metrics served on a free loopback port.
fn with_metrics(client: &Client) -> anyhow::Result<Client> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = client.config().clone();
    config.metrics_addr = Some(port);
    Ok(Client::from_config(config)?)
}
