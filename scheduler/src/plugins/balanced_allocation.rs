//! NodeResourcesBalancedAllocation: favours nodes whose cpu and memory
//! would be used in equal proportions with the pod placed.

use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Score, Status, MAX_NODE_SCORE};
use crate::resources::ResourceKey;

use super::node_resources_fit::requested_with_pod;

pub const NAME: &str = "NodeResourcesBalancedAllocation";

pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl Score for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let fraction = |r: &ResourceKey| {
            let cap = node.allocatable.at(r);
            (cap > 0).then(|| (requested_with_pod(pod, node, r) as f64 / cap as f64).min(1.0))
        };
        // With two resources the standard deviation is half the difference.
        let std = match (fraction(&ResourceKey::Cpu), fraction(&ResourceKey::Memory)) {
            (Some(c), Some(m)) => (c - m).abs() / 2.0,
            (Some(_), None) | (None, Some(_)) => 0.0,
            (None, None) => return Ok(0),
        };
        Ok(((1.0 - std) * MAX_NODE_SCORE as f64) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn balanced_node_scores_higher() {
        let st = CycleState::default();
        let p = pod_info(pod("p", "1", "1Gi"));
        let balanced = node_info(node("a", "4", "4Gi", "10"), vec![]);
        let lopsided = node_info(node("b", "4", "4Gi", "10"), vec![on_node(pod("x", "3", "0"), "b")]);
        let (a, b) = (
            BalancedAllocation.score(&st, &p, &balanced).unwrap(),
            BalancedAllocation.score(&st, &p, &lopsided).unwrap(),
        );
        assert_eq!(a, 100);
        assert!(b < a, "{b} < {a}");
    }
}
