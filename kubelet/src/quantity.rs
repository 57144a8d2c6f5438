//! Just enough of resource.Quantity for cgroup limits: milli-CPU and bytes.

/// Parses a quantity into its value scaled by `scale` (1000 for milli-units, 1 for bytes), rounding up.
fn parse_scaled(q: &str, scale: f64) -> Option<i64> {
    let q = q.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, mult) = suffixes
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1.0));
    if num.is_empty() {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some((v * mult * scale).ceil() as i64)
}

/// CPU in millicores: "100m" → 100, "1.5" → 1500.
pub fn milli_cpu(q: &str) -> Option<i64> {
    parse_scaled(q, 1000.0)
}

/// Memory and storage in bytes: "64Mi" → 67108864.
pub fn bytes(q: &str) -> Option<i64> {
    parse_scaled(q, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(milli_cpu("100m"), Some(100));
        assert_eq!(milli_cpu("1"), Some(1000));
        assert_eq!(milli_cpu("0.5"), Some(500));
        assert_eq!(milli_cpu("2k"), Some(2_000_000));
        assert_eq!(milli_cpu("abc"), None);
        assert_eq!(milli_cpu(""), None);
        assert_eq!(milli_cpu("-1"), None);
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("128974848"), Some(128974848));
    }
}
