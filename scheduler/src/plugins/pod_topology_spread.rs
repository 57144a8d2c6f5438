//! PodTopologySpread: DoNotSchedule constraints filter nodes whose domain
//! would exceed maxSkew; ScheduleAnyway constraints (and the profile's
//! default constraints, selecting pods by the incoming pod's own labels,
//! since the scheduler does not watch Services or ReplicaSets) score
//! emptier domains higher.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use apimachinery::labels::{label_selector_matches, Selector};
use super::node_affinity::pod_matches_node;
use crate::framework::{
    CycleState, Filter, NodeInfo, Plugin, PodInfo, PreFilter, PreScore, Score, Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "PodTopologySpread";
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_MISSING_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTopologySpreadArgs {
    #[serde(default)]
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// "List" applies default_constraints; "System" (the default) applies none here.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
}

impl PodTopologySpread {
    pub fn new(args: PodTopologySpreadArgs) -> Self {
        let list = args.defaulting_type.as_deref() == Some("List");
        PodTopologySpread {
            default_constraints: if list { args.default_constraints } else { Vec::new() },
        }
    }
}

impl Plugin for PodTopologySpread {
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

/// A constraint with its selector resolved (matchLabelKeys folded in).
struct Constraint {
    key: String,
    max_skew: i64,
    min_domains: i64,
    selector: LabelSelector,
}

fn resolve(c: &TopologySpreadConstraint, pod: &PodInfo, default_selector: bool) -> Constraint {
    let mut selector = if default_selector {
        LabelSelector {
            match_labels: pod.pod.metadata.labels.clone(),
            ..Default::default()
        }
    } else {
        c.label_selector.clone().unwrap_or_default()
    };
    let labels = pod.pod.metadata.labels.as_ref();
    for k in c.match_label_keys.iter().flatten() {
        if let Some(v) = labels.and_then(|l| l.get(k)) {
            selector
                .match_labels
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
    }
    Constraint {
        key: c.topology_key.clone(),
        max_skew: c.max_skew.max(1) as i64,
        min_domains: c.min_domains.unwrap_or(1).max(1) as i64,
        selector,
    }
}

impl PodTopologySpread {
    fn constraints(&self, pod: &PodInfo, hard: bool) -> Vec<Constraint> {
        let wanted = if hard { "DoNotSchedule" } else { "ScheduleAnyway" };
        let own = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        if !own.is_empty() {
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == wanted)
                .map(|c| resolve(c, pod, false))
                .collect();
        }
        if pod.pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        self.default_constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == wanted)
            .map(|c| resolve(c, pod, true))
            .collect()
    }
}

fn invalid(pod: &PodInfo) -> Option<String> {
    let own = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    for c in own {
        if let Some(sel) = &c.label_selector {
            if let Err(e) = Selector::from_label_selector(sel) {
                return Some(e.to_string());
            }
        }
        if !matches!(c.when_unsatisfiable.as_str(), "DoNotSchedule" | "ScheduleAnyway") {
            return Some(format!("{:?} is not a valid whenUnsatisfiable", c.when_unsatisfiable));
        }
    }
    None
}

/// Matching pods per domain value, over nodes that carry every key and
/// pass the pod's node affinity (nodeAffinityPolicy: Honor).
fn count_domains(cs: &[Constraint], pod: &PodInfo, nodes: &[std::sync::Arc<NodeInfo>]) -> Vec<HashMap<String, i64>> {
    let mut counts: Vec<HashMap<String, i64>> = cs.iter().map(|_| HashMap::new()).collect();
    for node in nodes {
        let Some(labels) = node.labels() else { continue };
        if !cs.iter().all(|c| labels.contains_key(&c.key)) || !pod_matches_node(pod, node) {
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            let value = &labels[&c.key];
            let n = node
                .pods
                .iter()
                .filter(|p| p.namespace() == pod.namespace() && p.pod.metadata.deletion_timestamp.is_none())
                .filter(|p| label_selector_matches(&c.selector, &p.pod.metadata.labels.as_ref()).unwrap_or(false))
                .count() as i64;
            *counts[i].entry(value.clone()).or_default() += n;
        }
    }
    counts
}

struct FilterState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

impl PreFilter for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        if let Some(e) = invalid(pod) {
            return Status::unresolvable(format!("invalid topology spread constraint: {e}"));
        }
        let constraints = self.constraints(pod, true);
        if constraints.is_empty() {
            return Status::skip();
        }
        let counts = count_domains(&constraints, pod, &snapshot.nodes);
        let min = constraints
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                if (m.len() as i64) < c.min_domains {
                    0
                } else {
                    m.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        state.write(
            NAME,
            FilterState {
                constraints,
                counts,
                min,
            },
        );
        Status::success()
    }
}

