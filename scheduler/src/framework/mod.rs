//! The scheduling framework: extension-point traits, the per-cycle state,
//! the one Status type, and [`Framework`], a profile's plugins in order.

mod cycle_state;
mod interface;
mod node_info;
mod snapshot;
mod status;

use std::sync::Arc;

pub use cycle_state::CycleState;
pub use interface::*;
pub use node_info::{host_ports, normalize_image, pod_key, HostPort, NodeInfo, PodInfo};
pub use snapshot::Snapshot;
pub use status::{Code, Status};

/// One profile: a scheduler name and its plugins, per extension point.
pub struct Framework {
    pub scheduler_name: String,
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Score plugins with their weights.
    pub score_weights: Vec<(Arc<dyn Plugin>, i64)>,
    /// 0 means adaptive, as upstream.
    pub percentage_of_nodes_to_score: u32,
}

impl Framework {
    pub fn new(
        scheduler_name: &str,
        plugins: Vec<Arc<dyn Plugin>>,
        score_weights: Vec<(Arc<dyn Plugin>, i64)>,
    ) -> Self {
        Framework {
            scheduler_name: scheduler_name.to_string(),
            plugins,
            score_weights,
            percentage_of_nodes_to_score: 0,
        }
    }

    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        for p in &self.plugins {
            let Some(pf) = p.as_pre_filter() else { continue };
            let status = pf.pre_filter(state, pod, snapshot);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filter.push(p.name());
                }
                _ => return status.with_plugin(p.name()),
            }
        }
        Status::success()
    }

    /// Filters in order; the first rejection wins, as upstream.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        self.active_filters(state).run(state, pod, node)
    }

    /// The Filter plugins not skipped by PreFilter, resolved once per cycle
    /// so the per-node loop makes no lookups.
    pub fn active_filters(&self, state: &CycleState) -> ActiveFilters<'_> {
        let filters = self
            .plugins
            .iter()
            .filter(|p| !state.skip_filter.contains(&p.name()))
            .filter_map(|p| p.as_filter().map(|f| (p.name(), f)))
            .collect();
        ActiveFilters { filters }
    }

    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        statuses: &NodeToStatus,
    ) -> Option<PostFilterResult> {
        self.plugins
            .iter()
            .filter_map(|p| p.as_post_filter())
            .map(|pf| pf.post_filter(state, pod, snapshot, statuses, self))
            .next()
    }

    pub fn has_score_plugins(&self) -> bool {
        !self.score_weights.is_empty()
    }

    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        for (p, _) in &self.score_weights {
            let Some(ps) = p.as_pre_score() else { continue };
            let status = ps.pre_score(state, pod, nodes, snapshot);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_score.push(p.name());
                }
                _ => return status.with_plugin(p.name()),
            }
        }
        Status::success()
    }

    /// Weighted sum of the normalized scores, one per node, in node order.
    pub fn run_score(&self, state: &CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let mut total = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (p, weight) in &self.score_weights {
            let Some(s) = p.as_score() else { continue };
            if state.skip_score.contains(&p.name()) {
                continue;
            }
            for (i, n) in nodes.iter().enumerate() {
                scores[i] = s.score(state, pod, n).map_err(|st| st.with_plugin(p.name()))?;
            }
            s.normalize(state, pod, &mut scores);
            for (t, s) in total.iter_mut().zip(&scores) {
                *t += s.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        Ok(total)
    }

    pub fn run_reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for (i, p) in self.plugins.iter().enumerate() {
            let Some(r) = p.as_reserve() else { continue };
            let status = r.reserve(state, pod, node);
            if !status.is_success() {
                for q in self.plugins[..=i].iter().rev() {
                    if let Some(r) = q.as_reserve() {
                        r.unreserve(state, pod, node);
                    }
                }
                return status.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// PreBind plugins in order; the first failure stops the bind.
    pub async fn run_pre_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.plugins {
            let Some(pb) = p.as_pre_bind() else { continue };
            let status = pb.pre_bind(state, pod, node).await;
            if !status.is_success() {
                return status.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        for p in self.plugins.iter().rev() {
            if let Some(r) = p.as_reserve() {
                r.unreserve(state, pod, node);
            }
        }
    }
}

/// The filters of one cycle, in order.
pub struct ActiveFilters<'a> {
    filters: Vec<(&'static str, &'a dyn Filter)>,
}

impl ActiveFilters<'_> {
    pub fn run(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for (name, f) in &self.filters {
            let status = f.filter(state, pod, node);
            if !status.is_success() {
                return status.with_plugin(name);
            }
        }
        Status::success()
    }
}
