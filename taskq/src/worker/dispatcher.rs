//! Starts reserved jobs in the order they were fetched, one per free execution slot, so that
//! priorities and FIFO order hold. On shutdown, jobs that never got a slot go back to their
//! queues.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::executor::Job;
use super::start_marks::PendingMark;
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
