//! Start marks: before a task runs, its message's delivery tag goes into the started set
//! (`taskq.started`). If the worker then dies or freezes, recovery finds the mark and counts
//! a crash against the message (`taskq_crashes`), so a message that keeps killing its workers
//! is dead-lettered after `TASKQ_MAX_RECOVERIES` crashes, its first run included. Messages a
//! dead worker had only prefetched carry no mark and are never blamed.
//!
//! The mark must be in Redis before the task runs (a task that aborts the process at once is
//! exactly the one to catch), yet waiting for it would add a round trip to every start. So
//! the dispatcher asks for the mark of the job next in line while that job still waits for
//! an execution slot, and the job checks that it landed when it gets one: the round trip
//! overlaps the running tasks. The price is that a worker that dies while a job waits next
//! in line blames that job too, one message per crash beyond those running, the same kind of
//! doubt as for the innocent tasks that ran beside the culprit.
//!
//! A worker with idle slots needs no such overlap for what it fetches next: the fetch marks
//! as many messages as it has idle slots in the same script, at no cost in round trips.
//!
//! Marks asked for together share one command: one writer task takes every waiting mark in
//! one `SADD`.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::broker::Broker;

/// Most marks written in one command.
const MAX_BATCH: usize = 512;

/// Why a mark could not be written (shared by every start of the batch).
pub(super) type MarkError = Arc<crate::Error>;

/// The handle through which jobs mark their messages started.
///
/// Its writer task starts with it and ends once the handle is dropped, after writing the
/// marks already asked for.
#[derive(Debug)]
pub(super) struct StartMarks {
    requests: mpsc::UnboundedSender<Request>,
}

#[derive(Debug)]
struct Request {
    tag: String,
    written: oneshot::Sender<Result<(), MarkError>>,
}

impl StartMarks {
    /// Starts the writer task, which writes through `broker`. Must be called within a tokio
    /// runtime.
    pub(super) fn start(broker: Arc<dyn Broker>) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_marks(broker, queue));
        Self { requests }
    }

    /// Starts marking the message held under `tag` started; [`PendingMark::landed`] tells
    /// when Redis has the mark.
    pub(super) fn begin(&self, tag: &str) -> PendingMark {
        let (written, outcome) = oneshot::channel();
        let request = Request {
            tag: tag.to_owned(),
            written,
        };
        // A closed writer shows as a dropped answer.
        let _ = self.requests.send(request);
        PendingMark { outcome }
    }
}

/// A start mark on its way to Redis.
#[derive(Debug)]
pub(super) struct PendingMark {
    outcome: oneshot::Receiver<Result<(), MarkError>>,
}

impl PendingMark {
    /// A mark already in Redis: the fetch wrote it.
    pub(super) fn landed_already() -> Self {
        let (written, outcome) = oneshot::channel();
        let _ = written.send(Ok(()));
        Self { outcome }
    }

    /// Waits until Redis has the mark, or says why it has not.
    pub(super) async fn landed(self) -> Result<(), MarkError> {
        self.outcome
            .await
            .unwrap_or_else(|_| Err(Arc::new(stopped())))
    }
}

fn stopped() -> crate::Error {
    crate::Error::Closed("the start-mark writer")
}

/// Writes the marks asked for, each round taking all that wait, until every handle is gone.
async fn write_marks(broker: Arc<dyn Broker>, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let tags: Vec<String> = batch.iter().map(|r| r.tag.clone()).collect();
        let outcome = broker.mark_started(&tags).await.map_err(Arc::new);
        for request in batch.drain(..) {
            // A job that gave up waiting (the worker is stopping) needs no answer.
            let _ = request.written.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::memory::MemoryBroker;

    #[tokio::test]
    async fn marks_reach_the_broker_before_the_start_goes_on() {
        let broker = MemoryBroker::named("start-marks-test");
        let marks = StartMarks::start(broker.clone());
        let (a, b) = (marks.begin("tag-a"), marks.begin("tag-b"));
        a.landed().await.unwrap();
        b.landed().await.unwrap();
        assert!(broker.is_started("tag-a") && broker.is_started("tag-b"));
    }
}
