//! NodeName: a pod that names its node fits only there.

use crate::framework::{CycleState, Filter, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(n) if !n.is_empty() && n != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn only_the_named_node_fits() {
        let p = pod_info(on_node(pod("p", "0", "0"), "n2"));
        let st = CycleState::default();
        assert!(!NodeName
            .filter(&st, &p, &node_info(node("n1", "1", "1Gi", "10"), vec![]))
            .is_success());
        assert!(NodeName
            .filter(&st, &p, &node_info(node("n2", "1", "1Gi", "10"), vec![]))
            .is_success());
    }
}
