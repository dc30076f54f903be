//! Revokes: ids of tasks that must not run, kept in the broker so that they hold with no
//! worker up, across worker restarts, and for every worker, Rust or Python-driven.
//!
//! Celery keeps revokes only in each worker's memory (a `LimitedSet` of at most
//! [`REVOKES_MAX`] ids, each forgotten [`REVOKE_EXPIRES`] after it was revoked), so a revoke
//! sent while no worker listens is lost. taskq keeps the same bounded set in the broker too
//! (on Redis the sorted set [`BrokerKeys::revoked`](crate::keys::BrokerKeys::revoked): id →
//! revoke time by the server's clock, trimmed by age and count on every write):
//!
//! * [`Client::revoke`](crate::Client::revoke) records the id there, then broadcasts Celery's
//!   `revoke` remote-control command, so that live workers (taskq and Python) act at once;
//! * a taskq worker that receives a `revoke` command (also one sent by Python's
//!   `app.control.revoke` or `celery control revoke`) records the ids there too;
//! * a taskq worker loads the set when it starts, before it takes any task, and then reads
//!   what was added since its last read every [`RESYNC_EVERY`], so revokes sent while its
//!   control subscription was down are honoured too. Deciding whether a task is revoked stays
//!   a lookup in the worker's memory: no round trip per task.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Most revoked ids kept (Celery's `REVOKES_MAX`); the oldest go first.
///
/// ```
/// assert_eq!(taskq::revoke::REVOKES_MAX, 50_000);
/// ```
pub const REVOKES_MAX: usize = 50_000;

/// How long a revoke holds (Celery's `REVOKE_EXPIRES`, 3 hours).
///
/// ```
/// assert_eq!(taskq::revoke::REVOKE_EXPIRES.as_secs(), 10_800);
/// ```
pub const REVOKE_EXPIRES: Duration = Duration::from_secs(3 * 3600);

/// How often a worker reads the revokes recorded since its last read.
pub const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// Revoked ids as read from the broker, with the broker's clock at the read.
///
/// ```
/// let read = taskq::revoke::Revoked { now: 100.0, ids: vec![("id-1".into(), 99.5)] };
/// assert_eq!(read.ids[0].0, "id-1");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revoked {
    /// The broker's clock when it was read, in seconds since the Unix epoch.
    pub now: f64,
    /// Each id with when it was (last) revoked, on the broker's clock.
    pub ids: Vec<(String, f64)>,
}

/// A bounded, expiring set of revoked ids with their revoke times (Celery's `LimitedSet`):
/// at most `max` ids, none older than `expires`. Times are seconds on one clock (the
/// broker's), so entries read from the broker and entries added locally compare.
#[derive(Debug, Clone)]
pub(crate) struct RevokeLog {
    max: usize,
    expires_micros: i64,
    /// id → revoke time in microseconds.
    times: HashMap<String, i64>,
    /// The same entries, oldest first.
    by_time: BTreeSet<(i64, String)>,
}

impl RevokeLog {
    /// An empty log keeping at most `max` ids for `expires` each.
    pub(crate) fn new(max: usize, expires: Duration) -> Self {
        Self {
            max,
            expires_micros: expires.as_micros() as i64,
            times: HashMap::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Records `id` as revoked at `at`; a later time than the one kept refreshes it (a
    /// second revoke restarts its expiry, as in Celery). Forgets what falls out of bounds.
    pub(crate) fn record(&mut self, id: &str, at: f64, now: f64) {
        let at = micros(at);
        match self.times.get(id) {
            Some(kept) if *kept >= at => return,
            Some(kept) => {
                self.by_time.remove(&(*kept, id.to_owned()));
            }
            None => {}
        }
        self.times.insert(id.to_owned(), at);
        self.by_time.insert((at, id.to_owned()));
        self.trim(now);
    }

    /// Forgets expired ids, then the oldest beyond `max`.
    pub(crate) fn trim(&mut self, now: f64) {
        let oldest_kept = micros(now) - self.expires_micros;
        while let Some((at, id)) = self.by_time.first().cloned() {
            if at > oldest_kept && self.by_time.len() <= self.max {
                break;
            }
            self.by_time.pop_first();
            self.times.remove(&id);
        }
    }

    /// Whether `id` is revoked at `now`.
    pub(crate) fn contains(&self, id: &str, now: f64) -> bool {
        self.times
            .get(id)
            .is_some_and(|at| *at > micros(now) - self.expires_micros)
    }

    /// Every id kept, oldest first, with its revoke time in seconds.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.by_time
            .iter()
            .map(|(at, id)| (id.as_str(), *at as f64 / 1e6))
    }

    /// Whether nothing is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

impl Default for RevokeLog {
    fn default() -> Self {
        Self::new(REVOKES_MAX, REVOKE_EXPIRES)
    }
}

fn micros(secs: f64) -> i64 {
    (secs * 1e6).round() as i64
}

/// Celery's mailbox exchange (`control_exchange` `celery` + `.pidbox`).
pub(crate) const CONTROL_EXCHANGE: &str = "celery.pidbox";

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    #[test]
    fn ids_expire_after_three_hours() {
        let mut log = RevokeLog::default();
        log.record("old", NOW - 10_800.0 - 1.0, NOW);
        log.record("young", NOW - 10_799.0, NOW);
        assert!(!log.contains("old", NOW), "older than 3 h: forgotten");
        assert!(log.contains("young", NOW));
        assert!(!log.contains("young", NOW + 2.0), "expires as time passes");
        log.trim(NOW + 2.0);
        assert!(log.is_empty());
    }

    #[test]
    fn at_most_fifty_thousand_ids_are_kept_oldest_out_first() {
        let mut log = RevokeLog::default();
        for i in 0..REVOKES_MAX + 10 {
            log.record(&format!("id-{i}"), NOW + i as f64 / 1e3, NOW);
        }
        assert_eq!(log.entries().count(), REVOKES_MAX);
        assert!(!log.contains("id-9", NOW) && log.contains("id-10", NOW));
        assert!(log.contains(&format!("id-{}", REVOKES_MAX + 9), NOW));
    }

    #[test]
    fn a_second_revoke_refreshes_and_an_older_one_does_not() {
        let mut log = RevokeLog::new(2, REVOKE_EXPIRES);
        log.record("a", NOW, NOW);
        log.record("b", NOW + 1.0, NOW);
        log.record("a", NOW + 2.0, NOW); // re-revoked: b is now the oldest
        log.record("b", NOW - 5.0, NOW); // an old record read late changes nothing
        log.record("c", NOW + 3.0, NOW);
        let kept: Vec<&str> = log.entries().map(|(id, _)| id).collect();
        assert_eq!(kept, ["a", "c"]);
    }
}
