//! The broker's clock, as seen from this process.
//!
//! Every time comparison that decides when a task runs happens on Redis's clock (`TIME` in
//! the scripts), so machines with wrong clocks agree. A producer turns a relative countdown or
//! expiry into the absolute time a message carries; it does so on the broker's clock too, or a
//! producer whose clock is ten minutes slow would send countdowns that are due at once.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::broker::Broker;
use crate::Result;

/// How long a measured offset is trusted before it is measured again.
const REFRESH: Duration = Duration::from_secs(60);

/// The offset of the broker's clock from this machine's, measured on first use and again
/// every [`REFRESH`].
#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    /// When the offset was measured, and the offset in seconds (broker − local).
    measured: Mutex<Option<(Instant, f64)>>,
    /// Held while one caller measures, so that many first sends at once ask Redis once.
    measuring: tokio::sync::Mutex<()>,
}

impl ServerClock {
    /// The broker's current time.
    ///
    /// # Errors
    ///
    /// When the offset is due for measuring and the broker cannot be asked.
    pub(crate) async fn now(&self, broker: &dyn Broker) -> Result<SystemTime> {
        let offset = match self.fresh_offset() {
            Some(offset) => offset,
            None => {
                let _measuring = self.measuring.lock().await;
                // Another caller may have measured while this one waited.
                match self.fresh_offset() {
                    Some(offset) => offset,
                    None => self.measure(broker).await?,
                }
            }
        };
        Ok(shift(SystemTime::now(), offset))
    }

    /// Records a broker time seen in a reply just now (a worker's fetch carries one), so that
    /// a busy worker keeps the offset fresh without asking.
    pub(crate) fn observe(&self, server_secs: f64) {
        let offset = server_secs - crate::unix_now();
        *self.measured.lock().expect("clock lock") = Some((Instant::now(), offset));
    }

    /// The broker's current time in seconds since the epoch, from the last offset known
    /// however old (none yet: this machine's time). For a worker, whose fetches keep it fresh.
    pub(crate) fn estimate(&self) -> f64 {
        let offset = self
            .measured
            .lock()
            .expect("clock lock")
            .map_or(0.0, |(_, offset)| offset);
        crate::unix_now() + offset
    }

    fn fresh_offset(&self) -> Option<f64> {
        let measured = *self.measured.lock().expect("clock lock");
        measured
            .filter(|(at, _)| at.elapsed() < REFRESH)
            .map(|(_, offset)| offset)
    }

    /// Asks the broker for its time and compares it with the local time halfway through the
    /// round trip.
    async fn measure(&self, broker: &dyn Broker) -> Result<f64> {
        let before = crate::unix_now();
        let server = broker.server_time().await?;
        let after = crate::unix_now();
        let offset = server - (before + after) / 2.0;
        *self.measured.lock().expect("clock lock") = Some((Instant::now(), offset));
        if offset.abs() > 1.0 {
            tracing::warn!(
                offset_secs = offset,
                "this machine's clock differs from the broker's; countdowns use the broker's"
            );
        }
        Ok(offset)
    }
}

/// `time` moved by `offset` seconds, either way.
fn shift(time: SystemTime, offset: f64) -> SystemTime {
    let by = Duration::from_secs_f64(offset.abs());
    if offset >= 0.0 {
        time + by
    } else {
        time - by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_both_ways() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            shift(t, 600.0),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1600)
        );
        assert_eq!(
            shift(t, -600.0),
            SystemTime::UNIX_EPOCH + Duration::from_secs(400)
        );
    }

    #[tokio::test]
    async fn measures_once_then_reuses_the_offset() {
        let broker = crate::broker::memory::MemoryBroker::named("clock-test");
        let clock = ServerClock::default();
        let now = clock.now(&*broker).await.unwrap();
        let local = SystemTime::now();
        let gap = local.duration_since(now).unwrap_or_else(|e| e.duration());
        assert!(gap < Duration::from_millis(50), "{gap:?}");
        assert!(clock.fresh_offset().is_some());
    }

    #[test]
    fn an_observed_broker_time_sets_the_offset() {
        let clock = ServerClock::default();
        assert!((clock.estimate() - crate::unix_now()).abs() < 0.05);
        clock.observe(crate::unix_now() + 600.0);
        assert!((clock.estimate() - crate::unix_now() - 600.0).abs() < 0.05);
        assert!(clock.fresh_offset().is_some());
    }
}
