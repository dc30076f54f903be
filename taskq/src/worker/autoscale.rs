//! Celery's autoscaler (`--autoscale=max,min`): the worker starts with `min` execution slots,
//! grows toward `max` while it holds more tasks (running and waiting for a slot) than it has
//! slots, and shrinks back toward `min` when it holds fewer, but only once `keepalive` has
//! passed since it last grew, so a burst followed by a pause does not make it flap. It checks
//! every second, as Celery's does. Reservations stay those of `max`, as Celery's prefetch
//! count does, so the work that makes it grow can arrive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::part::{Loop, LoopPart};
use super::pool::Pool;
use super::Shared;
use crate::protocol::{raw_object, RawObject};

/// Celery's default keepalive (`AUTOSCALE_KEEPALIVE`, 30 s).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// How often the autoscaler looks, as Celery's thread does.
const TICK: Duration = Duration::from_secs(1);

/// The autoscale range a worker was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) max: usize,
    pub(super) min: usize,
    pub(super) keepalive: Duration,
}

/// The autoscaler's state: its range and when it last grew the pool.
#[derive(Debug)]
pub(super) struct Autoscaler {
    inner: Mutex<Inner>,
    keepalive: Duration,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    min: usize,
    last_scale_up: Option<Instant>,
}

impl Autoscaler {
    pub(super) fn new(range: Range) -> Self {
        Self {
            inner: Mutex::new(Inner {
                max: range.max,
                min: range.min,
                last_scale_up: None,
            }),
            keepalive: range.keepalive,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("autoscaler lock")
    }

    /// Grows or shrinks `pool` for `qty` tasks held (Celery's `_maybe_scale`).
    pub(super) fn maybe_scale(&self, pool: &Pool, qty: usize) {
        let mut inner = self.lock();
        let procs = pool.size();
        let wanted = qty.min(inner.max);
        if wanted > procs {
            tracing::info!("Scaling up {} processes.", wanted - procs);
            inner.last_scale_up = Some(Instant::now());
            return pool.grow_execution(wanted - procs);
        }
        let wanted = qty.max(inner.min);
        let kept_alive = inner
            .last_scale_up
            .is_some_and(|at| at.elapsed() > self.keepalive);
        if wanted < procs && kept_alive {
            tracing::info!("Scaling down {} processes.", procs - wanted);
            pool.shrink_execution(procs - wanted);
        }
    }

    /// The `autoscale` command (Celery's `Autoscaler.update`): a new maximum shrinks the pool
    /// at once if it is above it and moves the reservations with it; a new minimum grows the
    /// pool at once if it is below. Returns the range now.
    pub(super) fn update(
        &self,
        pool: &Pool,
        max: Option<usize>,
        min: Option<usize>,
    ) -> (usize, usize) {
        let mut inner = self.lock();
        if let Some(max) = max {
            if max < pool.size() {
                pool.shrink_execution(pool.size() - max);
            }
            let delta = signed(max) - signed(inner.max);
            pool.change_reservations(delta * signed(pool.prefetch()));
            inner.max = max;
        }
        if let Some(min) = min {
            if min > pool.size() {
                pool.grow_execution(min - pool.size());
            }
            inner.min = min;
        }
        (inner.max, inner.min)
    }

    /// `stats`' `autoscaler` entry (Celery's `Autoscaler.info`).
    pub(super) fn info(&self, pool: &Pool, qty: usize) -> RawObject {
        let inner = self.lock();
        raw_object! {"max" => inner.max, "min" => inner.min, "current" => pool.size(), "qty" => qty}
    }
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// The part that runs the autoscaler once a second.
#[derive(Debug)]
pub(super) struct AutoscalePart(Loop);

impl AutoscalePart {
    pub(super) fn start(shared: Arc<Shared>) -> Self {
        Self(Loop::spawn(|stop| run(shared, stop)))
    }
}

impl LoopPart for AutoscalePart {
    const NAME: &'static str = "autoscaler";

    fn into_loop(self) -> Loop {
        self.0
    }
}

async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let Some(autoscaler) = shared.autoscaler.as_ref() else {
        return;
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = stop.cancelled() => return,
        }
        autoscaler.maybe_scale(&shared.pool, shared.tasks_held());
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::Semaphore;

    use super::*;

    fn setup(min: usize, max: usize, keepalive: Duration) -> (Autoscaler, Pool) {
        let pool = Pool::new(
            Arc::new(Semaphore::new(min)),
            Arc::new(Semaphore::new(max * 2)),
            2,
            CancellationToken::new(),
        );
        (
            Autoscaler::new(Range {
                max,
                min,
                keepalive,
            }),
            pool,
        )
    }

    #[tokio::test]
    async fn grows_toward_max_and_shrinks_to_min_after_the_keepalive() {
        let (scaler, pool) = setup(1, 4, Duration::from_millis(30));
        scaler.maybe_scale(&pool, 9);
        assert_eq!(pool.size(), 4, "grows to max, not to the work held");
        scaler.maybe_scale(&pool, 0);
        assert_eq!(pool.size(), 4, "keeps its slots during the keepalive");
        tokio::time::sleep(Duration::from_millis(40)).await;
        scaler.maybe_scale(&pool, 2);
        assert_eq!(pool.size(), 2, "shrinks to the work held");
        scaler.maybe_scale(&pool, 0);
        assert_eq!(pool.size(), 1, "not below min");
    }

    #[tokio::test]
    async fn update_moves_the_range_and_the_pool_into_it() {
        let (scaler, pool) = setup(1, 4, DEFAULT_KEEPALIVE);
        assert_eq!(scaler.update(&pool, Some(6), Some(3)), (6, 3));
        assert_eq!((pool.size(), pool.reservations()), (3, 12));
        scaler.maybe_scale(&pool, 10);
        assert_eq!(pool.size(), 6);
        assert_eq!(scaler.update(&pool, Some(2), None), (2, 3));
        assert_eq!((pool.size(), pool.reservations()), (2, 4));
    }
}
