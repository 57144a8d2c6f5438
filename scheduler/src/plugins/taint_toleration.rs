//! TaintToleration: NoSchedule/NoExecute taints reject pods that do not
//! tolerate them (this is also how not-ready and unreachable nodes are kept
//! free of new pods); PreferNoSchedule taints lower the score.

use crate::framework::{default_normalize, CycleState, Filter, NodeInfo, Plugin, PodInfo, Score, Status};

use apimachinery::taints::tolerations_tolerate_taint as tolerated;

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

fn tolerations(pod: &PodInfo) -> &[k8s_openapi::api::core::v1::Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

fn taints(node: &NodeInfo) -> &[k8s_openapi::api::core::v1::Taint] {
    node.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

impl Filter for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.has_taints {
            return Status::success();
        }
        let tols = tolerations(pod);
        let untolerated = taints(node)
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|t| !tolerated(tols, t));
        match untolerated {
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
            None => Status::success(),
        }
    }
}

impl Score for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        // Most nodes have no PreferNoSchedule taint: no walk, no copy.
        if !node.has_prefer_no_schedule_taints {
            return Ok(0);
        }
        let tols: Vec<_> = tolerations(pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        Ok(taints(node)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tols, t))
            .count() as i64)
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::Toleration;

    #[test]
    fn not_ready_taint_message_matches_upstream() {
        let n = with_taint(
            node("n1", "1", "1Gi", "10"),
            "node.kubernetes.io/not-ready",
            "",
            "NoSchedule",
        );
        let st = TaintToleration.filter(
            &CycleState::default(),
            &pod_info(pod("p", "0", "0")),
            &node_info(n, vec![]),
        );
        assert_eq!(
            st,
            Status::unresolvable("node(s) had untolerated taint {node.kubernetes.io/not-ready: }")
        );
    }

    #[test]
    fn no_execute_toleration_does_not_cover_no_schedule() {
        let n = with_taint(
            node("n1", "1", "1Gi", "10"),
            "node.kubernetes.io/unreachable",
            "",
            "NoSchedule",
        );
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("node.kubernetes.io/unreachable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Default::default()
        }]);
        assert!(!TaintToleration
            .filter(&CycleState::default(), &pod_info(p), &node_info(n, vec![]))
            .is_success());
    }

    #[test]
    fn tolerated_taint_passes_and_prefer_no_schedule_scores_lower() {
        let n = with_taint(node("n1", "1", "1Gi", "10"), "dedicated", "gpu", "NoSchedule");
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            value: Some("gpu".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        let p = pod_info(p);
        let st = CycleState::default();
        assert!(TaintToleration.filter(&st, &p, &node_info(n, vec![])).is_success());

        let soft = node_info(
            with_taint(node("a", "1", "1Gi", "10"), "spot", "", "PreferNoSchedule"),
            vec![],
        );
        let clean = node_info(node("b", "1", "1Gi", "10"), vec![]);
        let mut scores = vec![
            TaintToleration.score(&st, &p, &soft).unwrap(),
            TaintToleration.score(&st, &p, &clean).unwrap(),
        ];
        TaintToleration.normalize(&st, &p, &mut scores);
        assert_eq!(scores, vec![0, 100]);
    }
}
