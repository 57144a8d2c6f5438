//! NodeUnschedulable: no new pods on a cordoned node unless the pod
//! tolerates the unschedulable taint.

use k8s_openapi::api::core::v1::Taint;

use apimachinery::taints::tolerations_tolerate_taint as tolerated;
use crate::framework::{CycleState, Filter, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const REASON: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        if tolerated(tolerations, &taint) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::Toleration;

    #[test]
    fn cordoned_node_rejects_unless_tolerated() {
        let mut n = node("n1", "1", "1Gi", "10");
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        let info = node_info(n, vec![]);
        let st = NodeUnschedulable.filter(&CycleState::default(), &pod_info(pod("p", "0", "0")), &info);
        assert_eq!(st, Status::unresolvable(REASON));
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(TAINT_UNSCHEDULABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert!(NodeUnschedulable
            .filter(&CycleState::default(), &pod_info(p), &info)
            .is_success());
    }
}
