//! Times as Celery writes and reads them: `isoformat()` with microseconds and `+00:00`, and
//! what `isoparse` accepts.

use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Formats a time as Celery does: `2026-11-21T04:48:05.294171+00:00`.
pub(crate) fn format_time(time: SystemTime) -> String {
    format_datetime(DateTime::<Utc>::from(time))
}

/// Formats a time as Celery does (see [`format_time`]).
pub(crate) fn format_datetime(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Parses an ISO-8601 time as Python's `isoparse` would; a time without offset is UTC.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(text, f).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_isoparse() {
        for text in [
            "2026-11-21T04:48:05.294171+00:00",
            "2026-11-21T04:48:05.294171Z",
            "2026-11-21T04:48:05.294171",
            "2026-11-21T05:48:05.294171+01:00",
        ] {
            assert_eq!(
                format_datetime(parse_time(text).unwrap()),
                "2026-11-21T04:48:05.294171+00:00",
                "{text}"
            );
        }
        assert!(parse_time("yesterday").is_none());
    }
}
