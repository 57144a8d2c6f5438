//! One scheduling attempt for one pod against a snapshot, as upstream's
//! schedulePod: PreFilter, Filter over (a rotating window of) the nodes,
//! PreScore, Score, then the best node with ties broken at random. Pure:
//! no I/O, so it is what the unit tests and the Criterion bench drive.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::framework::{Code, CycleState, Framework, NodeInfo, NodeToStatus, PodInfo, Snapshot, Status};

pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// Why a pod fits nowhere, with everything the FailedScheduling message needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub statuses: NodeToStatus,
    /// Set when a PreFilter rejected the pod before any node was tried.
    pub pre_filter_msg: Option<String>,
    /// From PostFilter (preemption), e.g. "0/3 nodes are available: ...".
    pub post_filter_msg: String,
}

impl FitError {
    /// Upstream's FitError.Error(): "0/3 nodes are available: 1 Insufficient
    /// cpu, 2 node(s) had untolerated taint {k: v}. preemption: ...".
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        match &self.pre_filter_msg {
            Some(p) => msg.push_str(&format!(" {p}.")),
            None => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for s in self.statuses.values() {
                    for r in &s.reasons {
                        *counts.entry(r.as_str()).or_default() += 1;
                    }
                }
                let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
                parts.sort();
                msg.push_str(&format!(" {}.", parts.join(", ")));
            }
        }
        if !self.post_filter_msg.is_empty() {
            msg.push_str(" preemption: ");
            msg.push_str(&self.post_filter_msg);
            if !self.post_filter_msg.ends_with('.') {
                msg.push('.');
            }
        }
        msg
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleError {
    NoNodes,
    Fit(FitError),
    /// A plugin failed internally; retried with backoff.
    Internal(Status),
}

impl ScheduleError {
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoNodes => NO_NODES_MESSAGE.to_string(),
            ScheduleError::Fit(f) => f.message(),
            ScheduleError::Internal(s) => format!("running {} plugin: {}", s.plugin, s.message()),
        }
    }
}

/// Scheduling state that survives across cycles: where the next filter
/// window starts, and the tie-breaking randomness.
pub struct Algorithm {
    next_start_node_index: usize,
    rng: StdRng,
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm {
            next_start_node_index: 0,
            rng: StdRng::from_os_rng(),
        }
    }
}

