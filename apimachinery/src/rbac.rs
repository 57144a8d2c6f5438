//! ClusterRole aggregation (upstream pkg/controller/clusterroleaggregation): an aggregated
//! ClusterRole's rules are the rules of every other ClusterRole one of its
//! `aggregationRule.clusterRoleSelectors` selects, in name order, without repeats. The
//! controller-manager keeps them current; the apiserver fills them once at bootstrap.

use crate::labels::label_selector_matches;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};

/// The rules `role` aggregates from `all`; None when it aggregates nothing.
pub fn aggregated_rules(role: &ClusterRole, all: &[ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role.aggregation_rule.as_ref()?.cluster_role_selectors.as_ref()?;
    let mut sources: Vec<&ClusterRole> = all.iter().filter(|c| c.metadata.name != role.metadata.name).collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let empty = Default::default();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for src in sources {
        let labels = src.metadata.labels.as_ref().unwrap_or(&empty);
        if !selectors.iter().any(|s| label_selector_matches(s, labels).unwrap_or(false)) {
            continue;
        }
        for r in src.rules.iter().flatten() {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(name: &str, label: Option<&str>, verb: &str) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta { name: Some(name.into()), labels: label.map(|l| [(l.to_string(), "true".to_string())].into()), ..Default::default() },
            rules: Some(vec![PolicyRule { verbs: vec![verb.into()], api_groups: Some(vec!["".into()]), resources: Some(vec!["pods".into()]), ..Default::default() }]),
            ..Default::default()
        }
    }

    #[test]
    fn selected_roles_rules_in_name_order_without_repeats() {
        let sel = LabelSelector { match_labels: Some([("agg".to_string(), "true".to_string())].into()), ..Default::default() };
        let mut view = role("view", None, "x");
        view.aggregation_rule = Some(AggregationRule { cluster_role_selectors: Some(vec![sel]) });
        let all = vec![role("b", Some("agg"), "list"), role("a", Some("agg"), "get"), role("c", Some("agg"), "get"), role("d", None, "delete"), view.clone()];
        let rules = aggregated_rules(&view, &all).unwrap();
        assert_eq!(rules.iter().map(|r| r.verbs[0].as_str()).collect::<Vec<_>>(), ["get", "list"]);
        assert!(aggregated_rules(&role("a", None, "get"), &all).is_none());
    }
}
