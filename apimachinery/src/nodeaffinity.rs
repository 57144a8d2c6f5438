//! Node selector terms as component-helpers' nodeaffinity matches them:
//! the scheduler's NodeAffinity and VolumeBinding plugins and the PV
//! controller (a volume's nodeAffinity against a node) all read them.

use std::collections::BTreeMap;

use crate::labels::{Operator, SelectorError};
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

type Labels = BTreeMap<String, String>;

/// One node selector requirement against a value (a label, or metadata.name).
fn requirement_matches(r: &NodeSelectorRequirement, have: Option<&String>) -> Result<bool, SelectorError> {
    let op = match r.operator.as_str() {
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        other => Operator::from_expression(other)?,
    };
    let values = r.values.as_deref().unwrap_or(&[]);
    op.check_values(values)?;
    Ok(op.matches(have.map(String::as_str), values))
}

/// A NodeSelectorTerm: every expression and field must match; an empty
/// term matches nothing, as upstream.
pub fn node_term_matches(
    term: &NodeSelectorTerm,
    labels: Option<&Labels>,
    node_name: &str,
) -> Result<bool, SelectorError> {
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
pub fn validate_node_terms(terms: &[NodeSelectorTerm]) -> Result<(), SelectorError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bad_operators_and_values_are_reported() {
        let term = |op: &str, values: Option<Vec<String>>| NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement { key: "a".into(), operator: op.into(), values }]),
            match_fields: None,
        };
        assert_eq!(validate_node_terms(&[term("Near", None)]), Err(SelectorError::Operator("Near".into())));
        assert!(validate_node_terms(&[term("Gt", Some(vec!["x".into()]))]).is_err());
        assert!(validate_node_terms(&[term("In", None)]).is_err());
        assert!(validate_node_terms(&[term("Exists", None)]).is_ok());
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
}