/// How many feasible nodes to find before stopping (percentageOfNodesToScore).
pub fn num_feasible_nodes_to_find(percentage: u32, num_all: usize) -> usize {
    if num_all < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_all;
    }
    let adaptive = if percentage == 0 {
        (50usize.saturating_sub(num_all / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE)
    } else {
        percentage as usize
    };
    (num_all * adaptive / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

impl Algorithm {
    pub fn with_seed(seed: u64) -> Self {
        Algorithm {
            next_start_node_index: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn schedule(
        &mut self,
        fw: &Framework,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        let n = snapshot.len();
        if n == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let pre = fw.run_pre_filter(state, pod, snapshot);
        if !pre.is_success() {
            if pre.code == Code::Error {
                return Err(ScheduleError::Internal(pre));
            }
            let statuses = snapshot
                .nodes
                .iter()
                .map(|node| (node.name.clone(), pre.clone()))
                .collect();
            return Err(ScheduleError::Fit(FitError {
                num_all_nodes: n,
                statuses,
                pre_filter_msg: Some(pre.message()),
                post_filter_msg: String::new(),
            }));
        }

        // A pod that preempted goes back to its nominated node if it fits now.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|s| !s.is_empty());
        if let Some(node) = nominated.and_then(|name| snapshot.get(name)) {
            if fw.run_filter(state, pod, node).is_success() {
                return Ok(ScheduleResult {
                    node: node.name.clone(),
                    evaluated_nodes: 1,
                    feasible_nodes: 1,
                });
            }
        }

        let filters = fw.active_filters(state);
        let want = num_feasible_nodes_to_find(fw.percentage_of_nodes_to_score, n);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(n));
        let mut statuses = NodeToStatus::new();
        let mut processed = 0;
        for i in 0..n {
            // NodeInfos sit apart on the heap; fetching a few ahead hides the misses that
            // otherwise dominate a cycle over thousands of nodes.
            prefetch(&snapshot.nodes[(self.next_start_node_index + i + PREFETCH_AHEAD) % n]);
            let node = &snapshot.nodes[(self.next_start_node_index + i) % n];
            processed += 1;
            let st = filters.run(state, pod, node);
            match st.code {
                Code::Success => {
                    feasible.push(node);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Code::Error => return Err(ScheduleError::Internal(st)),
                _ => {
                    statuses.insert(node.name.clone(), st);
                }
            }
        }
        self.next_start_node_index = (self.next_start_node_index + processed) % n;

        if feasible.is_empty() {
            return Err(ScheduleError::Fit(FitError {
                num_all_nodes: n,
                statuses,
                pre_filter_msg: None,
                post_filter_msg: String::new(),
            }));
        }
        if feasible.len() == 1 || !fw.has_score_plugins() {
            let pick = if feasible.len() == 1 {
                0
            } else {
                self.rng.random_range(0..feasible.len())
            };
            return Ok(ScheduleResult {
                node: feasible[pick].name.clone(),
                evaluated_nodes: processed,
                feasible_nodes: feasible.len(),
            });
        }
        let pre = fw.run_pre_score(state, pod, &feasible, snapshot);
        if !pre.is_success() {
            return Err(ScheduleError::Internal(pre));
        }
        let scores = fw.run_score(state, pod, &feasible).map_err(ScheduleError::Internal)?;
        let pick = self.select_host(&scores);
        Ok(ScheduleResult {
            node: feasible[pick].name.clone(),
            evaluated_nodes: processed,
            feasible_nodes: feasible.len(),
        })
    }

    /// Index of a best score; among equals, each is equally likely
    /// (reservoir sampling, as upstream's selectHost).
    pub fn select_host(&mut self, scores: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 0u32;
        for (i, s) in scores.iter().enumerate() {
            if i == 0 || *s > scores[best] {
                best = i;
                ties = 1;
            } else if *s == scores[best] {
                ties += 1;
                if self.rng.random_range(0..ties) == 0 {
                    best = i;
                }
            }
        }
        best
    }
}

/// How many nodes ahead of the filter loop to fetch into cache.
const PREFETCH_AHEAD: usize = 6;

/// Asks the CPU to bring a NodeInfo's first cache lines in (a hint; no effect on results).
#[inline(always)]
fn prefetch(node: &NodeInfo) {
    #[cfg(target_arch = "x86_64")]
    {
        let base = node as *const NodeInfo as *const i8;
        for line in 0..std::mem::size_of::<NodeInfo>().div_ceil(64) {
            // SAFETY: prefetch never faults; the addresses lie within the NodeInfo.
            unsafe { std::arch::x86_64::_mm_prefetch(base.add(line * 64), std::arch::x86_64::_MM_HINT_T0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::load_profiles;
    use crate::testing::*;
    use std::sync::Arc;

    fn snapshot(nodes: Vec<NodeInfo>) -> Snapshot {
        Snapshot::new(nodes.into_iter().map(Arc::new).collect())
    }

    fn default_fw() -> Arc<Framework> {
        load_profiles(None).unwrap()["default-scheduler"].clone()
    }

    #[test]
    fn failed_scheduling_message_matches_upstream() {
        let fw = default_fw();
        let snap = snapshot(vec![
            node_info(
                node("n1", "1", "1Gi", "110"),
                vec![on_node(pod("big", "900m", "0"), "n1")],
            ),
            node_info(
                with_taint(
                    node("n2", "4", "4Gi", "110"),
                    "node.kubernetes.io/not-ready",
                    "",
                    "NoSchedule",
                ),
                vec![],
            ),
            node_info(
                with_taint(
                    node("n3", "4", "4Gi", "110"),
                    "node.kubernetes.io/not-ready",
                    "",
                    "NoSchedule",
                ),
                vec![],
            ),
        ]);
        let p = pod_info(pod("p", "500m", "0"));
        let err = Algorithm::with_seed(1)
            .schedule(&fw, &mut CycleState::default(), &p, &snap)
            .unwrap_err();
        let ScheduleError::Fit(mut fit) = err else {
            panic!("{err:?}")
        };
        let post = fw
            .run_post_filter(&CycleState::default(), &p, &snap, &fit.statuses)
            .unwrap();
        assert!(post.nominated_node.is_none());
        fit.post_filter_msg = post.message;
        assert_eq!(
            fit.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn picks_the_least_allocated_node() {
        let fw = default_fw();
        let snap = snapshot(vec![
            node_info(
                node("busy", "4", "4Gi", "110"),
                vec![on_node(pod("x", "3", "3Gi"), "busy")],
            ),
            node_info(node("idle", "4", "4Gi", "110"), vec![]),
        ]);
        let r = Algorithm::with_seed(7)
            .schedule(&fw, &mut CycleState::default(), &pod_info(pod("p", "1", "1Gi")), &snap)
            .unwrap();
        assert_eq!(r.node, "idle");
    }

    #[test]
    fn ties_are_broken_at_random() {
        let mut alg = Algorithm::with_seed(42);
        let mut seen = [0usize; 3];
        for _ in 0..300 {
            seen[alg.select_host(&[5, 9, 9])] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 100 && seen[2] > 100, "{seen:?}");
    }

    #[test]
    fn no_nodes() {
        let err = Algorithm::with_seed(1).schedule(
            &default_fw(),
            &mut CycleState::default(),
            &pod_info(pod("p", "1", "0")),
            &Snapshot::default(),
        );
        assert_eq!(err.unwrap_err().message(), NO_NODES_MESSAGE);
    }

    #[test]
    fn adaptive_percentage_of_nodes() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 500), 230);
        assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
    }

    #[test]
    fn unknown_operator_yields_a_reason_not_a_panic() {
        use k8s_openapi::api::core::v1::{
            Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        };
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "k".into(),
                            operator: "Sometimes".into(),
                            values: None,
                        }]),
                        match_fields: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let snap = snapshot(vec![node_info(node("n1", "1", "1Gi", "110"), vec![])]);
        let err = Algorithm::with_seed(1)
            .schedule(&default_fw(), &mut CycleState::default(), &pod_info(p), &snap)
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("0/1 nodes are available: invalid node affinity:"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn binpack_fills_the_busiest_node() {
        let profiles = load_profiles(None).unwrap();
        let snap = snapshot(vec![
            node_info(
                node("busy", "4", "4Gi", "110"),
                vec![on_node(pod("x", "2", "2Gi"), "busy")],
            ),
            node_info(node("idle", "4", "4Gi", "110"), vec![]),
        ]);
        let r = Algorithm::with_seed(3)
            .schedule(
                &profiles["binpack"],
                &mut CycleState::default(),
                &pod_info(pod("p", "1", "1Gi")),
                &snap,
            )
            .unwrap();
        assert_eq!(r.node, "busy");
    }
}
