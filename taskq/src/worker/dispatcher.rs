//! Starts reserved jobs in the order they were fetched, one per free execution slot, so that
//! priorities and FIFO order hold. On shutdown, jobs that never got a slot go back to their
//! queues.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::executor::Job;
use super::part::Part;
use super::start_marks::PendingMark;
use super::Shared;

/// The part that starts jobs, and on shutdown drains them.
#[derive(Debug)]
pub(super) struct Dispatcher {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    /// Starts the jobs `ready` hands over, one per free execution slot, until the worker
    /// stops.
    pub(super) fn start(shared: Arc<Shared>, ready: mpsc::UnboundedReceiver<Job>) -> Self {
        let task = tokio::spawn(run(shared.clone(), ready));
        Self { shared, task }
    }
}

#[async_trait]
impl Part for Dispatcher {
    fn name(&self) -> &'static str {
        "dispatcher"
    }

    /// Puts back the jobs that never started (the consumer, stopped first, has handed over
    /// its last fetch), then gives the running ones the grace period, cancelling and putting
    /// back what outlives it.
    async fn shutdown(self: Box<Self>) {
        let _ = self.task.await;
        drain(&self.shared).await;
    }
}

/// Waits for running jobs, cancelling (and putting back) what outlives the grace period.
async fn drain(shared: &Shared) {
    shared.jobs.close();
    let grace = shared.config().shutdown_grace;
    if tokio::time::timeout(grace, shared.jobs.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?grace,
            "tasks still running after the grace period are cancelled and put back in their queues"
        );
        shared.hard_stop.cancel();
        shared.jobs.wait().await;
    }
}

async fn run(shared: Arc<Shared>, mut ready: mpsc::UnboundedReceiver<Job>) {
    loop {
        let job = tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            job = ready.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        // Next in line: its start mark travels while it waits for a slot.
        let mark = if job.start_marked {
            PendingMark::landed_already()
        } else {
            shared.start_marks.begin(&job.delivery.tag)
        };
        let slot = tokio::select! {
            biased;
            slot = shared.execution_slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
            () = shared.stopping.cancelled() => {
                // The requeue takes the mark back, so it must not overtake it.
                let _ = mark.landed().await;
                job.requeue();
                break;
            }
        };
        shared.jobs.spawn(job.run(slot, mark));
    }
    // Shutting down: what is still waiting never started. The consumer hands over its last
    // fetch before it drops its sender, which ends this loop.
    while let Some(job) = ready.recv().await {
        job.requeue();
    }
}
