//! The worker's slots, resizable while it runs (`pool_grow`, `pool_shrink`, the autoscaler):
//! execution slots (tasks running at once) and reservation slots (messages held unfinished,
//! the prefetch).
//!
//! Growing adds permits to the semaphores at once. Shrinking never cancels a running task:
//! the slots to remove are taken from the semaphore as tasks give them back, and dropped
//! (`forget`). Tokio's semaphore serves waiters in order, so while such a removal waits no
//! newer task takes the slot it waits for: the number running falls to the new size as the
//! running tasks end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The execution and reservation slots, and their sizes now.
#[derive(Debug)]
pub(super) struct Pool {
    execution: Arc<Semaphore>,
    reservation: Arc<Semaphore>,
    /// Messages reserved per execution slot.
    prefetch: usize,
    /// Execution slots, those being removed not counted.
    size: AtomicUsize,
    /// Reservation slots, likewise.
    reservations: AtomicUsize,
    /// Ends removals still waiting when the worker stops.
    stopping: CancellationToken,
}

impl Pool {
    /// Pools of `size` execution and `reservations` reservation slots, already holding
    /// those permits.
    pub(super) fn new(
        execution: Arc<Semaphore>,
        reservation: Arc<Semaphore>,
        prefetch: usize,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            size: AtomicUsize::new(execution.available_permits()),
            reservations: AtomicUsize::new(reservation.available_permits()),
            execution,
            reservation,
            prefetch,
            stopping,
        }
    }

    /// How many tasks may run at once now (`stats`' `max-concurrency`).
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// How many messages the worker may hold now (`stats`' `prefetch_count`).
    pub(super) fn reservations(&self) -> usize {
        self.reservations.load(Ordering::Relaxed)
    }

    /// Messages reserved per execution slot.
    pub(super) fn prefetch(&self) -> usize {
        self.prefetch
    }

    /// Adds `n` execution slots and their share of reservations (Celery's `pool_grow`,
    /// which also raises the prefetch count by `n × multiplier`).
    pub(super) fn grow(&self, n: usize) {
        self.grow_execution(n);
        self.change_reservations(signed(n * self.prefetch));
    }

    /// Removes `n` execution slots and their share of reservations, as running tasks end.
    pub(super) fn shrink(&self, n: usize) {
        self.shrink_execution(n);
        self.change_reservations(-signed(n * self.prefetch));
    }

    /// Adds `n` execution slots only (the autoscaler keeps the reservations of its maximum).
    pub(super) fn grow_execution(&self, n: usize) {
        self.execution.add_permits(n);
        self.size.fetch_add(n, Ordering::Relaxed);
    }

    /// Removes `n` execution slots only, as running tasks end.
    pub(super) fn shrink_execution(&self, n: usize) {
        let n = n.min(self.size());
        self.size.fetch_sub(n, Ordering::Relaxed);
        retire(&self.execution, n, &self.stopping);
    }

    /// Changes the reservation slots by `delta`, keeping at least one.
    pub(super) fn change_reservations(&self, delta: isize) {
        if delta >= 0 {
            self.reservation.add_permits(delta.unsigned_abs());
            self.reservations
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
            return;
        }
        let n = delta
            .unsigned_abs()
            .min(self.reservations().saturating_sub(1));
        self.reservations.fetch_sub(n, Ordering::Relaxed);
        retire(&self.reservation, n, &self.stopping);
    }
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// Takes `n` permits from `slots` as they come free and drops them; a stopping worker ends
/// the wait (its slots no longer matter).
fn retire(slots: &Arc<Semaphore>, n: usize, stopping: &CancellationToken) {
    let Ok(n) = u32::try_from(n) else { return };
    if n == 0 {
        return;
    }
    let (slots, stopping) = (slots.clone(), stopping.clone());
    tokio::spawn(async move {
        tokio::select! {
            permits = slots.acquire_many_owned(n) => {
                if let Ok(permits) = permits {
                    permits.forget();
                }
            }
            () = stopping.cancelled() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pool(size: usize, prefetch: usize) -> Pool {
        Pool::new(
            Arc::new(Semaphore::new(size)),
            Arc::new(Semaphore::new(size * prefetch)),
            prefetch,
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn growing_adds_slots_and_their_reservations() {
        let pool = pool(2, 4);
        pool.grow(3);
        assert_eq!((pool.size(), pool.reservations()), (5, 20));
        assert_eq!(pool.execution.available_permits(), 5);
        assert_eq!(pool.reservation.available_permits(), 20);
    }

    #[tokio::test]
    async fn shrinking_waits_for_running_tasks_to_give_their_slots_back() {
        let pool = pool(2, 1);
        let running = pool.execution.clone().acquire_many_owned(2).await.unwrap();
        pool.shrink(1);
        assert_eq!(pool.size(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(running); // both tasks end; one slot is removed, one stays
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.execution.available_permits(), 1);
        assert_eq!(pool.reservation.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_waiting_removal_goes_before_newer_tasks() {
        let pool = pool(2, 1);
        let first = pool.execution.clone().acquire_owned().await.unwrap();
        let _second = pool.execution.clone().acquire_owned().await.unwrap();
        pool.shrink(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            pool.execution.clone().try_acquire_owned().is_err(),
            "the freed slot was removed, not handed to a new task"
        );
    }
}
