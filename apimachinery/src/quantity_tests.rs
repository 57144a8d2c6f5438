//! Cases from upstream's documented Quantity semantics (resource package
//! tests: parse, emit, compare, round).

use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parse_then_print_canonical() {
    for (input, want) in [
        ("0", "0"),
        ("0Ki", "0"),
        ("0m", "0"),
        ("1", "1"),
        ("1Ki", "1Ki"),
        ("7Mi", "7Mi"),
        ("1024Mi", "1Gi"),
        ("1000M", "1G"),
        ("1000m", "1"),
        ("1.5Gi", "1536Mi"),
        ("0.5", "500m"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("50k", "50k"),
        ("100.035k", "100035"),
        ("1e3", "1e3"),
        ("1.2e3", "1200"),
        ("1.3E+6", "1300e3"),
        ("0.5e-2", "5e-3"),
        ("129e6", "129e6"),
        ("12E", "12E"),
        ("1000E", "1e21"),
        (".001Ki", "1024m"),
        (".000001Ki", "1024u"),
        (".000000001Ki", "1024n"),
        (".000000000001Ki", "2n"),
        ("0.5Ki", "512"),
        ("1025", "1025"),
        ("0.1m", "100u"),
        ("9.01", "9010m"),
        ("-9.01", "-9010m"),
        ("1.", "1"),
        ("1.G", "1G"),
        (".0001k", "100m"),
        ("128974848", "128974848"),
    ] {
        assert_eq!(q(input).to_string(), want, "{input}");
    }
}

#[test]
fn below_nano_rounds_up_away_from_zero() {
    assert_eq!(q("3.001n"), Quantity::scaled(4, -9, Format::DecimalSI));
    assert_eq!(q("1.1E-9"), Quantity::scaled(2, -9, Format::DecimalSI));
    assert_eq!(q("0.0000000001").to_string(), "1n");
    assert_eq!(q("0.9n").to_string(), "1n");
    assert_eq!(q("0.00000012345").to_string(), "124n");
    assert_eq!(q("-0.0000000001").to_string(), "-1n");
    assert_eq!(q("0.000000000001Ki").format(), Format::DecimalSI, "a binary fraction below one turns decimal");
}

#[test]
fn binary_values_cap_at_i64_max_decimal_do_not() {
    assert_eq!(q("9Ei").value(), i64::MAX);
    assert_eq!(q("9223372036854775807Ki").value(), i64::MAX);
    assert_eq!(q("999999999999999999999999Ei").value(), i64::MAX);
    assert_eq!(q("12E"), Quantity::scaled(12, 18, Format::DecimalSI));
}

#[test]
fn formats() {
    assert_eq!(q("1Ki").format(), Format::BinarySI);
    assert_eq!(q("5n").format(), Format::DecimalSI);
    assert_eq!(q("1E-3").format(), Format::DecimalExponent);
    assert_eq!(q("1E").format(), Format::DecimalSI, "E alone is exa");
}

#[test]
fn invalid_strings() {
    for bad in [
        "", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", "1e4294967297", " 1", "1 ",
        "1K", "1e", "1Mii", "--1", "1x",
    ] {
        assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn scanner_edge_cases_follow_upstream() {
    // Upstream's scanner takes a bare "." (and a bare sign) as zero.
    assert!(q(".").is_zero());
    assert!(q("-000").is_zero());
    assert_eq!(q("+1Ki"), q("1024"));
}

#[test]
fn exact_comparison() {
    assert_eq!(q("100m").cmp(&q("50m")), Ordering::Greater);
    assert_eq!(q("10000T").cmp(&q("100Gi")), Ordering::Greater);
    assert_eq!(q("1Ki"), q("1024"));
    assert_eq!(q("1"), q("1000m"));
    assert!(q("2") > q("1500m"));
    assert!(q("-1") < q("0"));
    assert!(q("-2") < q("-1500m"));
    // Differs in the 20th significant digit: a float cannot tell these apart.
    assert!(q("100000000000000000001") > q("100000000000000000000"));
    assert!(q("800m") > q("79e-2"));
}

#[test]
fn integer_conversions_round_up() {
    assert_eq!(q("100m").milli_value(), 100);
    assert_eq!(q("1").milli_value(), 1000);
    assert_eq!(q("1.5").milli_value(), 1500);
    assert_eq!(q("250u").milli_value(), 1, "MilliValue rounds up");
    assert_eq!(q("2e3").milli_value(), 2_000_000);
    assert_eq!(q("2k").milli_value(), 2_000_000);
    assert_eq!(q("64Mi").value(), 64 << 20);
    assert_eq!(q("1.5Ki").value(), 1536);
    assert_eq!(q("1G").value(), 1_000_000_000);
    assert_eq!(q("1e3").value(), 1000);
    assert_eq!(q("9.01").scaled_value(0), 10);
    assert_eq!(q("-9.01").scaled_value(0), -10, "away from zero");
    assert_eq!(q("9.01").scaled_value(-2), 901);
    // A float parser loses this: 2^53 + 1 bytes.
    assert_eq!(q("9007199254740993").value(), 9_007_199_254_740_993);
    assert_eq!(q("1e100").value(), i64::MAX, "saturates");
    assert_eq!(q("-1e100").value(), i64::MIN);
}

#[test]
fn approximate_float() {
    assert_eq!(q("1500m").as_approximate_f64(), 1.5);
    assert_eq!(q("-1Ki").as_approximate_f64(), -1024.0);
    assert_eq!(q("0").as_approximate_f64(), 0.0);
}

#[test]
fn arithmetic_is_exact() {
    let sum = q("100m").checked_add(&q("1900m")).unwrap();
    assert_eq!(sum, q("2"));
    assert_eq!(sum.to_string(), "2");
    assert_eq!(Quantity::ZERO.checked_add(&q("1Gi")).unwrap().to_string(), "1Gi", "zero takes the other's format");
    assert_eq!(q("1Gi").checked_sub(&q("512Mi")).unwrap().to_string(), "512Mi");
    assert_eq!(q("1").checked_sub(&q("3")).unwrap().to_string(), "-2");
}

#[test]
fn api_and_json_entry_points_trim_like_json_decoding() {
    assert_eq!(Quantity::from_api(&ApiQuantity(" 1Gi ".into())).unwrap(), q("1Gi"));
    assert_eq!(Quantity::from_json(&serde_json::json!(1.5)).unwrap(), q("1500m"));
    assert_eq!(Quantity::from_json(&serde_json::json!("2")).unwrap(), q("2"));
    assert!(Quantity::from_json(&serde_json::json!(true)).is_err());
    assert_eq!(q("1024Mi").to_api(), ApiQuantity("1Gi".into()));
}

#[test]
fn random_strings_never_panic_and_canonical_forms_are_stable() {
    let alphabet: Vec<char> = "0123456789.eEinumkKMGTP+-".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 40) as usize;
        let s: String = (0..len).map(|i| alphabet[((state >> (i % 56)) as usize + i * 7) % alphabet.len()]).collect();
        if let Ok(v) = Quantity::parse(&s) {
            let canonical = v.to_string();
            let again = Quantity::parse(&canonical).unwrap_or_else(|e| panic!("{s} -> {canonical}: {e}"));
            assert_eq!(again, v, "{s} -> {canonical}");
            assert_eq!(again.to_string(), canonical, "{s}");
        }
    }
}
