//! `resource.Quantity` for validation and defaulting: a thin face over
//! `apimachinery::quantity`, keeping the names this crate's callers use.

use std::ops::Deref;

use serde_json::Value;

pub use apimachinery::quantity::FORMAT_MESSAGE as QUANTITY_REGEX_MSG;

/// An exact quantity; derefs to [`apimachinery::Quantity`] (exact `Ord`,
/// `is_negative`, integer conversions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(pub apimachinery::Quantity);

impl Quantity {
    /// Parses a quantity string; surrounding whitespace is ignored, as in JSON decoding.
    pub fn parse(s: &str) -> Option<Quantity> {
        apimachinery::Quantity::parse(s.trim()).ok().map(Quantity)
    }

    /// A JSON string or number.
    pub fn from_json(v: &Value) -> Option<Quantity> {
        apimachinery::Quantity::from_json(v).ok().map(Quantity)
    }

    /// Upstream's canonical string.
    pub fn canonical(&self) -> String {
        self.0.to_string()
    }
}

impl Deref for Quantity {
    type Target = apimachinery::Quantity;
    fn deref(&self) -> &Self::Target {
        &self.0
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
    use serde_json::json;

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [("1000m", "1"), ("1.5Gi", "1536Mi"), ("0.5", "500m"), ("2000", "2k"), (" 1Gi ", "1Gi")] {
            assert_eq!(Quantity::parse(input).map(|q| q.canonical()).as_deref(), Some(want), "{input}");
        }
        assert_eq!(Quantity::parse("1Xi"), None);
    }

    #[test]
    fn maps_are_canonicalized_and_invalid_values_kept() {
        let mut m = json!({"cpu": "1000m", "memory": 1024, "bad": "lots"}).as_object().unwrap().clone();
        canonicalize_map(&mut m);
        assert_eq!(Value::Object(m), json!({"cpu": "1", "memory": "1024", "bad": "lots"}));
    }

    #[test]
    fn comparisons_are_exact() {
        let (a, b) = (Quantity::parse("100000000000000000001").unwrap(), Quantity::parse("100000000000000000000").unwrap());
        assert!(a > b);
        assert!(Quantity::parse("-1").unwrap().is_negative());
    }
}
