//! Docker's log timestamps (RFC 3339 with nanoseconds) to and from nanoseconds since the epoch.

/// Parses `2026-11-29T20:30:25.804920384Z` (any fraction length, `Z` or `±HH:MM`) into
/// nanoseconds since the Unix epoch. `None` for anything else.
pub fn parse_rfc3339_ns(s: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        part.iter().try_fold(0i64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
    };
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't') || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, min, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let len = i - start;
        if len == 0 {
            return None;
        }
        for _ in len..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match s.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hh = digits(i + 1..i + 3)?;
            let mm = digits(i + 4..i + 6)?;
            let _ = (h1, h2, m1, m2);
            let off = hh * 3600 + mm * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A time's calendar parts, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1 to 12.
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub nanos: i64,
}

impl Civil {
    /// Nanoseconds since the epoch, in UTC.
    pub fn of(ns: i64) -> Civil {
        let secs = ns.div_euclid(1_000_000_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            nanos: ns.rem_euclid(1_000_000_000),
        }
    }
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nine fraction digits.
pub fn format_rfc3339_ns(ns: i64) -> String {
    let Civil { year, month, day, hour, minute, second, nanos } = Civil::of(ns);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z")
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_timestamps() {
        assert_eq!(parse_rfc3339_ns(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ns(b"1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339_ns(b"2026-11-29T20:30:25.804920384Z"), Some(1_795_984_225_804_920_384));
        assert_eq!(parse_rfc3339_ns(b"2026-11-29T21:30:25.804920384+01:00"), Some(1_795_984_225_804_920_384));
        assert_eq!(parse_rfc3339_ns(b"2026-11-29T19:30:25.804920384-01:00"), Some(1_795_984_225_804_920_384));
        // More than nine fraction digits: the extra ones are ignored, not an error.
        assert_eq!(parse_rfc3339_ns(b"1970-01-01T00:00:00.0000000019Z"), Some(1));
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            &b""[..],
            b"hello world",
            b"2026-13-01T00:00:00Z",
            b"2026-11-29T20:30:25.Z",
            b"2026-11-29T20:30:25",
            b"2026-11-29 20:30:25Z",
            b"2026-11-29T20:30:25.1X",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn formats_and_parses_back() {
        for ns in [0, 1, 1_795_984_225_804_920_384, 951_782_400_000_000_007] {
            let s = format_rfc3339_ns(ns);
            assert_eq!(parse_rfc3339_ns(s.as_bytes()), Some(ns), "{s}");
        }
        assert_eq!(format_rfc3339_ns(1_795_984_225_804_920_384), "2026-11-29T20:30:25.804920384Z");
    }
}
