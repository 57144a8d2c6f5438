//! NodeAffinity: spec.nodeSelector and required node affinity filter
//! nodes (every operator: In, NotIn, Exists, DoesNotExist, Gt, Lt);
//! preferred node affinity adds its weights to the score.

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PreferredSchedulingTerm};

use super::helper::{node_term_matches, validate_node_terms};
use crate::framework::{
    default_normalize, CycleState, Filter, NodeInfo, Plugin, PodInfo, PreFilter, PreScore, Score, Snapshot, Status,
};

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

fn required_terms(pod: &PodInfo) -> Option<&[NodeSelectorTerm]> {
    let spec = pod.pod.spec.as_ref()?;
    let req = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    Some(&req.node_selector_terms)
}

fn preferred_terms(pod: &PodInfo) -> &[PreferredSchedulingTerm] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

/// Whether the node satisfies nodeSelector and required affinity; operators
/// were validated in PreFilter, so an error here counts as a mismatch.
pub fn pod_matches_node(pod: &PodInfo, node: &NodeInfo) -> bool {
    let labels = node.labels();
    if let Some(sel) = pod.pod.spec.as_ref().and_then(|s| s.node_selector.as_ref()) {
        if !apimachinery::labels::set_matches(sel, &labels) {
            return false;
        }
    }
    match required_terms(pod) {
        // Terms are ORed.
        Some(terms) => terms
            .iter()
            .any(|t| node_term_matches(t, labels, &node.name).unwrap_or(false)),
        None => true,
    }
}

impl PreFilter for NodeAffinity {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Status {
        let has_selector = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let terms = required_terms(pod);
        let preferred: Vec<NodeSelectorTerm> = preferred_terms(pod).iter().map(|p| p.preference.clone()).collect();
        if let Err(e) = validate_node_terms(terms.unwrap_or(&[])).and_then(|_| validate_node_terms(&preferred)) {
            return Status::unresolvable(format!("invalid node affinity: {e}"));
        }
        if !has_selector && terms.is_none() {
            return Status::skip();
        }
        Status::success()
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod_matches_node(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl PreScore for NodeAffinity {
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo], _: &Snapshot) -> Status {
        if preferred_terms(pod).is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl Score for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(preferred_terms(pod)
            .iter()
            .filter(|t| t.weight != 0 && node_term_matches(&t.preference, node.labels(), &node.name).unwrap_or(false))
            .map(|t| t.weight as i64)
            .sum())
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeSelector, NodeSelectorRequirement};

    fn with_required(
        mut p: k8s_openapi::api::core::v1::Pod,
        key: &str,
        op: &str,
        values: &[&str],
    ) -> k8s_openapi::api::core::v1::Pod {
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: key.into(),
                            operator: op.into(),
                            values: Some(values.iter().map(|s| s.to_string()).collect()),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let zone_a = node_info(with_node_labels(node("a", "1", "1Gi", "10"), &[("zone", "a")]), vec![]);
        let zone_b = node_info(with_node_labels(node("b", "1", "1Gi", "10"), &[("zone", "b")]), vec![]);
        let p = pod_info(with_required(pod("p", "0", "0"), "zone", "In", &["a"]));
        let mut st = CycleState::default();
        assert!(NodeAffinity.pre_filter(&mut st, &p, &Snapshot::default()).is_success());
        assert!(NodeAffinity.filter(&st, &p, &zone_a).is_success());
        assert_eq!(NodeAffinity.filter(&st, &p, &zone_b), Status::unresolvable(REASON));

        let mut sel = pod("s", "0", "0");
        sel.spec.as_mut().unwrap().node_selector = Some([("zone".to_string(), "b".to_string())].into());
        let sel = pod_info(sel);
        assert!(!NodeAffinity.filter(&st, &sel, &zone_a).is_success());
        assert!(NodeAffinity.filter(&st, &sel, &zone_b).is_success());
    }

    #[test]
    fn unknown_operator_is_unresolvable_with_a_reason() {
        let p = pod_info(with_required(pod("p", "0", "0"), "zone", "Near", &["a"]));
        let st = NodeAffinity.pre_filter(&mut CycleState::default(), &p, &Snapshot::default());
        assert_eq!(st.code, crate::framework::Code::UnschedulableAndUnresolvable);
        assert!(st.message().contains("\"Near\""), "{}", st.message());
    }

    #[test]
    fn preferred_terms_score() {
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![PreferredSchedulingTerm {
                    weight: 10,
                    preference: NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "ssd".into(),
                            operator: "Exists".into(),
                            values: None,
                        }]),
                        match_fields: None,
                    },
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let p = pod_info(p);
        let st = CycleState::default();
        let ssd = node_info(with_node_labels(node("a", "1", "1Gi", "10"), &[("ssd", "")]), vec![]);
        let hdd = node_info(node("b", "1", "1Gi", "10"), vec![]);
        let mut scores = vec![
            NodeAffinity.score(&st, &p, &ssd).unwrap(),
            NodeAffinity.score(&st, &p, &hdd).unwrap(),
        ];
        NodeAffinity.normalize(&st, &p, &mut scores);
        assert_eq!(scores, vec![100, 0]);
    }
}
