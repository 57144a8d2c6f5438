//! InterPodAffinity: required pod affinity and anti-affinity by
//! topologyKey (both the incoming pod's terms and, symmetrically, the
//! anti-affinity of pods already placed), and preferred terms as score.
//!
//! A term with a non-empty namespaceSelector matches only the namespaces
//! it lists: the scheduler does not watch Namespaces.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use apimachinery::labels::{label_selector_matches, Selector, SelectorError};
use crate::framework::{
    CycleState, Filter, NodeInfo, Plugin, PodInfo, PreFilter, PreScore, Score, Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "InterPodAffinity";
pub const REASON_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI: &str = "node(s) didn't match pod anti-affinity rules";

type Pair = (String, String);

pub struct InterPodAffinity;

impl Plugin for InterPodAffinity {
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

fn affinity(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

fn required_anti(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

fn preferred_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

fn preferred_anti(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

/// Whether `term`, written by a pod in `owner_ns`, selects `target`.
pub fn term_matches(term: &PodAffinityTerm, owner_ns: &str, target: &Pod) -> bool {
    let ns = target.metadata.namespace.as_deref().unwrap_or("default");
    let namespaces = term.namespaces.as_deref().unwrap_or(&[]);
    let all_namespaces = term.namespace_selector.as_ref().is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    let ns_ok = if all_namespaces {
        true
    } else if namespaces.is_empty() && term.namespace_selector.is_none() {
        ns == owner_ns
    } else {
        namespaces.iter().any(|n| n == ns)
    };
    // A nil labelSelector selects no pods.
    ns_ok
        && term
            .label_selector
            .as_ref()
            .is_some_and(|sel| label_selector_matches(sel, &target.metadata.labels.as_ref()).unwrap_or(false))
}

fn node_value<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a String> {
    node.labels().and_then(|l| l.get(key))
}

fn validate(pod: &Pod) -> Result<(), SelectorError> {
    let terms = required_affinity(pod)
        .iter()
        .chain(required_anti(pod))
        .chain(preferred_affinity(pod).iter().map(|w| &w.pod_affinity_term))
        .chain(preferred_anti(pod).iter().map(|w| &w.pod_affinity_term));
    for t in terms {
        for sel in t.label_selector.iter().chain(t.namespace_selector.iter()) {
            Selector::from_label_selector(sel)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct FilterState {
    existing_anti: HashMap<Pair, i64>,
    affinity_counts: HashMap<Pair, i64>,
    anti_counts: HashMap<Pair, i64>,
}

impl PreFilter for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        if let Err(e) = validate(&pod.pod) {
            return Status::unresolvable(format!("invalid pod affinity: {e}"));
        }
        let aff = required_affinity(&pod.pod);
        let anti = required_anti(&pod.pod);
        if aff.is_empty() && anti.is_empty() && !snapshot.any_pod_with_required_anti_affinity() {
            return Status::skip();
        }
        let mut s = FilterState::default();
        for node in &snapshot.nodes {
            let scan_all = !aff.is_empty() || !anti.is_empty();
            if !scan_all && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                let ens = existing.namespace();
                for t in required_anti(&existing.pod) {
                    if term_matches(t, ens, &pod.pod) {
                        if let Some(v) = node_value(node, &t.topology_key) {
                            *s.existing_anti.entry((t.topology_key.clone(), v.clone())).or_default() += 1;
                        }
                    }
                }
                if !aff.is_empty() && aff.iter().all(|t| term_matches(t, pod.namespace(), &existing.pod)) {
                    for t in aff {
                        if let Some(v) = node_value(node, &t.topology_key) {
                            *s.affinity_counts
                                .entry((t.topology_key.clone(), v.clone()))
                                .or_default() += 1;
                        }
                    }
                }
                for t in anti {
                    if term_matches(t, pod.namespace(), &existing.pod) {
                        if let Some(v) = node_value(node, &t.topology_key) {
                            *s.anti_counts.entry((t.topology_key.clone(), v.clone())).or_default() += 1;
                        }
                    }
                }
            }
        }
        if aff.is_empty() && anti.is_empty() && s.existing_anti.is_empty() {
            return Status::skip();
        }
        state.write(NAME, s);
        Status::success()
    }
}

fn count(map: &HashMap<Pair, i64>, key: &str, value: &str) -> i64 {
    // Avoids allocating a key per lookup on the hot path when empty.
    if map.is_empty() {
        return 0;
    }
    map.get(&(key.to_string(), value.to_string())).copied().unwrap_or(0)
}

impl Filter for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        // Upstream's order: the pod's affinity, its anti-affinity, then the
        // anti-affinity of pods already placed.
        let aff = required_affinity(&pod.pod);
        if !aff.is_empty() {
            let satisfied = aff.iter().all(|t| {
                node_value(node, &t.topology_key).is_some_and(|v| count(&s.affinity_counts, &t.topology_key, v) > 0)
            });
            if !satisfied {
                // The first pod of a group that selects itself may go anywhere
                // the topology key exists.
                let first_of_group = s.affinity_counts.is_empty()
                    && aff.iter().all(|t| {
                        term_matches(t, pod.namespace(), &pod.pod) && node_value(node, &t.topology_key).is_some()
                    });
                if !first_of_group {
                    return Status::unresolvable(REASON_AFFINITY);
                }
            }
        }
        for t in required_anti(&pod.pod) {
            if let Some(v) = node_value(node, &t.topology_key) {
                if count(&s.anti_counts, &t.topology_key, v) > 0 {
                    return Status::unschedulable(REASON_ANTI);
                }
            }
        }
        if let Some(labels) = node.labels() {
            if s.existing_anti.keys().any(|(k, v)| labels.get(k) == Some(v)) {
                return Status::unschedulable(REASON_EXISTING_ANTI);
            }
        }
        Status::success()
    }
}

struct ScoreState(HashMap<Pair, i64>);

impl PreScore for InterPodAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        let pref = preferred_affinity(&pod.pod);
        let pref_anti = preferred_anti(&pod.pod);
        if pref.is_empty() && pref_anti.is_empty() && !snapshot.any_pod_with_affinity() {
            return Status::skip();
        }
        let mut scores: HashMap<Pair, i64> = HashMap::new();
        let mut add = |node: &NodeInfo, key: &str, w: i64| {
            if let Some(v) = node_value(node, key) {
                *scores.entry((key.to_string(), v.clone())).or_default() += w;
            }
        };
        for node in &snapshot.nodes {
            if pref.is_empty() && pref_anti.is_empty() && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for w in pref {
                    if term_matches(&w.pod_affinity_term, pod.namespace(), &existing.pod) {
                        add(node, &w.pod_affinity_term.topology_key, w.weight as i64);
                    }
                }
                for w in pref_anti {
                    if term_matches(&w.pod_affinity_term, pod.namespace(), &existing.pod) {
                        add(node, &w.pod_affinity_term.topology_key, -(w.weight as i64));
                    }
                }
                if existing.has_affinity {
                    let ens = existing.namespace();
                    for w in preferred_affinity(&existing.pod) {
                        if term_matches(&w.pod_affinity_term, ens, &pod.pod) {
                            add(node, &w.pod_affinity_term.topology_key, w.weight as i64);
                        }
                    }
                    for w in preferred_anti(&existing.pod) {
                        if term_matches(&w.pod_affinity_term, ens, &pod.pod) {
                            add(node, &w.pod_affinity_term.topology_key, -(w.weight as i64));
                        }
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(NAME, ScoreState(scores));
        Status::success()
    }
}

impl Score for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(ScoreState(scores)) = state.read::<ScoreState>(NAME) else {
            return Ok(0);
        };
        let Some(labels) = node.labels() else { return Ok(0) };
        Ok(scores
            .iter()
            .filter(|((k, v), _)| labels.get(k) == Some(v))
            .map(|(_, s)| *s)
            .sum())
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for s in scores.iter_mut() {
            *s = if max > min {
                MAX_NODE_SCORE * (*s - min) / (max - min)
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::{Affinity, PodAntiAffinity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::sync::Arc;

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn with_anti(mut p: Pod, app: &str) -> Pod {
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term(app, "kubernetes.io/hostname")]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn with_aff(mut p: Pod, app: &str, key: &str) -> Pod {
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: Some(k8s_openapi::api::core::v1::PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term(app, key)]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn snapshot(nodes: Vec<NodeInfo>) -> Snapshot {
        Snapshot::new(nodes.into_iter().map(Arc::new).collect())
    }

    fn run(p: Pod, snap: &Snapshot) -> Vec<Status> {
        let p = pod_info(p);
        let mut st = CycleState::default();
        let pre = InterPodAffinity.pre_filter(&mut st, &p, snap);
        if pre.code == crate::framework::Code::Skip {
            return snap.nodes.iter().map(|_| Status::success()).collect();
        }
        assert!(pre.is_success(), "{pre:?}");
        snap.nodes.iter().map(|n| InterPodAffinity.filter(&st, &p, n)).collect()
    }

    #[test]
    fn anti_affinity_by_hostname() {
        let web = with_labels(on_node(pod("w1", "0", "0"), "a"), &[("app", "web")]);
        let snap = snapshot(vec![
            node_info(node("a", "1", "1Gi", "10"), vec![web]),
            node_info(node("b", "1", "1Gi", "10"), vec![]),
        ]);
        let st = run(
            with_labels(with_anti(pod("w2", "0", "0"), "web"), &[("app", "web")]),
            &snap,
        );
        assert_eq!(st[0], Status::unschedulable(REASON_ANTI));
        assert!(st[1].is_success());
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let guard = with_anti(on_node(pod("g", "0", "0"), "a"), "web");
        let snap = snapshot(vec![
            node_info(node("a", "1", "1Gi", "10"), vec![guard]),
            node_info(node("b", "1", "1Gi", "10"), vec![]),
        ]);
        let st = run(with_labels(pod("w", "0", "0"), &[("app", "web")]), &snap);
        assert_eq!(st[0], Status::unschedulable(REASON_EXISTING_ANTI));
        assert!(st[1].is_success());
    }

    #[test]
    fn affinity_by_zone_and_first_of_group() {
        let a = with_node_labels(node("a", "1", "1Gi", "10"), &[("zone", "z1")]);
        let b = with_node_labels(node("b", "1", "1Gi", "10"), &[("zone", "z2")]);
        let db = with_labels(on_node(pod("db", "0", "0"), "a"), &[("app", "db")]);
        let snap = snapshot(vec![node_info(a.clone(), vec![db]), node_info(b.clone(), vec![])]);
        let st = run(with_aff(pod("w", "0", "0"), "db", "zone"), &snap);
        assert!(st[0].is_success());
        assert_eq!(st[1], Status::unresolvable(REASON_AFFINITY));

        // No db pod anywhere: a pod that selects itself may start the group.
        let empty = snapshot(vec![node_info(a, vec![]), node_info(b, vec![])]);
        let st = run(
            with_labels(with_aff(pod("d", "0", "0"), "db", "zone"), &[("app", "db")]),
            &empty,
        );
        assert!(st.iter().all(|s| s.is_success()));
        let st = run(with_aff(pod("w", "0", "0"), "db", "zone"), &empty);
        assert!(st.iter().all(|s| !s.is_success()));
    }
}
