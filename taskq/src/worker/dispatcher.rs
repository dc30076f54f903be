//! Starts reserved jobs in the order they were fetched, one per free execution slot, so that
//! priorities and FIFO order hold. A job of a rate-limited task whose turn is still to come
//! waits aside, on a timer and without a slot, and is started when its turn comes (see
//! [`crate::rate_limit`]). On shutdown, jobs that never got a slot go back to their queues.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
    let mut waiting = WaitingForTurns::default();
    loop {
        let next_turn = waiting.next_turn();
        let job = tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            () = sleep_until(next_turn) => waiting.pop().expect("a turn came, so a job waits"),
            job = ready.recv() => match job {
                Some(job) => match job.turn.filter(|turn| *turn > Instant::now()) {
                    Some(turn) => {
                        waiting.push(turn, job);
                        continue;
                    }
                    None => job,
                },
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
    for job in waiting.into_jobs() {
        job.requeue();
    }
    while let Some(job) = ready.recv().await {
        job.requeue();
    }
}

/// Sleeps until `turn`; forever without one.
async fn sleep_until(turn: Option<Instant>) {
    match turn {
        Some(turn) => tokio::time::sleep_until(turn).await,
        None => std::future::pending().await,
    }
}

/// Jobs waiting for their rate-limit turns, the soonest first.
#[derive(Default)]
struct WaitingForTurns {
    turns: BinaryHeap<Reverse<Turn>>,
    /// Breaks ties between equal turns in arrival order.
    arrivals: u64,
}

impl WaitingForTurns {
    fn push(&mut self, at: Instant, job: Job) {
        self.arrivals += 1;
        let arrival = self.arrivals;
        self.turns.push(Reverse(Turn { at, arrival, job }));
    }

    /// When the soonest turn comes.
    fn next_turn(&self) -> Option<Instant> {
        self.turns.peek().map(|Reverse(turn)| turn.at)
    }

    /// The job whose turn comes first.
    fn pop(&mut self) -> Option<Job> {
        self.turns.pop().map(|Reverse(turn)| turn.job)
    }

    fn into_jobs(self) -> impl Iterator<Item = Job> {
        self.turns.into_iter().map(|Reverse(turn)| turn.job)
    }
}

/// A job and its turn, ordered by turn, then arrival.
struct Turn {
    at: Instant,
    arrival: u64,
    job: Job,
}

impl Turn {
    fn key(&self) -> (Instant, u64) {
        (self.at, self.arrival)
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Turn {}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}
