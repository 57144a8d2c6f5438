//! Parsing of resource.Quantity strings ("100m", "1.5", "128Mi", "1e3").
//! k8s-openapi keeps quantities as strings, so the scheduler parses them
//! itself; a malformed value is an error the caller reports, never a panic.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct QuantityError(pub String);

/// The value in thousandths (the unit of cpu), rounded up as upstream's
/// MilliValue does.
pub fn parse_milli(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 3)
}

/// The value in whole units (bytes, counts), rounded up as Value does.
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 0)
}

/// Parses into value * 10^extra_exp, rounding up, saturating at i64::MAX.
fn scaled(s: &str, extra_exp: i32) -> Result<i64, QuantityError> {
    let err = || QuantityError(s.to_string());
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    // An exponent suffix like "1e3" begins with e/E followed by digits.
    let (number, suffix) = s.split_at(split);
    if number.is_empty() {
        return Err(err());
    }
    let (negative, digits) = match number.as_bytes()[0] {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    if digits.is_empty() || digits.contains(['+', '-']) || digits.matches('.').count() > 1 || digits == "." {
        return Err(err());
    }
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let (base, exp): (u32, i32) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        other if other.starts_with(['e', 'E']) => {
            let e: i32 = other[1..].parse().map_err(|_| err())?;
            if !(-1000..=1000).contains(&e) {
                return Err(err());
            }
            (10, e)
        }
        _ => return Err(err()),
    };
    // Exact arithmetic in i128: mantissa digits, then the decimal exponent.
    let mut mantissa: i128 = 0;
    let mut dec_exp: i32 = -(frac_part.len() as i32) + extra_exp;
    for c in int_part.chars().chain(frac_part.chars()) {
        let d = c.to_digit(10).ok_or_else(err)? as i128;
        if mantissa > i128::MAX / 100 {
            // Too many significant digits: drop precision, keep magnitude.
            dec_exp += 1;
            continue;
        }
        mantissa = mantissa * 10 + d;
    }
    let mut value = mantissa;
    if base == 2 {
        for _ in 0..exp {
            value = value.saturating_mul(2);
        }
    } else {
        dec_exp += exp;
    }
    while dec_exp > 0 {
        value = value.saturating_mul(10);
        dec_exp -= 1;
    }
    let mut round_up = false;
    while dec_exp < 0 {
        if value % 10 != 0 {
            round_up = true;
        }
        value /= 10;
        dec_exp += 1;
        if value == 0 {
            break;
        }
    }
    if dec_exp < 0 && mantissa != 0 {
        round_up = true;
    }
    if round_up {
        value += 1;
    }
    let value = if negative { -value } else { value };
    Ok(value.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms() {
        assert_eq!(parse_milli("100m"), Ok(100));
        assert_eq!(parse_milli("1"), Ok(1000));
        assert_eq!(parse_milli("1.5"), Ok(1500));
        assert_eq!(parse_milli("0.1"), Ok(100));
        assert_eq!(parse_milli("250u"), Ok(1), "rounds up like MilliValue");
        assert_eq!(parse_milli("2e3"), Ok(2_000_000));
    }

    #[test]
    fn memory_forms() {
        assert_eq!(parse_value("128Mi"), Ok(128 << 20));
        assert_eq!(parse_value("1Gi"), Ok(1 << 30));
        assert_eq!(parse_value("1G"), Ok(1_000_000_000));
        assert_eq!(parse_value("1.5Ki"), Ok(1536));
        assert_eq!(parse_value("110"), Ok(110));
        assert_eq!(parse_value("1k"), Ok(1000));
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for bad in ["", "abc", "1x", "--1", "1..2", ".", "1Mii", "Mi", "1e99999", "1e"] {
            assert!(parse_value(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(parse_value("999999999999999999999999Ei"), Ok(i64::MAX));
    }
}
