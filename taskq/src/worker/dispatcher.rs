//! Starts reserved jobs in the order they were fetched, one per free execution slot, so that
//! priorities and FIFO order hold. On shutdown, jobs that never got a slot go back to their
//! queues.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::executor::Job;
use super::Shared;

pub(super) async fn run(shared: Arc<Shared>, mut ready: mpsc::UnboundedReceiver<Job>) {
    loop {
        let job = tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            job = ready.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let slot = tokio::select! {
            biased;
            slot = shared.running.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
            () = shared.stopping.cancelled() => {
                job.requeue();
                break;
            }
        };
        shared.jobs.spawn(job.run(slot));
    }
    // Shutting down: what is still waiting never started. The consumer hands over its last
    // fetch before it drops its sender, which ends this loop.
    while let Some(job) = ready.recv().await {
        job.requeue();
    }
}