impl Filter for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels().and_then(|l| l.get(&c.key)) else {
                return Status::unresolvable(REASON_MISSING_LABEL);
            };
            let self_match = label_selector_matches(&c.selector, &pod.pod.metadata.labels.as_ref()).unwrap_or(false) as i64;
            let here = s.counts[i].get(value).copied().unwrap_or(0);
            if here + self_match - s.min[i] > c.max_skew {
                return Status::unschedulable(REASON);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    /// log(domains + 2): constraints over more domains weigh more.
    weights: Vec<f64>,
}

impl PreScore for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        let constraints = self.constraints(pod, false);
        if constraints.is_empty() {
            return Status::skip();
        }
        let counts = count_domains(&constraints, pod, &snapshot.nodes);
        let weights = counts.iter().map(|m| ((m.len() + 2) as f64).ln()).collect();
        state.write(
            NAME,
            ScoreState {
                constraints,
                counts,
                weights,
            },
        );
        Status::success()
    }
}

impl Score for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<ScoreState>(NAME) else {
            return Ok(0);
        };
        let mut total = 0f64;
        for (i, c) in s.constraints.iter().enumerate() {
            // Nodes without the key are marked and scored 0 in normalize.
            let Some(value) = node.labels().and_then(|l| l.get(&c.key)) else {
                return Ok(-1);
            };
            let cnt = s.counts[i].get(value).copied().unwrap_or(0) as f64;
            total += cnt * s.weights[i] + (c.max_skew - 1) as f64;
        }
        Ok((total * 100.0).round() as i64)
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let (min, max) = valid.fold((i64::MAX, 0i64), |(mn, mx), s| (mn.min(s), mx.max(s)));
        for s in scores.iter_mut() {
            *s = if *s < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use std::sync::Arc;

    fn spread(mut p: k8s_openapi::api::core::v1::Pod, key: &str, when: &str) -> k8s_openapi::api::core::v1::Pod {
        p.spec.as_mut().unwrap().topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: when.into(),
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        with_labels(p, &[("app", "web")])
    }

    fn web(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
        with_labels(on_node(pod(name, "0", "0"), node), &[("app", "web")])
    }

    fn zone_node(name: &str, zone: &str, pods: Vec<k8s_openapi::api::core::v1::Pod>) -> Arc<NodeInfo> {
        Arc::new(node_info(
            with_node_labels(node(name, "1", "1Gi", "10"), &[("zone", zone)]),
            pods,
        ))
    }

    #[test]
    fn do_not_schedule_respects_max_skew() {
        let snap = Snapshot::new(vec![
            zone_node("a", "z1", vec![web("w1", "a")]),
            zone_node("b", "z2", vec![]),
            Arc::new(node_info(node("c", "1", "1Gi", "10"), vec![])),
        ]);
        let p = pod_info(spread(pod("w2", "0", "0"), "zone", "DoNotSchedule"));
        let mut st = CycleState::default();
        assert!(PodTopologySpread::new(Default::default())
            .pre_filter(&mut st, &p, &snap)
            .is_success());
        let plugin = PodTopologySpread::new(Default::default());
        assert_eq!(plugin.filter(&st, &p, &snap.nodes[0]), Status::unschedulable(REASON));
        assert!(plugin.filter(&st, &p, &snap.nodes[1]).is_success());
        assert_eq!(
            plugin.filter(&st, &p, &snap.nodes[2]),
            Status::unresolvable(REASON_MISSING_LABEL)
        );
    }

    #[test]
    fn schedule_anyway_scores_the_emptier_domain_higher() {
        let snap = Snapshot::new(vec![
            zone_node("a", "z1", vec![web("w1", "a"), web("w3", "a")]),
            zone_node("b", "z2", vec![]),
        ]);
        let p = pod_info(spread(pod("w2", "0", "0"), "zone", "ScheduleAnyway"));
        let plugin = PodTopologySpread::new(Default::default());
        let mut st = CycleState::default();
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().map(|n| n.as_ref()).collect();
        assert!(plugin.pre_score(&mut st, &p, &nodes, &snap).is_success());
        let mut scores: Vec<i64> = nodes.iter().map(|n| plugin.score(&st, &p, n).unwrap()).collect();
        plugin.normalize(&st, &p, &mut scores);
        assert!(scores[1] > scores[0], "{scores:?}");
    }
}
