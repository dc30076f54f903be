//! The tasks the benchmark sends. They do no work, so that what is measured is the queue: the
//! messages, the broker, the worker's bookkeeping and the result store.

use std::time::{SystemTime, UNIX_EPOCH};

/// Returns its argument: the no-op used by every throughput scenario (its result is stored).
#[taskq::task(name = "bench.noop")]
pub async fn noop(i: u64) -> u64 {
    i
}

/// Returns when it started, in microseconds since the Unix epoch, so that the latency scenario
/// can split a round trip into "sent → started" and "started → result read".
#[taskq::task(name = "bench.stamp")]
pub async fn stamp() -> u64 {
    unix_micros()
}

/// Microseconds since the Unix epoch on this machine's clock.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A chord body: the number of results it was given.
#[taskq::task(name = "bench.count")]
pub async fn count(results: Vec<u64>) -> usize {
    results.len()
}

/// [`noop`] as a unique call (`unique_for`): each send takes a lock in the same step as the
/// enqueue, and the worker releases it when the call is done.
#[taskq::task(name = "bench.unique_noop", unique_for = 600)]
pub async fn unique_noop(i: u64) -> u64 {
    i
}

/// [`noop`] under a fleet-wide rate limit no worker here reaches, so that what is measured is
/// the turn each run takes in Redis, not the limit.
#[taskq::task(name = "bench.limited_noop", rate_limit = "1000000/s")]
pub async fn limited_noop(i: u64) -> u64 {
    i
}
