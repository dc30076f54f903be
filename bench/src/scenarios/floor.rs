//! The Redis floor: what the client library and connection taskq uses get from Redis alone,
//! with no taskq code in the way. A `.delay()` awaited before the next cannot beat one `LPUSH`
//! of its message awaited before the next, and a round trip through a worker cannot beat a
//! `PING` at the same rate (the machine's wake-up costs included). These rows bound the
//! sequential and latency figures on the machine they ran on.

use tokio::time::Instant;

use super::latency::{at_rate, histogram, micros};
use super::{Bench, QUEUE};
use crate::cli::Scenario;
use crate::report::{Figure, Row, System, Throughput};
use crate::tasks::noop;

/// Scratch list for the floor's pushes, deleted afterwards.
const SCRATCH: &str = "taskq-bench.floor";

/// `n` `LPUSH`es of a value as long as the benchmark's message, each awaited before the next,
/// from one tokio task.
pub async fn sequential_lpush(bench: &mut Bench, n: u64) -> anyhow::Result<Row> {
    bench.flush().await?;
    let bytes = message_len(bench).await?;
    let value = "x".repeat(bytes);
    let mut conn = bench.connection();
    let started = Instant::now();
    let pushed = tokio::spawn(async move {
        for _ in 0..n {
            let _: u64 = redis::cmd("LPUSH")
                .arg(SCRATCH)
                .arg(&value)
                .query_async(&mut conn)
                .await?;
        }
        Ok::<_, redis::RedisError>(())
    });
    pushed.await??;
    let secs = started.elapsed().as_secs_f64();
    bench.flush().await?;
    Ok(Row {
        system: System::Redis,
        scenario: Scenario::Sequential,
        label: format!("floor: LPUSH of {bytes} bytes, 1 at a time"),
        repeats: None,
        figure: Figure::Throughput(Throughput::new(n, secs, None)),
    })
}

/// `PING`s on a fixed schedule of `rate` per second for `secs` seconds, each timed.
pub async fn ping_at_rate(bench: &mut Bench, rate: u32, secs: u64) -> anyhow::Result<Row> {
    let conn = bench.connection();
    let calls = u64::from(rate) * secs;
    let (pings, mut sent) = at_rate(rate, calls, || {
        let mut conn = conn.clone();
        async move {
            let sent = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(sent.elapsed())
        }
    })
    .await;
    let (mut round_trips, mut errors) = (histogram(), 0);
    for ping in pings {
        match ping {
            Ok(rtt) => round_trips.saturating_record(micros(rtt)),
            Err(_) => errors += 1,
        }
    }
    sent.errors = errors;
    let label = format!("floor: PING at {rate}/s");
    // A ping is its own send and round trip; no task starts.
    Ok(sent.row(System::Redis, label, &round_trips, None, &round_trips))
}

/// The length of the benchmark's no-op message as it lies in Redis.
async fn message_len(bench: &mut Bench) -> anyhow::Result<usize> {
    noop.delay(0).await?;
    let mut conn = bench.connection();
    let message: String = redis::cmd("LINDEX")
        .arg(QUEUE)
        .arg(0)
        .query_async(&mut conn)
        .await?;
    bench.flush().await?;
    Ok(message.len())
}
