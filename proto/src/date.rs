//! Calendar dates and instants as people write them, and Unix milliseconds: the one parser
//! and formatter the node and the CLI share (signed follow-up and closure dates, `--since`).
//!
//! The shapes are fixed and strict: `YYYY-MM-DD` is exactly ten ASCII characters, four digits,
//! a dash, two digits, a dash, two digits (no sign, no space, no shorter or longer year), and a
//! real day of the proleptic Gregorian calendar; an instant adds `THH:MM:SSZ` with no leap
//! second. Calendar validity and arithmetic are the `time` crate's; the shape check is ours,
//! byte by byte, so that nothing lenient (`+202-01-01`, `2026-+1-01`, ` 2026-01-01`) reaches
//! a signed message.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const MS_PER_DAY: i64 = 86_400_000;

/// Formats Unix milliseconds as RFC 3339 UTC (seconds precision), for people: `-` for none
/// (0 or less), `after 9999-12-31` past the last four-digit year.
pub fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let Ok(t) = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return "after 9999-12-31".into();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The number made of `b`'s bytes when every one is an ASCII digit (at most four of them).
fn digits(b: &[u8]) -> Option<u16> {
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, c| n * 10 + u16::from(c - b'0')))
}

/// The calendar date `YYYY-MM-DD`, exactly.
fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::from(digits(&b[0..4])?);
    let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(digits(&b[8..10])?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// The time of day `THH:MM:SSZ`, exactly (no leap second, no fraction, no offset but `Z`).
fn parse_time(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() != 10 || b[0] != b'T' || b[3] != b':' || b[6] != b':' || b[9] != b'Z' {
        return None;
    }
    let two = |r: std::ops::Range<usize>| u8::try_from(digits(&b[r])?).ok();
    Time::from_hms(two(1..3)?, two(4..6)?, two(7..9)?).ok()
}

fn unix_ms(date: Date, time: Time) -> i64 {
    PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp()
        * 1000
}

/// Parses `YYYY-MM-DD` as the Unix milliseconds of its midnight UTC.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    Some(unix_ms(parse_date(s)?, Time::MIDNIGHT))
}

/// Parses an instant a person typed: `YYYY-MM-DD` (midnight UTC, or the day's last millisecond
/// when `end_of_day`), `YYYY-MM-DDTHH:MM:SSZ`, or Unix milliseconds (ASCII digits only).
pub fn parse_instant_ms(s: &str, end_of_day: bool) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    let date = parse_date(s.get(..10)?)?;
    match s.get(10..)? {
        "" if end_of_day => Some(unix_ms(date, Time::MIDNIGHT) + MS_PER_DAY - 1),
        "" => Some(unix_ms(date, Time::MIDNIGHT)),
        rest => Some(unix_ms(date, parse_time(rest)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_before() {
        for (ms, text) in [
            (0, "-"),
            (-5, "-"),
            (1, "1970-01-01T00:00:00Z"),
            (86_400_000, "1970-01-02T00:00:00Z"),
            (1_764_331_199_999, "2025-11-28T11:59:59Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59Z"),
            (253_402_300_800_000, "after 9999-12-31"),
            (i64::MAX, "after 9999-12-31"),
        ] {
            assert_eq!(format_ms(ms), text, "{ms}");
        }
    }

    #[test]
    fn dates_round_trip() {
        let ms = parse_date_ms("2026-11-28").expect("date");
        assert_eq!(format_ms(ms), "2026-11-28T00:00:00Z");
        assert_eq!(parse_date_ms("1970-01-01"), Some(0));
        assert_eq!(parse_date_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date_ms("1969-12-31"), Some(-86_400_000));
        assert_eq!(
            parse_date_ms("2024-02-29").map(format_ms).as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        // Every day of a leap and a common year comes back as itself.
        for year in [2024, 2026] {
            let mut ms = parse_date_ms(&format!("{year}-01-01")).expect("new year");
            while format_ms(ms).starts_with(&year.to_string()) {
                let text = &format_ms(ms)[..10];
                assert_eq!(parse_date_ms(text), Some(ms), "{text}");
                ms += MS_PER_DAY;
            }
        }
    }

    #[test]
    fn strict_dates() {
        for bad in [
            "2026-+1-01",
            "+202-01-01",
            "-001-12-31",
            "+2026-01-01",
            "2026-02-30",
            "2025-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-00-10",
            "2026-13-01",
            "2026-01-00",
            "2026-01-32",
            " 2026-01-01",
            "2026-01-01 ",
            "2026-1-01",
            "2026-01-1",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T00:00:00Z",
            "２026-01-01",
            "2026-0١-01",
            "",
        ] {
            assert_eq!(parse_date_ms(bad), None, "{bad:?}");
        }
        assert!(parse_date_ms("2000-02-29").is_some());
        assert!(parse_date_ms("0000-01-01").is_some());
    }

    #[test]
    fn instants() {
        let day = parse_date_ms("2026-03-01").expect("date");
        for (text, end_of_day, want) in [
            ("2026-03-01", false, Some(day)),
            ("2026-03-01", true, Some(day + MS_PER_DAY - 1)),
            ("2026-03-01T00:00:00Z", true, Some(day)),
            ("2026-03-01T23:59:59Z", false, Some(day + MS_PER_DAY - 1000)),
            ("2026-03-01T12:34:56Z", false, Some(day + 45_296_000)),
            ("1772323200000", false, Some(1_772_323_200_000)),
            ("0", false, Some(0)),
            // Leap seconds, out-of-range fields, other shapes.
            ("2026-03-01T23:59:60Z", false, None),
            ("2016-12-31T23:59:60Z", false, None),
            ("2026-03-01T24:00:00Z", false, None),
            ("2026-03-01T12:60:00Z", false, None),
            ("2026-03-01T12:00:00", false, None),
            ("2026-03-01T12:00:00.5Z", false, None),
            ("2026-03-01T12:00:00+00:00", false, None),
            ("2026-03-01t12:00:00z", false, None),
            ("2026-03-01 12:00:00Z", false, None),
            ("2026-03-01T+1:00:00Z", false, None),
            ("2026-03-01T1:00:00Z", false, None),
            ("2026-02-30T00:00:00Z", false, None),
            ("+1772323200000", false, None),
            ("-1", false, None),
            (" 1772323200000", false, None),
            ("99999999999999999999", false, None),
            ("", false, None),
            ("2026-+1-01", false, None),
            ("+202-01-01", false, None),
            ("-001-12-31", false, None),
        ] {
            assert_eq!(parse_instant_ms(text, end_of_day), want, "{text:?}");
        }
    }
}
