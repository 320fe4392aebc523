//! Calendar dates and instants as people write them, and Unix milliseconds: the one parser
//! and formatter the node and the CLI share (signed follow-up and closure dates, `--since`).

/// Formats Unix milliseconds as RFC 3339 UTC (seconds precision), for people.
pub fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD` as the Unix milliseconds of its midnight UTC.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[5..7].parse().ok()?;
    let d: i64 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let back = civil_from_days(days);
    if back != (y, m as u32, d as u32) {
        return None;
    }
    Some(days * 86_400_000)
}

/// Parses an instant a person typed: `YYYY-MM-DD` (midnight UTC, or the day's last millisecond
/// when `end_of_day`), `YYYY-MM-DDTHH:MM:SSZ`, or Unix milliseconds.
pub fn parse_instant_ms(s: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let day = parse_date_ms(s.get(..10)?)?;
    match s.get(10..) {
        Some("") => Some(if end_of_day { day + 86_399_999 } else { day }),
        Some(rest) => {
            let b = rest.as_bytes();
            if b.len() != 10 || b[0] != b'T' || b[3] != b':' || b[6] != b':' || b[9] != b'Z' {
                return None;
            }
            let num = |r: std::ops::Range<usize>| -> Option<i64> {
                let t = &rest[r];
                t.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| t.parse().ok())?
            };
            let (h, m, sec) = (num(1..3)?, num(4..6)?, num(7..9)?);
            if h > 23 || m > 59 || sec > 59 {
                return None;
            }
            Some(day + ((h * 60 + m) * 60 + sec) * 1000)
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_ms(0), "-");
        assert_eq!(format_ms(86_400_000), "1970-01-02T00:00:00Z");
        let ms = parse_date_ms("2026-11-28").expect("date");
        assert_eq!(format_ms(ms), "2026-11-28T00:00:00Z");
        assert_eq!(parse_date_ms("2026-02-30"), None);
        assert_eq!(
            parse_date_ms("2024-02-29").map(format_ms).as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
    }
}
