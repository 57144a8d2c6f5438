//! `resource.Quantity`: parsing and the canonical form upstream writes back (`1000m` → `1`,
//! `1.5Gi` → `1536Mi`, `0.5` → `500m`, `2000` → `2k`).

use serde_json::Value;

pub const QUANTITY_REGEX_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// An exact decimal: `mantissa * 10^exp`, plus the format to print it back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp: i32,
    format: Format,
}

const BINARY: &[(&str, u32)] = &[
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];
const DECIMAL: &[(&str, i32)] = &[
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

fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

impl Quantity {
    /// Parses a quantity string (or a JSON number); None when it does not match upstream's
    /// syntax or does not fit.
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let (negative, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return None;
        }
        let mut mantissa: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut exp = -(frac.len() as i32);
        let format = if let Some((_, bits)) = BINARY.iter().find(|(sfx, _)| *sfx == suffix) {
            mantissa = mantissa.checked_mul(1u128.checked_shl(*bits)?)?;
            Format::BinarySI
        } else if let Some((_, e)) = DECIMAL.iter().find(|(sfx, _)| *sfx == suffix) {
            exp += e;
            Format::DecimalSI
        } else if let Some(e) = suffix.strip_prefix(['e', 'E']) {
            exp += e.parse::<i32>().ok().filter(|e| e.abs() <= 1000)?;
            Format::DecimalExponent
        } else {
            return None;
        };
        let mut q = Quantity {
            negative,
            mantissa,
            exp,
            format,
        };
        q.normalize();
        Some(q)
    }

    pub fn from_json(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    /// Strips trailing zeros; values finer than 1n round up (away from zero) to nano precision.
    fn normalize(&mut self) {
        if self.mantissa == 0 {
            self.exp = 0;
            self.negative = false;
            return;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
        if self.exp < -9 {
            let div = pow10((-9 - self.exp) as u32).unwrap_or(u128::MAX);
            self.mantissa = self.mantissa.div_ceil(div);
            self.exp = -9;
            self.normalize();
        }
    }

    /// The integer value when the quantity is whole and fits.
    fn integer(&self) -> Option<u128> {
        if self.exp < 0 {
            return None;
        }
        self.mantissa.checked_mul(pow10(self.exp as u32)?)
    }

    /// upstream's canonical string.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        if self.format == Format::BinarySI {
            if let Some(v) = self.integer().filter(|v| *v >= 1024) {
                let mut k = 0;
                let mut m = v;
                while k < BINARY.len() && m % 1024 == 0 {
                    m /= 1024;
                    k += 1;
                }
                let suffix = if k == 0 { "" } else { BINARY[k - 1].0 };
                return format!("{sign}{m}{suffix}");
            }
        }
        let mut e3 = self.exp.div_euclid(3) * 3;
        let shift = (self.exp - e3) as u32;
        let m = match self.mantissa.checked_mul(10u128.pow(shift)) {
            Some(m) => m,
            None => {
                // Too large to shift onto a multiple of three: print the exact exponent.
                e3 = self.exp;
                self.mantissa
            }
        };
        match DECIMAL.iter().find(|(_, e)| *e == e3) {
            Some((suffix, _)) if self.format != Format::DecimalExponent => {
                format!("{sign}{m}{suffix}")
            }
            _ if e3 == 0 => format!("{sign}{m}"),
            _ => format!("{sign}{m}e{e3}"),
        }
    }

    /// The value as a float, for comparisons.
    pub fn as_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exp);
        if self.negative {
            -v
        } else {
            v
        }
    }
}

/// Rewrites every value of a `{name: quantity}` map in canonical form; invalid values are left
/// for validation to report.
pub fn canonicalize_map(map: &mut serde_json::Map<String, Value>) {
    for v in map.values_mut() {
        if let Some(q) = Quantity::from_json(v) {
            *v = Value::String(q.canonical());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [
            ("1000m", "1"),
            ("1.5Gi", "1536Mi"),
            ("0.5", "500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("500m", "500m"),
            ("1Gi", "1Gi"),
            ("1024", "1024"),
            ("1024Mi", "1Gi"),
            ("100M", "100M"),
            ("1e3", "1e3"),
            ("0.1m", "100u"),
            ("0.0000000001", "1n"),
            ("-2", "-2"),
            ("0", "0"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
            ("0.5Ki", "512"),
        ] {
            assert_eq!(
                Quantity::parse(input).map(|q| q.canonical()),
                Some(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn random_strings_never_panic() {
        let alphabet: Vec<char> = "0123456789.eEinumkKMGTP+-".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 48) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((state >> (i % 56)) as usize + i * 7) % alphabet.len()])
                .collect();
            if let Some(q) = Quantity::parse(&s) {
                let canonical = q.canonical();
                assert_eq!(
                    Quantity::parse(&canonical).map(|c| c.canonical()),
                    Some(canonical.clone()),
                    "{s} -> {canonical}"
                );
            }
        }
    }

    #[test]
    fn invalid_quantities() {
        for bad in ["", "abc", "1.2.3", "1Xi", "--1", "1e", ".", "1 Gi"] {
            assert_eq!(Quantity::parse(bad), None, "{bad}");
        }
        assert!(
            Quantity::parse("2").unwrap().as_f64() > Quantity::parse("1500m").unwrap().as_f64()
        );
    }
}
