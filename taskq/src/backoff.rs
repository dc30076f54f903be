//! The wait before retrying a call to Redis that failed: the consumer's fetch, remote
//! control's and the result waiters' subscriptions, the completer's writes. One rule for all:
//! doubling from a first wait to 5 s, each wait drawn at random between half its ceiling and
//! the ceiling, so that a fleet of workers that lost Redis together does not come back in
//! lockstep (a thundering herd of reconnects the moment Redis restarts).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The longest wait between two tries.
const MAX: Duration = Duration::from_secs(5);

/// Waits that grow after each failure; [`reset`](Self::reset) after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Waits starting at most `first`.
    pub(crate) fn starting_at(first: Duration) -> Self {
        Self {
            first,
            ceiling: first,
        }
    }

    /// The next wait: between half the ceiling and the ceiling, which then doubles up to 5 s.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(MAX);
        ceiling / 2 + ceiling.mul_f64(random_fraction() / 2.0)
    }

    /// Back to the first wait, after a call succeeded.
    pub(crate) fn reset(&mut self) {
        self.ceiling = self.first;
    }
}

/// A fraction in `[0, 1)`: std's per-map random hash keys, enough to spread reconnects.
fn random_fraction() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_seconds_each_within_half_its_ceiling() {
        let mut backoff = Backoff::starting_at(Duration::from_millis(100));
        let ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
        for ceiling in ceilings.map(Duration::from_millis) {
            let wait = backoff.next_delay();
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} for {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn waits_are_spread() {
        let mut waits: Vec<Duration> = (0..20)
            .map(|_| Backoff::starting_at(Duration::from_secs(1)).next_delay())
            .collect();
        waits.sort();
        waits.dedup();
        assert!(waits.len() > 10, "{waits:?}");
    }
}
