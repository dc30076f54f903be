//! The Redis side of a fanout subscription: a dedicated Pub/Sub connection that
//! `PSUBSCRIBE`s kombu's channel patterns and feeds a [`Subscription`], reconnecting when
//! the connection drops.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Subscription, SUBSCRIPTION_BUFFER};
use crate::backoff::Backoff;
use crate::connection::Endpoint;
use crate::Result;

/// Subscribes to `patterns` on a new connection to `endpoint`, then keeps feeding the returned
/// subscription from a background task (resubscribing to the master of the moment after a
/// Sentinel failover).
///
/// # Errors
///
/// When the first connection or `PSUBSCRIBE` fails: the caller learns at once that Redis is
/// away; later drops are retried in the background.
pub(super) async fn subscribe(endpoint: Endpoint, patterns: Vec<String>) -> Result<Subscription> {
    let pubsub = connect(&endpoint, &patterns).await?;
    let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
    let feeder = tokio::spawn(feed(endpoint, patterns, pubsub, tx));
    Ok(Subscription::new(rx, feeder.abort_handle()))
}

async fn connect(endpoint: &Endpoint, patterns: &[String]) -> Result<redis::aio::PubSub> {
    let mut pubsub = endpoint.client().await?.get_async_pubsub().await?;
    pubsub.psubscribe(patterns).await?;
    Ok(pubsub)
}

/// Forwards payloads until the subscription is dropped; reconnects with backoff on a drop.
async fn feed(
    endpoint: Endpoint,
    patterns: Vec<String>,
    mut pubsub: redis::aio::PubSub,
    tx: mpsc::Sender<String>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                if tx.send(payload).await.is_err() {
                    return;
                }
            }
        }
        tracing::warn!(?patterns, "Pub/Sub connection lost; resubscribing");
        pubsub = match reconnect(&endpoint, &patterns, &tx).await {
            Some(p) => p,
            None => return,
        };
    }
}

/// Retries until subscribed again; `None` if the reader went away meanwhile.
async fn reconnect(
    endpoint: &Endpoint,
    patterns: &[String],
    tx: &mpsc::Sender<String>,
) -> Option<redis::aio::PubSub> {
    let mut backoff = Backoff::starting_at(Duration::from_millis(100));
    loop {
        if tx.is_closed() {
            return None;
        }
        let wait = backoff.next_delay();
        match connect(endpoint, patterns).await {
            Ok(p) => return Some(p),
            Err(e) => tracing::warn!(error = %e, "cannot resubscribe; retrying in {wait:?}"),
        }
        tokio::time::sleep(wait).await;
    }
}
