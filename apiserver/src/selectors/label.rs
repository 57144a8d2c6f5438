//! Label selectors from `labelSelector` query parameters, matched against
//! an object's `metadata.labels`: a face over `apimachinery::labels`.

use super::SelectorError;
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub apimachinery::labels::Selector);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        apimachinery::labels::Selector::parse(s).map(LabelSelector).map_err(|e| SelectorError::Label(e.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches an object by its `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.matches(&obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn all_operators() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("app in (db), tier", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&p), want, "{sel}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in ["a in web", "=x", "a=b=c d", ",", "a in (", "x/y/z=1", "\u{1F600}=1"] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
    }
}
