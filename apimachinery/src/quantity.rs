//! `resource.Quantity`: upstream's parser, exact comparison and arithmetic,
//! the integer conversions components use (milli-units, bytes), and the
//! canonical string upstream writes back (`1000m` → `1`, `1536Mi` stays,
//! `0.5` → `500m`).
//!
//! A value is held exactly as `mantissa * 10^exp`; nothing goes through a
//! float. As upstream, parsing rounds below-nano precision up (away from
//! zero) and caps binary-suffixed values at 2^63-1.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// Upstream's error text for a string that is not a quantity at all.
pub const FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{FORMAT_MESSAGE}: {0:?}")]
    Format(String),
    #[error("unable to parse quantity's suffix: {0:?}")]
    Suffix(String),
    /// More significant digits than 128 bits hold; upstream's inf.Dec would
    /// accept them, no real request needs them.
    #[error("unable to parse numeric part of quantity: {0:?}")]
    Numeric(String),
}

/// How a quantity prints: the suffix family it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `k`, `M`, `m`, `n`...
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`...
    BinarySI,
    /// `e3`, `E-6`...
    DecimalExponent,
}

/// An exact quantity. Equality and ordering compare values, not formats:
/// `1Ki == 1024`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    negative: bool,
    /// No trailing decimal zeros (they live in `exp`); zero is `0e0`.
    mantissa: u128,
    exp: i32,
    format: Format,
}

const DECIMAL_SUFFIXES: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BINARY_SUFFIXES: &[(&str, u32)] = &[("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
const NANO: i32 = -9;

/// Parses as upstream's ParseQuantity: no surrounding whitespace allowed.
pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
    Quantity::parse(s)
}

/// Decimal digits of `n` (1 for 0).
fn digits(n: u128) -> i32 {
    n.checked_ilog10().map_or(1, |d| d as i32 + 1)
}

fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { negative: false, mantissa: 0, exp: 0, format: Format::DecimalSI };

    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let format_err = || QuantityError::Format(s.to_string());
        if s.is_empty() {
            return Err(format_err());
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let negative = match b[0] {
            b'-' => {
                pos = 1;
                true
            }
            b'+' => {
                pos = 1;
                false
            }
            _ => false,
        };
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[int_start..pos];
        let mut frac_part = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &s[start..pos];
        }
        // The suffix: letters from the suffix alphabet, then an optional signed exponent.
        let suffix_start = pos;
        while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < b.len() && matches!(b[pos], b'+' | b'-') {
            pos += 1;
        }
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos < b.len() {
            return Err(format_err());
        }
        let suffix = &s[suffix_start..];
        let (base2, suffix_exp, format) = interpret_suffix(suffix).ok_or_else(|| QuantityError::Suffix(s.to_string()))?;

        // Significant digits of int_part ++ frac_part, trailing zeros moved into the exponent.
        let all: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
        let mut exp: i64 = -(frac_part.len() as i64);
        let mut mantissa: u128 = 0;
        if let (Some(first), Some(last)) = (all.iter().position(|c| *c != b'0'), all.iter().rposition(|c| *c != b'0')) {
            exp += (all.len() - 1 - last) as i64;
            for c in &all[first..=last] {
                mantissa = mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add((c - b'0') as u128))
                    .ok_or_else(|| QuantityError::Numeric(s.to_string()))?;
            }
        }
        let mut q = Quantity { negative, mantissa, exp: 0, format };
        if base2 {
            match mantissa.checked_mul(1u128 << suffix_exp as u32) {
                Some(m) => q.mantissa = m,
                // Past 128 bits with few fraction digits the value is far above the cap.
                None if exp >= -19 => return Ok(q.capped_binary()),
                None => return Err(QuantityError::Numeric(s.to_string())),
            }
        } else {
            exp += suffix_exp as i64;
        }
        q.exp = i32::try_from(exp).map_err(|_| QuantityError::Suffix(s.to_string()))?;
        q.round_up_to_nano();
        q.normalize();
        if q.format == Format::BinarySI {
            if q.cmp_abs(&Quantity::from_i64(i64::MAX)) == Ordering::Greater {
                return Ok(q.capped_binary());
            }
            if q.mantissa != 0 && digits(q.mantissa) + q.exp <= 0 {
                // A fraction below one has no binary form.
                q.format = Format::DecimalSI;
            }
        }
        Ok(q)
    }

    /// Parses a k8s-openapi quantity; surrounding whitespace is dropped, as
    /// upstream's JSON decoding does.
    pub fn from_api(q: &ApiQuantity) -> Result<Quantity, QuantityError> {
        Quantity::parse(q.0.trim())
    }

    /// A quantity as found in unstructured JSON: a string or a number.
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, QuantityError> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s.trim()),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
            other => Err(QuantityError::Format(other.to_string())),
        }
    }

    /// The canonical form as a k8s-openapi quantity.
    pub fn to_api(&self) -> ApiQuantity {
        ApiQuantity(self.to_string())
    }

    pub fn from_i64(v: i64) -> Quantity {
        Quantity::scaled(v, 0, Format::DecimalSI)
    }

    /// `v * 10^exp`, e.g. `(250, -3)` is 250m.
    pub fn scaled(v: i64, exp: i32, format: Format) -> Quantity {
        let mut q = Quantity { negative: v < 0, mantissa: v.unsigned_abs() as u128, exp, format };
        q.normalize();
        q
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        match (self.mantissa, self.negative) {
            (0, _) => 0,
            (_, true) => -1,
            _ => 1,
        }
    }

    /// Upstream's Value: whole units (bytes, counts), rounded up away from
    /// zero, saturating at the i64 range.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// Upstream's MilliValue: thousandths (the unit of cpu), rounded up.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// Upstream's ScaledValue: the value in units of 10^scale, rounded up
    /// away from zero, saturating.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let magnitude = self.scaled_magnitude(scale);
        if self.negative {
            i64::try_from(magnitude).map(|m| -m).unwrap_or(i64::MIN)
        } else {
            i64::try_from(magnitude).unwrap_or(i64::MAX)
        }
    }

    fn scaled_magnitude(&self, scale: i32) -> u128 {
        if self.mantissa == 0 {
            return 0;
        }
        let e = self.exp as i64 - scale as i64;
        if e >= 0 {
            u32::try_from(e)
                .ok()
                .and_then(pow10)
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(u128::MAX)
        } else {
            match u32::try_from(-e).ok().and_then(pow10) {
                Some(p) => self.mantissa.div_ceil(p),
                None => 1,
            }
        }
    }

    /// Upstream's AsApproximateFloat64, for display and scoring only;
    /// compare quantities with `Ord`, which is exact.
    pub fn as_approximate_f64(&self) -> f64 {
        let v: f64 = format!("{}e{}", self.mantissa, self.exp).parse().unwrap_or(f64::INFINITY);
        if self.negative {
            -v
        } else {
            v
        }
    }

    /// Exact sum; None only past 128 bits of mantissa. A zero takes the
    /// other side's format, as upstream's Add.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        if other.mantissa == 0 {
            return Some(*self);
        }
        if self.mantissa == 0 {
            return Some(*other);
        }
        let exp = self.exp.min(other.exp);
        let align = |q: &Quantity| q.mantissa.checked_mul(pow10((q.exp - exp) as u32)?);
        let (a, b) = (align(self)?, align(other)?);
        let (negative, mantissa) = if self.negative == other.negative {
            (self.negative, a.checked_add(b)?)
        } else if a >= b {
            (self.negative, a - b)
        } else {
            (other.negative, b - a)
        };
        let mut q = Quantity { negative, mantissa, exp, format: self.format };
        q.normalize();
        Some(q)
    }

    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let neg = Quantity { negative: !other.negative, ..*other };
        let mut q = self.checked_add(&neg)?;
        if self.mantissa == 0 {
            q.format = other.format;
        }
        q.normalize();
        Some(q)
    }

    fn capped_binary(&self) -> Quantity {
        let mut q = Quantity { negative: self.negative, mantissa: i64::MAX as u128, exp: 0, format: Format::BinarySI };
        q.normalize();
        q
    }

    fn round_up_to_nano(&mut self) {
        if self.mantissa != 0 && self.exp < NANO {
            self.mantissa = match u32::try_from(NANO as i64 - self.exp as i64).ok().and_then(pow10) {
                Some(p) => self.mantissa.div_ceil(p),
                None => 1,
            };
            self.exp = NANO;
        }
    }

    fn normalize(&mut self) {
        if self.mantissa == 0 {
            self.negative = false;
            self.exp = 0;
            return;
        }
        while self.mantissa.is_multiple_of(10) {
            self.mantissa /= 10;
            self.exp += 1;
        }
    }

    fn cmp_abs(&self, other: &Quantity) -> Ordering {
        match (self.mantissa, other.mantissa) {
            (0, 0) => return Ordering::Equal,
            (0, _) => return Ordering::Less,
            (_, 0) => return Ordering::Greater,
            _ => {}
        }
        let (da, db) = (digits(self.mantissa), digits(other.mantissa));
        let (ma, mb) = (da as i64 + self.exp as i64, db as i64 + other.exp as i64);
        if ma != mb {
            return ma.cmp(&mb);
        }
        // Same magnitude: compare the digits, shorter one padded with zeros.
        let pad = |m: u128, by: i32| pow10(by as u32).and_then(|p| m.checked_mul(p));
        match da.cmp(&db) {
            Ordering::Equal => self.mantissa.cmp(&other.mantissa),
            Ordering::Greater => pad(other.mantissa, da - db).map_or(Ordering::Less, |b| self.mantissa.cmp(&b)),
            Ordering::Less => pad(self.mantissa, db - da).map_or(Ordering::Greater, |a| a.cmp(&other.mantissa)),
        }
    }

    /// The decimal canonical form: mantissa digits and an exponent that is a
    /// multiple of three, with no fractional digits.
    fn decimal_parts(&self) -> (String, i32) {
        let e3 = self.exp.div_euclid(3) * 3;
        let zeros = (self.exp - e3) as usize;
        (format!("{}{}", self.mantissa, "0".repeat(zeros)), e3)
    }

    fn write_decimal(&self, f: &mut fmt::Formatter<'_>, format: Format) -> fmt::Result {
        let (number, e3) = self.decimal_parts();
        let suffix = match format {
            Format::DecimalSI => DECIMAL_SUFFIXES.iter().find(|(_, e)| *e == e3).map(|(s, _)| s.to_string()),
            _ => None,
        };
        // Past E (or below n) DecimalSI has no suffix: exponent notation keeps the magnitude.
        let suffix = suffix.unwrap_or_else(|| if e3 == 0 { String::new() } else { format!("e{e3}") });
        write!(f, "{number}{suffix}")
    }
}

/// (binary?, exponent, format) for a suffix, as upstream's suffixer.
fn interpret_suffix(suffix: &str) -> Option<(bool, i32, Format)> {
    if let Some((_, bits)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some((true, *bits as i32, Format::BinarySI));
    }
    if let Some((_, e)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some((false, *e, Format::DecimalSI));
    }
    let rest = suffix.strip_prefix(['e', 'E']).filter(|r| !r.is_empty())?;
    let e: i64 = rest.parse().ok()?;
    // Upstream keeps the exponent in an int32 it later negates.
    i32::try_from(e).ok().filter(|e| *e != i32::MIN).map(|e| (false, e, Format::DecimalExponent))
}

impl fmt::Display for Quantity {
    /// Upstream's canonical string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        let abs = Quantity { negative: false, ..*self };
        match self.format {
            Format::DecimalSI | Format::DecimalExponent => abs.write_decimal(f, self.format),
            Format::BinarySI => {
                // Below 1024, or fractional, a binary suffix would round: print decimal.
                let integer = (abs.exp >= 0).then(|| abs.scaled_magnitude(0)).filter(|v| *v != u128::MAX);
                match integer {
                    Some(v) if v >= 1024 => {
                        let (mut m, mut k) = (v, 0usize);
                        while m.is_multiple_of(1024) {
                            m /= 1024;
                            k += 1;
                        }
                        match k {
                            0 => write!(f, "{m}"),
                            k if k <= BINARY_SUFFIXES.len() => write!(f, "{m}{}", BINARY_SUFFIXES[k - 1].0),
                            // Past Ei there is no binary suffix.
                            _ => abs.write_decimal(f, Format::DecimalExponent),
                        }
                    }
                    Some(_) => abs.write_decimal(f, Format::DecimalSI),
                    None if abs.exp < 0 => abs.write_decimal(f, Format::DecimalSI),
                    None => abs.write_decimal(f, Format::DecimalExponent),
                }
            }
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&ApiQuantity> for Quantity {
    type Error = QuantityError;
    fn try_from(q: &ApiQuantity) -> Result<Self, Self::Error> {
        Quantity::from_api(q)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.signum(), other.signum()) {
            (a, b) if a != b => a.cmp(&b),
            (-1, _) => other.cmp_abs(self),
            _ => self.cmp_abs(other),
        }
    }
}

#[cfg(test)]
#[path = "quantity_tests.rs"]
mod tests;
