//! The extension points: each a small trait with one job. A plugin
//! implements [`Plugin`] and returns itself from the `as_*` accessors of
//! the points it serves.

use std::collections::HashMap;

use super::{CycleState, NodeInfo, PodInfo, Snapshot, Status};

/// Highest score a Score plugin may give after normalization.
pub const MAX_NODE_SCORE: i64 = 100;

pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        None
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilter> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        None
    }
    fn as_score(&self) -> Option<&dyn Score> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn Reserve> {
        None
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBind> {
        None
    }
}

/// Runs once per pod before any Filter; may reject the pod outright or
/// precompute what the Filter reads from the CycleState.
pub trait PreFilter {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status;
}

/// Decides whether the pod fits one node.
pub trait Filter {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Node name to the status that rejected the pod there.
pub type NodeToStatus = HashMap<String, Status>;

/// What a PostFilter (preemption) achieved.
#[derive(Debug, Clone)]
pub struct PostFilterResult {
    /// The node the pod may use once the victims are gone.
    pub nominated_node: Option<String>,
    /// Pods to delete (namespace/name keys with their uid).
    pub victims: Vec<std::sync::Arc<PodInfo>>,
    /// Appended after "preemption: " in the FailedScheduling message.
    pub message: String,
}

/// Runs when no node fits, to make one fit (preemption).
pub trait PostFilter {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        statuses: &NodeToStatus,
        framework: &super::Framework,
    ) -> PostFilterResult;
}

/// Runs once per pod over the feasible nodes before scoring.
pub trait PreScore {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo], snapshot: &Snapshot) -> Status;
}

/// Ranks a feasible node; `normalize` rescales all scores to 0..=100.
pub trait Score {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Holds (or releases) per-node resources the plugin tracks itself.
pub trait Reserve {
    fn reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str);
}

/// Runs in the bind task, after Reserve and before the Binding is written:
/// the API writes a pod needs first (VolumeBinding's selected node).
pub trait PreBind {
    fn pre_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> futures::future::BoxFuture<'static, Status>;
}

/// Scales scores so the best is MAX_NODE_SCORE (and reverses if asked),
/// as upstream's helper.DefaultNormalizeScore.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}
