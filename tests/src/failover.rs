//! What the failover tests share: a producer that sends numbered calls one after the other
//! while a test kills a master, and the count of accepted calls that never ran.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// What a [`Producer`] saw.
#[derive(Default)]
pub struct Sent {
    /// The calls whose send returned `Ok`, by number.
    pub accepted: Vec<(u64, taskq::AsyncResult<u64>)>,
    /// Sends that returned an error.
    pub refused: usize,
    /// When the first send started after the kill succeeded.
    pub back_at: Option<Instant>,
    /// That send's call.
    pub first_after_kill: u64,
}

/// Sends call `n`, `n + 1`, … one after the other (2 ms apart) until stopped.
pub struct Producer {
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    killed_at: Arc<Mutex<Option<Instant>>>,
    task: JoinHandle<Sent>,
}

impl Producer {
    /// Starts sending from call `first`; `send(n)` sends call `n`.
    pub fn start<F, Fut>(first: u64, send: F) -> Producer
    where
        F: Fn(u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = taskq::Result<taskq::AsyncResult<u64>>> + Send,
    {
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (p, s, k) = (paused.clone(), stop.clone(), killed_at.clone());
        let task = tokio::spawn(async move {
            let mut sent = Sent::default();
            let mut n = first;
            while !s.load(Ordering::Acquire) {
                if p.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let sending = Instant::now();
                match send(n).await {
                    Ok(result) => {
                        let killed = *k.lock().unwrap();
                        if killed.is_some_and(|at| sending > at) && sent.back_at.is_none() {
                            sent.back_at = Some(Instant::now());
                            sent.first_after_kill = n;
                        }
                        sent.accepted.push((n, result));
                        n += 1;
                    }
                    Err(_) => sent.refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sent
        });
        Producer {
            paused,
            stop,
            killed_at,
            task,
        }
    }

    /// Stops sending (until [`resume`](Self::resume)), e.g. while the replicas catch up.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Sends again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
    }

    /// Notes the kill's instant: sends started after it count as after the kill.
    pub fn killed_at(&self, at: Instant) {
        *self.killed_at.lock().unwrap() = Some(at);
    }

    /// Stops and returns what was sent.
    pub async fn stop(self) -> Sent {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap()
    }
}

/// The calls among `accepted` (each a number and its result) without a SUCCESS once that list
/// stops shrinking: unchanged for 7 s (longer than the failover tests' visibility timeout, so
/// a message whose ack died with a master has come back and run), or after 40 s.
pub async fn settled_losses(accepted: &[(u64, taskq::AsyncResult<u64>)]) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut lost = Vec::new();
    let mut unchanged_since = Instant::now();
    loop {
        let mut now_lost = Vec::new();
        for (n, result) in accepted {
            if !matches!(result.state().await, Ok(taskq::TaskState::Success)) {
                now_lost.push(*n);
            }
        }
        if now_lost != lost {
            unchanged_since = Instant::now();
            lost = now_lost;
        }
        let settled = unchanged_since.elapsed() > Duration::from_secs(7);
        if lost.is_empty() || settled || Instant::now() > deadline {
            return lost;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
