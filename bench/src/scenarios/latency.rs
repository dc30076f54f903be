//! The latency scenario: calls arrive at a steady rate (an open loop: the next call is sent on
//! schedule whether or not earlier ones have finished) while a worker runs, and each call's
//! `.delay()` → `.get()` round trip is recorded, split into the send, the wait until the task
//! starts, and the whole round trip.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Bench, RunningWorker};
use crate::cli::Scenario;
use crate::report::{Figure, Latency, Percentiles, Row, System};
use crate::tasks::{stamp, unix_micros};

/// How long one call may take before it counts as an error.
const GET_TIMEOUT: Duration = Duration::from_secs(30);

/// One call's times, in microseconds.
struct Sample {
    send: u64,
    start: u64,
    round_trip: u64,
}

/// Sends `rate` calls per second for `secs` seconds to a worker of `concurrency` slots.
pub async fn latency(
    bench: &mut Bench,
    rate: u32,
    secs: u64,
    concurrency: usize,
) -> anyhow::Result<Row> {
    bench.flush().await?;
    let worker = RunningWorker::start(&bench.client, concurrency).await;

    let calls = u64::from(rate) * secs;
    let (samples, sending) = send_at_rate(rate, calls).await;
    worker.stop().await?;

    let (mut send, mut start, mut round_trip) = (histogram(), histogram(), histogram());
    let mut errors = 0;
    for sample in samples {
        match sample {
            Ok(s) => {
                send.saturating_record(s.send);
                start.saturating_record(s.start);
                round_trip.saturating_record(s.round_trip);
            }
            Err(_) => errors += 1,
        }
    }
    Ok(Row {
        system: System::Taskq,
        scenario: Scenario::Latency,
        label: format!("latency at {rate}/s, concurrency {concurrency}"),
        figure: Figure::Latency(Latency {
            target_rate: f64::from(rate),
            rate_per_sec: calls as f64 / sending.as_secs_f64().max(1e-9),
            secs: sending.as_secs_f64(),
            samples: round_trip.len(),
            errors,
            send: percentiles(&send),
            start: Some(percentiles(&start)),
            round_trip: percentiles(&round_trip),
        }),
    })
}

/// Sends `calls` calls on a fixed schedule of `rate` per second and collects their times;
/// also returns how long sending took.
async fn send_at_rate(rate: u32, calls: u64) -> (Vec<taskq::Result<Sample>>, Duration) {
    let interval = Duration::from_secs(1) / rate.max(1);
    let begin = Instant::now();
    let mut in_flight = JoinSet::new();
    for i in 0..calls {
        tokio::time::sleep_until(begin + interval * i as u32).await;
        in_flight.spawn(one_call());
    }
    let sending = begin.elapsed();
    let mut samples = Vec::with_capacity(calls as usize);
    while let Some(joined) = in_flight.join_next().await {
        samples.push(joined.expect("a latency probe panicked"));
    }
    (samples, sending)
}

async fn one_call() -> taskq::Result<Sample> {
    let sent_at = unix_micros();
    let begin = Instant::now();
    let result = stamp.delay().await?;
    let send = begin.elapsed();
    let started_at = result.get(GET_TIMEOUT).await?;
    let round_trip = begin.elapsed();
    Ok(Sample {
        send: micros(send),
        start: started_at.saturating_sub(sent_at),
        round_trip: micros(round_trip),
    })
}

pub(super) fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// A histogram from 1 µs to 10 min at 3 significant digits.
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub(super) fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1000.0,
    }
}
