//! Rate limits in Celery's syntax (`"10/s"`, `"100/m"`, `"2/h"`, a bare number is per
//! second), enforced across the whole fleet.
//!
//! Celery's `rate_limit` is per worker: ten workers run a `"10/s"` task a hundred times a
//! second. taskq's is global. Each run of a rate-limited task first takes a *turn* from one
//! schedule per task name in Redis (GCRA with no burst: the `RATE_TURN` script keeps the time
//! the next turn is free, and every turn taken moves it one interval on), so turns are spaced
//! `1 / rate` apart whichever worker takes them. A worker holds a fetched message until its
//! turn comes, without an execution slot (other tasks run meanwhile) and without asking Redis
//! again: the wait is a timer, not polling. As in Celery, a held message keeps its prefetch
//! place, so route a task with a low limit to its own queue when other tasks share one.
//!
//! A limit changed at run time (`celery control rate_limit`,
//! [`Control::rate_limit`](crate::control::Control::rate_limit)) applies to turns taken from
//! then on; messages already holding a turn keep it.

use std::fmt;
use std::time::Duration;

/// A rate limit: at most `per_second` runs a second, spaced evenly.
///
/// ```
/// use std::time::Duration;
/// use taskq::rate_limit::RateLimit;
///
/// let limit: RateLimit = "20/s".parse().unwrap();
/// assert_eq!(limit.interval(), Duration::from_millis(50));
/// assert_eq!("120/m".parse::<RateLimit>().unwrap().interval(), Duration::from_millis(500));
/// assert_eq!("7200/h".parse::<RateLimit>().unwrap(), RateLimit::per_second(2.0));
/// assert_eq!("5".parse::<RateLimit>().unwrap(), RateLimit::per_second(5.0));
/// assert!("10/d".parse::<RateLimit>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
}

impl RateLimit {
    /// A limit of `per_second` runs a second (finite and above zero; see [`parse`](Self::parse)
    /// for the text form).
    ///
    /// # Panics
    ///
    /// If `per_second` is not a finite number above zero: there is no such limit (no limit at
    /// all is `None` where a limit is optional).
    pub const fn per_second(per_second: f64) -> Self {
        assert!(
            per_second.is_finite() && per_second > 0.0,
            "a rate limit is a finite number of runs above zero"
        );
        Self { per_second }
    }

    /// Runs a second.
    pub const fn runs_per_second(self) -> f64 {
        self.per_second
    }

    /// The time between two turns.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }

    /// Reads Celery's syntax: `"<n>/s"`, `"<n>/m"`, `"<n>/h"` or `"<n>"` (per second), `n` a
    /// number (`"0.5/s"`). `Ok(None)` for Celery's "no limit": an empty string or a zero rate.
    ///
    /// ```
    /// use taskq::rate_limit::RateLimit;
    ///
    /// assert_eq!(RateLimit::parse("10/m").unwrap(), Some(RateLimit::per_second(10.0 / 60.0)));
    /// assert_eq!(RateLimit::parse("0").unwrap(), None);
    /// assert_eq!(RateLimit::parse("").unwrap(), None);
    /// assert!(RateLimit::parse("fast").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidRateLimit`] for anything else, with what was wrong.
    pub fn parse(text: &str) -> Result<Option<Self>, InvalidRateLimit> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = |why: &str| InvalidRateLimit(format!("{text:?}: {why}"));
        let (count, unit) = text.split_once('/').unwrap_or((text, "s"));
        let seconds = match unit.trim() {
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid("the unit after `/` must be s, m or h")),
        };
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| invalid("the count before `/` must be a number"))?;
        if !count.is_finite() || count < 0.0 {
            return Err(invalid("the count must be a finite number, zero or more"));
        }
        Ok((count > 0.0).then(|| Self::per_second(count / seconds)))
    }
}

impl std::str::FromStr for RateLimit {
    type Err = InvalidRateLimit;

    /// As [`RateLimit::parse`], with "no limit" refused: a value that must be a limit.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)?
            .ok_or_else(|| InvalidRateLimit(format!("{text:?}: a rate limit must be above zero")))
    }
}

impl fmt::Display for RateLimit {
    /// In Celery's syntax, per second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

/// A rate limit that is not in Celery's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit {0} (expected e.g. \"10/s\", \"100/m\" or \"2/h\")")]
pub struct InvalidRateLimit(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_syntax_reads_as_runs_per_second() {
        let per_second = |s: &str| RateLimit::parse(s).unwrap().map(RateLimit::runs_per_second);
        assert_eq!(per_second("10/s"), Some(10.0));
        assert_eq!(per_second(" 0.5/s "), Some(0.5));
        assert_eq!(per_second("60/m"), Some(1.0));
        assert_eq!(per_second("3600/h"), Some(1.0));
        assert_eq!(per_second("4"), Some(4.0));
        assert_eq!(per_second("0/s"), None);
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        let err = RateLimit::parse("10/d").unwrap_err().to_string();
        assert!(err.contains("s, m or h"), "{err}");
        let err = RateLimit::parse("ten/s").unwrap_err().to_string();
        assert!(err.contains("must be a number"), "{err}");
        assert!(RateLimit::parse("-1/s").is_err());
        assert!(RateLimit::parse("inf").is_err());
        assert!("0/s".parse::<RateLimit>().is_err());
    }

    #[test]
    fn displays_per_second() {
        assert_eq!(RateLimit::per_second(20.0).to_string(), "20/s");
    }
}
