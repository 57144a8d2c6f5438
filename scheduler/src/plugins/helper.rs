//! Matching rules shared by plugins: label selectors, node selector
//! requirements and tolerations, as in k8s.io/component-helpers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector that names an operator the scheduler does not know.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0:?} is not a valid label selector operator")]
pub struct UnknownOperator(pub String);

type Labels = BTreeMap<String, String>;

/// metav1.LabelSelector semantics: all of matchLabels and matchExpressions.
/// An empty selector matches everything.
pub fn selector_matches(sel: &LabelSelector, labels: Option<&Labels>) -> Result<bool, UnknownOperator> {
    let empty = Labels::new();
    let labels = labels.unwrap_or(&empty);
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => return Err(UnknownOperator(other.to_string())),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Validates a selector's operators without matching anything.
pub fn validate_selector(sel: &LabelSelector) -> Result<(), UnknownOperator> {
    selector_matches(sel, None).map(|_| ())
}

/// One node selector requirement against a value (a label, or metadata.name).
fn requirement_matches(r: &NodeSelectorRequirement, have: Option<&String>) -> Result<bool, UnknownOperator> {
    let values = r.values.as_deref().unwrap_or(&[]);
    let int = |s: &str| s.parse::<i64>().ok();
    Ok(match r.operator.as_str() {
        "In" => have.is_some_and(|v| values.contains(v)),
        "NotIn" => !have.is_some_and(|v| values.contains(v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(bound)) = (have.and_then(|v| int(v)), values.first().and_then(|v| int(v))) else {
                return Ok(false);
            };
            if r.operator == "Gt" {
                h > bound
            } else {
                h < bound
            }
        }
        other => return Err(UnknownOperator(other.to_string())),
    })
}

/// A NodeSelectorTerm: every expression and field must match; an empty
/// term matches nothing, as upstream.
pub fn node_term_matches(
    term: &NodeSelectorTerm,
    labels: Option<&Labels>,
    node_name: &str,
) -> Result<bool, UnknownOperator> {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return Ok(false);
    }
    for r in exprs {
        if !requirement_matches(r, labels.and_then(|l| l.get(&r.key)))? {
            return Ok(false);
        }
    }
    let name = node_name.to_string();
    for r in fields {
        let have = (r.key == "metadata.name").then_some(&name);
        if !requirement_matches(r, have)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks every operator in the terms so bad input is caught once, up front.
pub fn validate_node_terms(terms: &[NodeSelectorTerm]) -> Result<(), UnknownOperator> {
    for t in terms {
        for r in t
            .match_expressions
            .iter()
            .flatten()
            .chain(t.match_fields.iter().flatten())
        {
            requirement_matches(r, None)?;
        }
    }
    Ok(())
}

/// v1.Toleration.ToleratesTaint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => !key.is_empty() && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selector_expressions() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert_eq!(selector_matches(&sel, Some(&labels(&[("app", "web")]))), Ok(true));
        assert_eq!(
            selector_matches(&sel, Some(&labels(&[("app", "web"), ("tier", "db")]))),
            Ok(false)
        );
        assert_eq!(selector_matches(&sel, None), Ok(false));
    }

    #[test]
    fn unknown_operator_is_reported() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(validate_selector(&sel), Err(UnknownOperator("Near".into())));
    }

    #[test]
    fn gt_lt_and_fields() {
        let term = NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: "cores".into(),
                operator: "Gt".into(),
                values: Some(vec!["4".into()]),
            }]),
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec!["n1".into()]),
            }]),
        };
        assert_eq!(
            node_term_matches(&term, Some(&labels(&[("cores", "8")])), "n1"),
            Ok(true)
        );
        assert_eq!(
            node_term_matches(&term, Some(&labels(&[("cores", "8")])), "n2"),
            Ok(false)
        );
        assert_eq!(
            node_term_matches(&term, Some(&labels(&[("cores", "2")])), "n1"),
            Ok(false)
        );
        assert_eq!(
            node_term_matches(&term, Some(&labels(&[("cores", "x")])), "n1"),
            Ok(false)
        );
    }

    #[test]
    fn toleration_rules() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let exists_all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let equal = Toleration {
            key: Some("k".into()),
            value: Some("v".into()),
            ..Default::default()
        };
        let wrong_effect = Toleration {
            key: Some("k".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        };
        assert!(tolerates(&exists_all, &taint));
        assert!(tolerates(&equal, &taint));
        assert!(!tolerates(&wrong_effect, &taint));
    }
}
