//! Go's `time.ParseDuration`, the syntax of every upstream duration flag:
//! `300ms`, `1.5h`, `2h45m`, `-1m`; units ns, us (µs, μs), ms, s, m, h; a
//! bare number is an error except `0`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("time: negative duration {0:?} where only positive ones make sense")]
    Negative(String),
}

/// Parses a non-negative duration, for flags.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let nanos = parse_nanos(s)?;
    u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| DurationError::Negative(s.to_string()))
}

/// Parses into signed nanoseconds as Go does (past ±2^63 ns is invalid).
pub fn parse_nanos(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(s.to_string());
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len())),
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(s.to_string())),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(DurationError::UnknownUnit { unit: u.to_string(), input: s.to_string() }),
        };
        let whole: u128 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| invalid())? };
        // Go accumulates fraction digits until the next one would overflow
        // 2^63, then scales in float64; doing the same keeps `0.3333333333333333333h`
        // at exactly 20m, as Go prints it.
        let (mut f, mut scale) = (0u64, 1f64);
        for d in frac_digits.bytes() {
            if f > (1u64 << 63) / 10 {
                break;
            }
            f = f * 10 + (d - b'0') as u64;
            scale *= 10.0;
        }
        let frac_nanos = if f == 0 { 0 } else { (f as f64 * (per_unit as f64 / scale)) as u128 };
        total = whole
            .checked_mul(per_unit)
            .and_then(|w| w.checked_add(frac_nanos))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(invalid)?;
        rest = after;
    }
    if negative {
        if total > i64::MAX as u128 + 1 {
            return Err(invalid());
        }
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's time package tests for ParseDuration.
    #[test]
    fn go_cases() {
        let ms = 1_000_000i64;
        let s = 1_000 * ms;
        for (input, want) in [
            ("0", 0),
            ("5s", 5 * s),
            ("30s", 30 * s),
            ("1478s", 1478 * s),
            ("-5s", -5 * s),
            ("+5s", 5 * s),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * s),
            ("5.6s", 5 * s + 600 * ms),
            ("5.s", 5 * s),
            (".5s", 500 * ms),
            ("1.0s", s),
            ("1.00s", s),
            ("1.004s", s + 4 * ms),
            ("100.00100s", 100 * s + ms),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13 * ms),
            ("14s", 14 * s),
            ("15m", 15 * 60 * s),
            ("16h", 16 * 3600 * s),
            ("3h30m", (3 * 3600 + 30 * 60) * s),
            ("10.5s4m", 4 * 60 * s + 10 * s + 500 * ms),
            ("-2m3.4s", -(2 * 60 * s + 3 * s + 400 * ms)),
            ("1h2m3s4ms5us6ns", 3600 * s + 2 * 60 * s + 3 * s + 4 * ms + 5_000 + 6),
            ("39h9m14.425s", 39 * 3600 * s + 9 * 60 * s + 14 * s + 425 * ms),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * s),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * s),
        ] {
            assert_eq!(parse_nanos(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn go_errors() {
        for bad in ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "\u{85}\u{85}", "9223372036854775808ns", "3000000h"] {
            assert!(parse_nanos(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_nanos("10"), Err(DurationError::MissingUnit("10".into())));
    }

    #[test]
    fn flags_take_non_negative_durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative("-1s".into())));
    }
}
