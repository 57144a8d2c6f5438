//! DefaultPreemption (PostFilter): when a pod fits nowhere, find the node
//! where deleting the fewest, lowest-priority pods makes it fit. The caller
//! deletes the victims gracefully and sets status.nominatedNodeName.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::{
    Code, CycleState, Framework, NodeInfo, NodeToStatus, Plugin, PodInfo, PostFilter, PostFilterResult, Snapshot,
};

pub const NAME: &str = "DefaultPreemption";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct DefaultPreemption;

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilter> {
        Some(self)
    }
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
}

impl Candidate {
    /// Upstream's pickOneNodeForPreemption order, first criteria: lowest
    /// highest-victim priority, then lowest priority sum, then fewest victims.
    fn rank(&self) -> (i32, i64, usize) {
        let highest = self.victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        let sum = self.victims.iter().map(|v| v.priority as i64).sum();
        (highest, sum, self.victims.len())
    }
}

fn fits(fw: &Framework, pod: &PodInfo, snapshot: &Snapshot, node: &NodeInfo) -> bool {
    // Re-run PreFilter on a snapshot with the node changed, so plugins that
    // count pods cluster-wide (affinity, spread) see the removals.
    let mut snap = snapshot.clone();
    snap.replace(Arc::new(node.clone()));
    let mut state = CycleState::default();
    fw.run_pre_filter(&mut state, pod, &snap).is_success() && fw.run_filter(&state, pod, node).is_success()
}

/// The smallest set of lower-priority pods whose removal lets the pod fit,
/// or None: remove them all, then add back the most important first while
/// it still fits.
fn select_victims(fw: &Framework, pod: &PodInfo, snapshot: &Snapshot, node: &NodeInfo) -> Option<Vec<Arc<PodInfo>>> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let mut trial = node.clone();
    for v in &potential {
        trial.remove_pod(&v.key);
    }
    if !fits(fw, pod, snapshot, &trial) {
        return None;
    }
    potential.sort_by(|a, b| b.priority.cmp(&a.priority));
    let mut victims = Vec::new();
    for v in potential {
        trial.add_pod(v.clone());
        if !fits(fw, pod, snapshot, &trial) {
            trial.remove_pod(&v.key);
            victims.push(v);
        }
    }
    Some(victims)
}

/// "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
pub fn histogram_message(total: usize, reasons: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

impl PostFilter for DefaultPreemption {
    fn post_filter(
        &self,
        _: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        statuses: &NodeToStatus,
        fw: &Framework,
    ) -> PostFilterResult {
        let none = |message: String| PostFilterResult {
            nominated_node: None,
            victims: Vec::new(),
            message,
        };
        let spec = pod.pod.spec.as_ref();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return none("not eligible due to preemptionPolicy=Never.".into());
        }
        // Victims already being deleted on the nominated node: wait for them.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = nominated.and_then(|n| snapshot.get(n)) {
            let waiting = node
                .pods
                .iter()
                .any(|p| p.pod.metadata.deletion_timestamp.is_some() && p.priority < pod.priority);
            if waiting {
                return none("not eligible due to a terminating pod on the nominated node.".into());
            }
        }
        let mut reasons = Vec::new();
        let mut candidates = Vec::new();
        for node in &snapshot.nodes {
            let helpful = statuses.get(&node.name).is_some_and(|s| s.code == Code::Unschedulable)
                && node.pods.iter().any(|p| p.priority < pod.priority);
            if !helpful {
                reasons.push(NOT_HELPFUL.to_string());
                continue;
            }
            match select_victims(fw, pod, snapshot, node) {
                Some(victims) => candidates.push(Candidate {
                    node: node.name.clone(),
                    victims,
                }),
                None => reasons.push(NO_VICTIMS.to_string()),
            }
        }
        let Some(best) = candidates.into_iter().min_by_key(|c| c.rank()) else {
            return none(histogram_message(snapshot.len(), &reasons));
        };
        PostFilterResult {
            message: String::new(),
            nominated_node: Some(best.node),
            victims: best.victims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Filter, Status};
    use crate::plugins::node_resources_fit::{NodeResourcesFit, NodeResourcesFitArgs};
    use crate::testing::*;

    fn fw() -> Framework {
        let fit: Arc<dyn Plugin> = Arc::new(NodeResourcesFit::new(NodeResourcesFitArgs::default()).unwrap());
        Framework::new("default-scheduler", vec![fit, Arc::new(DefaultPreemption)], vec![])
    }

    fn statuses(fw: &Framework, pod: &PodInfo, snap: &Snapshot) -> NodeToStatus {
        let st = CycleState::default();
        snap.nodes
            .iter()
            .map(|n| (n.name.clone(), fw.run_filter(&st, pod, n)))
            .collect()
    }

    #[test]
    fn evicts_the_lowest_priority_pods_needed() {
        let low = with_priority(on_node(pod("low", "500m", "0"), "a"), 1);
        let mid = with_priority(on_node(pod("mid", "500m", "0"), "a"), 5);
        let snap = Snapshot::new(vec![Arc::new(node_info(node("a", "1", "1Gi", "10"), vec![low, mid]))]);
        let p = pod_info(with_priority(pod("hi", "500m", "0"), 10));
        let fw = fw();
        let r = DefaultPreemption.post_filter(&CycleState::default(), &p, &snap, &statuses(&fw, &p, &snap), &fw);
        assert_eq!(r.nominated_node.as_deref(), Some("a"));
        let names: Vec<&str> = r.victims.iter().map(|v| v.name()).collect();
        assert_eq!(names, vec!["low"]);
    }

    #[test]
    fn equal_priority_is_not_helpful() {
        let other = with_priority(on_node(pod("o", "1", "0"), "a"), 10);
        let snap = Snapshot::new(vec![Arc::new(node_info(node("a", "1", "1Gi", "10"), vec![other]))]);
        let p = pod_info(with_priority(pod("hi", "500m", "0"), 10));
        let fw = fw();
        let r = DefaultPreemption.post_filter(&CycleState::default(), &p, &snap, &statuses(&fw, &p, &snap), &fw);
        assert_eq!(r.nominated_node, None);
        assert_eq!(
            r.message,
            "0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn unresolvable_nodes_are_not_candidates() {
        let low = with_priority(on_node(pod("low", "1", "0"), "a"), 0);
        let snap = Snapshot::new(vec![Arc::new(node_info(node("a", "1", "1Gi", "10"), vec![low]))]);
        let p = pod_info(with_priority(pod("hi", "500m", "0"), 10));
        let statuses: NodeToStatus = [(
            "a".to_string(),
            Status::unresolvable("node(s) had untolerated taint {x: }"),
        )]
        .into();
        let r = DefaultPreemption.post_filter(&CycleState::default(), &p, &snap, &statuses, &fw());
        assert_eq!(r.nominated_node, None);
        let _ = NodeResourcesFit::new(Default::default())
            .unwrap()
            .filter(&CycleState::default(), &p, &snap.nodes[0]);
    }

    #[test]
    fn preemption_policy_never() {
        let mut p = with_priority(pod("hi", "500m", "0"), 10);
        p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let r = DefaultPreemption.post_filter(
            &CycleState::default(),
            &pod_info(p),
            &Snapshot::default(),
            &NodeToStatus::new(),
            &fw(),
        );
        assert!(r.nominated_node.is_none());
    }
}
