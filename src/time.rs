//! Time: instants keep the UTC offset they were given; calendar periods and display use
//! Asia/Shanghai.
//!
//! The writer reads a [`Clock`] for `recorded_at` ([`SystemClock`] in production). Replaying a
//! known history (the demo, a restored export) keeps each event's own recording time instead,
//! through `NewEvent::recorded_at`. No projection reads a clock.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

use crate::codec::StoredTime;

/// An instant with the UTC offset it was given.
pub type Instant = DateTime<FixedOffset>;

/// Errors converting stored or typed times.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error(
        "stored time {unix_seconds}s+{nanos}ns offset {offset_seconds}s is not a valid instant"
    )]
    InvalidStored {
        unix_seconds: i64,
        nanos: u32,
        offset_seconds: i32,
    },
    #[error(
        "{text:?} is not a time: use RFC 3339 with an offset, e.g. 2023-12-31T18:00:00+08:00 ({reason})"
    )]
    Parse { text: String, reason: String },
}

/// Converts an instant to its stored form, keeping the offset.
pub fn to_stored(at: &Instant) -> StoredTime {
    StoredTime {
        unix_seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos(),
        offset_seconds: at.offset().local_minus_utc(),
    }
}

/// Converts a stored time back, with the offset it was given.
pub fn from_stored(stored: &StoredTime) -> Result<Instant, TimeError> {
    let invalid = || TimeError::InvalidStored {
        unix_seconds: stored.unix_seconds,
        nanos: stored.nanos,
        offset_seconds: stored.offset_seconds,
    };
    let offset = FixedOffset::east_opt(stored.offset_seconds).ok_or_else(invalid)?;
    let utc =
        DateTime::<Utc>::from_timestamp(stored.unix_seconds, stored.nanos).ok_or_else(invalid)?;
    Ok(utc.with_timezone(&offset))
}

/// Parses an RFC 3339 time with its offset (`2023-05-01T09:30:00+08:00`).
pub fn parse_instant(text: &str) -> Result<Instant, TimeError> {
    DateTime::parse_from_rfc3339(text).map_err(|e| TimeError::Parse {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// Parses either an RFC 3339 instant or a calendar date. A date alone means the end of that day
/// in Asia/Shanghai (what an auditor means by "as of 2023-12-31"): the last instant of the day.
pub fn parse_as_of(text: &str) -> Result<Instant, TimeError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(end_of_day_shanghai(date));
    }
    parse_instant(text)
}

/// The last nanosecond of a calendar day in Asia/Shanghai, as an instant at +08:00.
pub fn end_of_day_shanghai(date: NaiveDate) -> Instant {
    let next = date.succ_opt().unwrap_or(date);
    let start_next = start_of_day_shanghai(next);
    if next == date {
        return start_next;
    }
    start_next - chrono::Duration::nanoseconds(1)
}

/// The first instant of a calendar day in Asia/Shanghai, as an instant at +08:00.
pub fn start_of_day_shanghai(date: NaiveDate) -> Instant {
    // Asia/Shanghai has had no daylight saving since 1991, so midnight always exists once.
    let local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let at = match Shanghai.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t,
        chrono::LocalResult::None => Shanghai.from_utc_datetime(&local),
    };
    at.fixed_offset()
}

/// The calendar date of an instant in Asia/Shanghai: the date periods are counted in.
pub fn shanghai_date(at: &Instant) -> NaiveDate {
    at.with_timezone(&Shanghai).date_naive()
}

/// An instant shown in Asia/Shanghai, e.g. `2023-05-01 09:30:00 +08:00`.
pub fn display_shanghai(at: &Instant) -> String {
    at.with_timezone(&Shanghai)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// The source of `recorded_at` for the log's writer.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The machine's clock, in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Utc::now().fixed_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_time_keeps_the_offset() {
        let at = parse_instant("2023-05-01T09:30:00.123456789-05:00").unwrap();
        let back = from_stored(&to_stored(&at)).unwrap();
        assert_eq!(back, at);
        assert_eq!(back.offset().local_minus_utc(), -5 * 3600);
        assert_eq!(back.to_rfc3339(), at.to_rfc3339());
    }

    #[test]
    fn a_date_as_of_means_the_end_of_that_day_in_shanghai() {
        let at = parse_as_of("2023-12-31").unwrap();
        assert_eq!(at.to_rfc3339(), "2023-12-31T23:59:59.999999999+08:00");
        // 2023-12-31T16:00Z is already 2024-01-01 in Shanghai.
        let late = parse_instant("2023-12-31T16:00:00Z").unwrap();
        assert!(late > at);
        assert_eq!(shanghai_date(&late).to_string(), "2024-01-01");
    }

    #[test]
    fn invalid_stored_offsets_are_errors_not_panics() {
        let bad = StoredTime {
            unix_seconds: 0,
            nanos: 0,
            offset_seconds: 100_000,
        };
        assert!(from_stored(&bad).is_err());
        let bad = StoredTime {
            unix_seconds: i64::MAX,
            nanos: 0,
            offset_seconds: 0,
        };
        assert!(from_stored(&bad).is_err());
    }
}
