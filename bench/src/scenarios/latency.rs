//! The latency scenario: calls arrive at a steady rate (an open loop: the next call is sent on
//! schedule whether or not earlier ones have finished) while a worker runs, and each call's
//! `.delay()` → `.get()` round trip is recorded, split into the send, the wait until the task
//! starts, and the whole round trip.

use std::future::Future;
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
    let (samples, mut sent) = at_rate(rate, calls, one_call).await;
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
    sent.errors = errors;
    let label = format!("latency at {rate}/s, concurrency {concurrency}");
    Ok(sent.row(System::Taskq, label, &send, Some(&start), &round_trip))
}

/// Runs `call()` `calls` times on a fixed schedule of `rate` per second, each in a task of its
/// own, whether or not earlier ones have finished (an open loop). Returns their outputs and
/// how the sending went (with no errors counted yet).
pub(super) async fn at_rate<F, Fut>(rate: u32, calls: u64, mut call: F) -> (Vec<Fut::Output>, Sent)
where
    F: FnMut() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let interval = Duration::from_secs(1) / rate.max(1);
    let begin = Instant::now();
    let mut in_flight = JoinSet::new();
    for i in 0..calls {
        tokio::time::sleep_until(begin + interval * i as u32).await;
        in_flight.spawn(call());
    }
    let sending = begin.elapsed();
    let mut outputs = Vec::with_capacity(calls as usize);
    while let Some(joined) = in_flight.join_next().await {
        outputs.push(joined.expect("a latency probe panicked"));
    }
    let sent = Sent {
        rate,
        calls,
        sending,
        errors: 0,
    };
    (outputs, sent)
}

/// How a run of [`at_rate`] went, for its [`Figure`].
pub(super) struct Sent {
    pub(super) rate: u32,
    pub(super) calls: u64,
    pub(super) sending: Duration,
    pub(super) errors: u64,
}

impl Sent {
    /// The latency row of the run's histograms; `start` only where a task ran.
    pub(super) fn row(
        &self,
        system: System,
        label: String,
        send: &Histogram<u64>,
        start: Option<&Histogram<u64>>,
        round_trip: &Histogram<u64>,
    ) -> Row {
        Row {
            system,
            scenario: Scenario::Latency,
            label,
            repeats: None,
            figure: Figure::Latency(Latency {
                target_rate: f64::from(self.rate),
                rate_per_sec: self.calls as f64 / self.sending.as_secs_f64().max(1e-9),
                secs: self.sending.as_secs_f64(),
                samples: round_trip.len(),
                errors: self.errors,
                send: percentiles(send),
                start: start.map(percentiles),
                round_trip: percentiles(round_trip),
            }),
        }
    }
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

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: h.max() as f64 / 1000.0,
    }
}
