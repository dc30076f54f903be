//! When a periodic entry is due: its slots. An interval's slots are the multiples of its period
//! since the Unix epoch, so every scheduler computes the same ones (Celery's interval counts
//! from its last send instead, and drifts); a crontab's are its matching minutes in its time
//! zone.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// When an entry fires.
///
/// ```
/// use std::time::Duration;
/// use taskq::beat::Schedule;
///
/// let every: Schedule = "every 30s".parse()?;
/// assert_eq!(every, Schedule::every(Duration::from_secs(30)));
/// let cron: Schedule = "TZ=Europe/Paris 0 9 * * mon-fri".parse()?;
/// assert_eq!(cron.to_string(), "TZ=Europe/Paris 0 9 * * mon-fri");
/// # Ok::<(), taskq::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every `period`, on the multiples of it since the epoch.
    Every(Duration),
    /// A crontab in a time zone (boxed: a parsed pattern is a few hundred bytes).
    Cron(Box<Crontab>),
}

/// A five-field crontab (`minute hour day-of-month month day-of-week`, as Celery's
/// `crontab.from_string`) evaluated in a time zone (UTC unless given).
#[derive(Debug, Clone)]
pub struct Crontab {
    pattern: String,
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl PartialEq for Crontab {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.zone == other.zone
    }
}

impl Schedule {
    /// Every `period` (at least a millisecond).
    pub fn every(period: Duration) -> Self {
        Self::Every(period.max(Duration::from_millis(1)))
    }

    /// The latest slot at or before `now`, if the schedule has one.
    pub fn slot_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(period) => {
                let period = period.as_millis() as i64;
                let ms = now.timestamp_millis();
                Utc.timestamp_millis_opt(ms - ms.rem_euclid(period))
                    .single()
            }
            Self::Cron(tab) => tab
                .cron
                .find_previous_occurrence(&now.with_timezone(&tab.zone), true)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The first slot after `after`.
    pub fn slot_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(period) => {
                let period = period.as_millis() as i64;
                let ms = after.timestamp_millis();
                Utc.timestamp_millis_opt(ms - ms.rem_euclid(period) + period)
                    .single()
            }
            Self::Cron(tab) => tab
                .cron
                .find_next_occurrence(&after.with_timezone(&tab.zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

impl FromStr for Schedule {
    type Err = crate::Error;

    /// `every <n><unit>` (`ms`, `s`, `m`, `h`), or a crontab, optionally preceded by
    /// `TZ=<zone>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = |why: String| crate::Error::Config(format!("schedule {text:?}: {why}"));
        if let Some(period) = text.strip_prefix("every ") {
            return parse_period(period.trim()).map(Self::every).map_err(bad);
        }
        let (zone, pattern) = match text.strip_prefix("TZ=") {
            Some(rest) => {
                let (zone, pattern) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("no crontab after the zone".into()))?;
                let zone: chrono_tz::Tz = zone
                    .parse()
                    .map_err(|_| bad(format!("unknown time zone {zone:?}")))?;
                (zone, pattern.trim())
            }
            None => (chrono_tz::UTC, text),
        };
        if pattern.split_whitespace().count() != 5 {
            return Err(bad(
                "expected `every <period>` or five crontab fields (minute hour day-of-month month day-of-week)".into(),
            ));
        }
        let cron = croner::Cron::from_str(pattern).map_err(|e| bad(e.to_string()))?;
        Ok(Self::Cron(Box::new(Crontab {
            pattern: pattern.to_owned(),
            cron,
            zone,
        })))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every(period) => write!(f, "every {}ms", period.as_millis()),
            Self::Cron(tab) if tab.zone == chrono_tz::UTC => f.write_str(&tab.pattern),
            Self::Cron(tab) => write!(f, "TZ={} {}", tab.zone, tab.pattern),
        }
    }
}

fn parse_period(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    let secs = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{text:?} is not a positive period"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn an_interval_slots_on_multiples_of_its_period() {
        let every: Schedule = "every 300ms".parse().unwrap();
        let now = at("2026-12-04T10:00:00.450Z");
        assert_eq!(
            every.slot_at_or_before(now),
            Some(at("2026-12-04T10:00:00.300Z"))
        );
        assert_eq!(every.slot_after(now), Some(at("2026-12-04T10:00:00.600Z")));
        assert_eq!(
            every.slot_after(at("2026-12-04T10:00:00.600Z")),
            Some(at("2026-12-04T10:00:00.900Z"))
        );
    }

    #[test]
    fn a_crontab_slots_in_its_time_zone() {
        let nine: Schedule = "TZ=Europe/Paris 0 9 * * *".parse().unwrap();
        // 09:00 in Paris is 08:00 UTC in winter.
        let next = nine.slot_after(at("2026-12-04T07:00:00Z")).unwrap();
        assert_eq!(next, at("2026-12-04T08:00:00Z"));
        let previous = nine.slot_at_or_before(at("2026-12-04T07:00:00Z")).unwrap();
        assert_eq!(previous, at("2026-12-03T08:00:00Z"));
    }

    #[test]
    fn bad_schedules_say_why() {
        for (text, says) in [
            ("every 5", "no unit"),
            ("every 5d", "unknown unit"),
            ("every 0s", "positive"),
            ("* * *", "five crontab fields"),
            ("TZ=Mars/Base 0 9 * * *", "unknown time zone"),
        ] {
            let err = text.parse::<Schedule>().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
