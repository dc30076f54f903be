//! The periodic scheduler as a part of the worker (Celery's `worker -B`): started last, so
//! stopped first, giving up its lead while the rest of the worker drains.

use async_trait::async_trait;

use super::part::Part;
use crate::beat::{Beat, Entry};
use crate::Client;

/// The scheduler running inside the worker.
pub(super) struct BeatPart(Beat);

impl BeatPart {
    /// Starts scheduling `entries` through `client`.
    pub(super) fn start(client: Client, entries: Vec<Entry>) -> Self {
        Self(Beat::start(client, entries))
    }
}

#[async_trait]
impl Part for BeatPart {
    fn name(&self) -> &'static str {
        "beat"
    }

    async fn shutdown(self: Box<Self>) {
        self.0.shutdown().await;
    }
}
