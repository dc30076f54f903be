//! The worker's parts and their order. Each part is a struct with a `start` (in its own
//! module) and a [`Part::shutdown`]; [`Parts`] keeps them in the order they started and stops
//! them in reverse, so a part is stopped only after everything that relies on it.

use std::future::Future;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running part of the worker.
#[async_trait]
pub(super) trait Part: Send {
    /// The part's name in log lines.
    fn name(&self) -> &'static str;

    /// Stops the part and returns once it has stopped, with its work handed on or settled.
    async fn shutdown(self: Box<Self>);
}

/// The worker's running parts, in the order they started.
#[derive(Default)]
pub(super) struct Parts {
    started: Vec<Box<dyn Part>>,
}

impl Parts {
    /// Records `part` as started after every part recorded so far.
    pub(super) fn push(&mut self, part: impl Part + 'static) {
        tracing::debug!(part = part.name(), "worker part started");
        self.started.push(Box::new(part));
    }

    /// Stops every part, the last started first.
    pub(super) async fn shutdown(self) {
        for part in self.started.into_iter().rev() {
            let name = part.name();
            part.shutdown().await;
            tracing::debug!(part = name, "worker part stopped");
        }
    }
}

/// A part that is one [`Loop`] and nothing else: its shutdown stops the loop.
pub(super) trait LoopPart: Send {
    /// The part's name in log lines.
    const NAME: &'static str;

    /// The loop the part runs.
    fn into_loop(self) -> Loop;
}

#[async_trait]
impl<T: LoopPart> Part for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    async fn shutdown(self: Box<Self>) {
        self.into_loop().stop().await;
    }
}

/// A loop running as a task of its own until its stop token is cancelled: the shape of most
/// parts.
#[derive(Debug)]
pub(super) struct Loop {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Loop {
    /// Spawns the loop `body` makes from the token that will stop it.
    pub(super) fn spawn<F>(body: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(body(stop.clone()));
        Self { stop, task }
    }

    /// Cancels the loop's token and waits for the loop to return.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Recording {
        name: &'static str,
        stopped: Arc<Mutex<Vec<&'static str>>>,
    }

    #[async_trait]
    impl Part for Recording {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn shutdown(self: Box<Self>) {
            self.stopped.lock().unwrap().push(self.name);
        }
    }

    #[tokio::test]
    async fn parts_stop_in_the_reverse_of_their_start() {
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let mut parts = Parts::default();
        for name in ["first", "second", "third"] {
            parts.push(Recording {
                name,
                stopped: stopped.clone(),
            });
        }
        parts.shutdown().await;
        assert_eq!(*stopped.lock().unwrap(), ["third", "second", "first"]);
    }

    #[tokio::test]
    async fn a_loop_returns_once_stopped() {
        let ran_to_end = Arc::new(Mutex::new(false));
        let flag = ran_to_end.clone();
        let looping = Loop::spawn(|stop| async move {
            stop.cancelled().await;
            *flag.lock().unwrap() = true;
        });
        looping.stop().await;
        assert!(*ran_to_end.lock().unwrap());
    }
}
