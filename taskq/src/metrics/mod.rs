//! Prometheus metrics. Each worker serves its own (see
//! [`WorkerBuilder::metrics_addr`](crate::WorkerBuilder::metrics_addr)): what it ran, by task.
//! The queues belong to the fleet, not to a worker, so their depths come from
//! [`FleetMetrics`], which reads them from Redis at each scrape: run one per fleet
//! (`taskq metrics --listen ADDR`), not one per worker.
//!
//! | metric | what |
//! |---|---|
//! | `taskq_queue_messages{queue, state}` | messages per queue and state: `waiting`, `unacked` (held by a worker), `scheduled` (parked until their ETA), `dead` (dead-lettered) |
//! | `taskq_queue_paused{queue}` | 1 while the queue is paused for every taskq worker |

pub(crate) mod http;

use std::future::Future;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::broker::QueueStats;
use crate::Client;

/// The fleet's queue depths, read from Redis when scraped.
///
/// ```no_run
/// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
/// let fleet = taskq::metrics::FleetMetrics::new(client);
/// println!("{}", fleet.render().await?);
/// fleet
///     .serve("127.0.0.1:9809".parse().unwrap(), taskq::worker::shutdown_signal())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    client: Client,
}

type QueueState = [(&'static str, String); 2];
type QueueLabel = [(&'static str, String); 1];

impl FleetMetrics {
    /// The queue depths of `client`'s broker.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The metrics now, as OpenMetrics text.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) when the broker cannot be read.
    pub async fn render(&self) -> crate::Result<String> {
        let broker = self.client.broker();
        let stats = broker.queue_stats(&[]).await?;
        let paused = broker.paused_queues().await?;
        Ok(openmetrics(&stats, &paused))
    }

    /// Serves [`render`](Self::render) on `addr` (`GET /metrics`) until `stop` completes. A
    /// scrape while Redis cannot be read answers no samples (Prometheus then marks the series
    /// stale) and is logged.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) when `addr` cannot be listened on.
    pub async fn serve(
        self,
        addr: std::net::SocketAddr,
        stop: impl Future<Output = ()>,
    ) -> crate::Result<()> {
        let listener = http::bind(addr, "the fleet metrics address").await?;
        tracing::info!("fleet metrics on http://{addr}/metrics");
        let cancel = CancellationToken::new();
        let render = move || {
            let fleet = self.clone();
            async move {
                fleet.render().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "fleet metrics: cannot read the queues");
                    "# EOF\n".to_owned()
                })
            }
        };
        let serving = tokio::spawn(http::serve(listener, cancel.clone(), render));
        stop.await;
        cancel.cancel();
        let _ = serving.await;
        Ok(())
    }
}

/// The OpenMetrics text of the queue counts and the paused queues.
fn openmetrics(stats: &[QueueStats], paused: &[String]) -> String {
    let mut registry = Registry::with_prefix("taskq");
    let messages = Family::<QueueState, Gauge>::default();
    registry.register(
        "queue_messages",
        "Messages per queue and state (waiting, unacked, scheduled, dead)",
        messages.clone(),
    );
    let paused_family = Family::<QueueLabel, Gauge>::default();
    registry.register(
        "queue_paused",
        "1 while the queue is paused for every taskq worker",
        paused_family.clone(),
    );
    for queue in stats {
        let counts = [
            ("waiting", queue.waiting),
            ("unacked", queue.unacked),
            ("scheduled", queue.scheduled),
            ("dead", queue.dead_letters),
        ];
        for (state, count) in counts {
            let labels = [("queue", queue.queue.clone()), ("state", state.to_owned())];
            messages.get_or_create(&labels).set(count as i64);
        }
        let is_paused = paused.contains(&queue.queue);
        paused_family
            .get_or_create(&[("queue", queue.queue.clone())])
            .set(i64::from(is_paused));
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_queue_has_a_count_per_state_and_its_pause() {
        let stats = [QueueStats {
            queue: "reports".into(),
            waiting: 3,
            unacked: 2,
            scheduled: 1,
            dead_letters: 4,
        }];
        let text = openmetrics(&stats, &["reports".to_owned()]);
        for line in [
            "taskq_queue_messages{queue=\"reports\",state=\"waiting\"} 3",
            "taskq_queue_messages{queue=\"reports\",state=\"unacked\"} 2",
            "taskq_queue_messages{queue=\"reports\",state=\"scheduled\"} 1",
            "taskq_queue_messages{queue=\"reports\",state=\"dead\"} 4",
            "taskq_queue_paused{queue=\"reports\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
