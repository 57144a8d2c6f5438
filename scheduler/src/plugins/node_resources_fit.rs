//! NodeResourcesFit: requests must fit in allocatable minus what the node's
//! pods (bound and assumed) request; scoring by LeastAllocated (spread),
//! MostAllocated (binpack) or RequestedToCapacityRatio.

use serde::Deserialize;

use crate::framework::{
    CycleState, Filter, NodeInfo, Plugin, PodInfo, PreFilter, Score, Snapshot, Status, MAX_NODE_SCORE,
};
use crate::resources::{is_scalar, ResourceKey, Resources, CPU, EPHEMERAL_STORAGE, MEMORY};

pub const NAME: &str = "NodeResourcesFit";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum StrategyType {
    LeastAllocated,
    MostAllocated,
    RequestedToCapacityRatio,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UtilizationShapePoint {
    pub utilization: i64,
    pub score: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedToCapacityRatioParam {
    pub shape: Vec<UtilizationShapePoint>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringStrategy {
    #[serde(rename = "type")]
    pub type_: StrategyType,
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: CPU.into(),
            weight: 1,
        },
        ResourceSpec {
            name: MEMORY.into(),
            weight: 1,
        },
    ]
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            type_: StrategyType::LeastAllocated,
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// pluginConfig args of NodeResourcesFit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResourcesFitArgs {
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
}

pub struct NodeResourcesFit {
    strategy: ScoringStrategy,
    /// strategy.resources' names, resolved once.
    keys: Vec<ResourceKey>,
}

impl NodeResourcesFit {
    pub fn new(args: NodeResourcesFitArgs) -> Result<Self, String> {
        let s = &args.scoring_strategy;
        if s.resources.iter().any(|r| r.weight <= 0 || r.weight > 100) {
            return Err("resource weights must be in the range 1..100".into());
        }
        if s.type_ == StrategyType::RequestedToCapacityRatio {
            let shape = s.requested_to_capacity_ratio.as_ref().map(|r| &r.shape);
            let ok = shape.is_some_and(|sh| {
                !sh.is_empty()
                    && sh.windows(2).all(|w| w[0].utilization < w[1].utilization)
                    && sh
                        .iter()
                        .all(|p| (0..=100).contains(&p.utilization) && (0..=10).contains(&p.score))
            });
            if !ok {
                return Err(
                    "requestedToCapacityRatio.shape needs increasing utilization 0..100 and scores 0..10".into(),
                );
            }
        }
        let keys = args.scoring_strategy.resources.iter().map(|r| ResourceKey::of(&r.name)).collect();
        Ok(NodeResourcesFit {
            strategy: args.scoring_strategy,
            keys,
        })
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl PreFilter for NodeResourcesFit {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Status {
        match &pod.request_error {
            // Bad input: the pod fits nowhere, and says why.
            Some(e) => Status::unresolvable(format!("pod has invalid resource requests: {e}")),
            None => Status::success(),
        }
    }
}

/// The reasons a pod does not fit a node's free resources, as upstream's
/// fitsRequest ("Too many pods", "Insufficient cpu", ...).
pub fn insufficient_resources(req: &Resources, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if used.allowed_pods.saturating_add(1) > alloc.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    // Fields, not names: this runs for every node of every cycle.
    let checks = [
        (CPU, req.milli_cpu, alloc.milli_cpu, used.milli_cpu),
        (MEMORY, req.memory, alloc.memory, used.memory),
        (EPHEMERAL_STORAGE, req.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage),
    ];
    for (name, want, alloc, used) in checks {
        if want > 0 && want > alloc.saturating_sub(used) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, want) in &req.scalar {
        let amount = |r: &Resources| r.scalar.get(name).copied().unwrap_or(0);
        if *want > 0 && is_scalar(name) && *want > amount(alloc).saturating_sub(amount(used)) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl Filter for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if let Some(e) = &node.allocatable_error {
            return Status::unresolvable(format!("node(s) had invalid allocatable: {e}"));
        }
        let reasons = insufficient_resources(&pod.requests, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
                plugin: "",
            }
        }
    }
}

fn shape_score(shape: &[UtilizationShapePoint], utilization: i64) -> i64 {
    // Shape scores are 0..10; scale to 0..100 and interpolate linearly.
    let pts: Vec<(i64, i64)> = shape
        .iter()
        .map(|p| (p.utilization, p.score * MAX_NODE_SCORE / 10))
        .collect();
    let Some(first) = pts.first() else { return 0 };
    if utilization <= first.0 {
        return first.1;
    }
    for w in pts.windows(2) {
        let ((u0, s0), (u1, s1)) = (w[0], w[1]);
        if utilization <= u1 {
            return s0 + (s1 - s0) * (utilization - u0) / (u1 - u0);
        }
    }
    pts.last().map(|p| p.1).unwrap_or(0)
}

impl NodeResourcesFit {
    fn resource_score(&self, requested: i64, capacity: i64) -> i64 {
        if capacity <= 0 {
            return 0;
        }
        // Percentages in i128: capacity * 100 can exceed i64 for huge quantities.
        let pct = |n: i64| (n.max(0) as i128 * MAX_NODE_SCORE as i128 / capacity as i128) as i64;
        match self.strategy.type_ {
            StrategyType::LeastAllocated => {
                if requested > capacity {
                    0
                } else {
                    pct(capacity - requested)
                }
            }
            StrategyType::MostAllocated => pct(requested.min(capacity)),
            StrategyType::RequestedToCapacityRatio => {
                let shape = self
                    .strategy
                    .requested_to_capacity_ratio
                    .as_ref()
                    .map(|r| r.shape.as_slice())
                    .unwrap_or(&[]);
                shape_score(shape, pct(requested.min(capacity)))
            }
        }
    }
}

/// What the node would have requested with the pod on it; cpu and memory
/// use the non-zero defaults so that empty pods still spread.
pub fn requested_with_pod(pod: &PodInfo, node: &NodeInfo, resource: &ResourceKey) -> i64 {
    match resource {
        ResourceKey::Cpu | ResourceKey::Memory => {
            node.non_zero_requested.at(resource).saturating_add(pod.non_zero.at(resource))
        }
        other => node.requested.at(other).saturating_add(pod.requests.at(other)),
    }
}

impl Score for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let (mut total, mut weights) = (0i64, 0i64);
        for (r, key) in self.strategy.resources.iter().zip(&self.keys) {
            let capacity = node.allocatable.at(key);
            if capacity <= 0 && !matches!(key, ResourceKey::Cpu | ResourceKey::Memory) {
                continue;
            }
            total += self.resource_score(requested_with_pod(pod, node, key), capacity) * r.weight;
            weights += r.weight;
        }
        Ok(if weights == 0 { 0 } else { total / weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn fit(t: StrategyType) -> NodeResourcesFit {
        NodeResourcesFit::new(NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                type_: t,
                ..Default::default()
            },
        })
        .unwrap()
    }

    #[test]
    fn reports_every_insufficient_resource() {
        let full = on_node(pod("a", "900m", "900Mi"), "n1");
        let info = node_info(node("n1", "1", "1Gi", "1"), vec![full]);
        let st = fit(StrategyType::LeastAllocated).filter(
            &CycleState::default(),
            &pod_info(pod("p", "200m", "200Mi")),
            &info,
        );
        assert_eq!(st.code, crate::framework::Code::Unschedulable);
        assert_eq!(
            st.reasons,
            vec!["Too many pods", "Insufficient cpu", "Insufficient memory"]
        );
    }

    #[test]
    fn fits_exactly() {
        let info = node_info(
            node("n1", "1", "1Gi", "10"),
            vec![on_node(pod("a", "500m", "512Mi"), "n1")],
        );
        let st = fit(StrategyType::LeastAllocated).filter(
            &CycleState::default(),
            &pod_info(pod("p", "500m", "512Mi")),
            &info,
        );
        assert!(st.is_success());
    }

    #[test]
    fn extended_resource_no_node_has() {
        let mut p = pod("p", "0", "0");
        p.spec.as_mut().unwrap().containers[0]
            .resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert(
                "example.com/gpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
            );
        let st = fit(StrategyType::LeastAllocated).filter(
            &CycleState::default(),
            &pod_info(p),
            &node_info(node("n1", "1", "1Gi", "10"), vec![]),
        );
        assert_eq!(st.reasons, vec!["Insufficient example.com/gpu"]);
    }

    #[test]
    fn malformed_allocatable_rejects_without_panic() {
        let mut n = node("n1", "1", "1Gi", "10");
        n.status.as_mut().unwrap().allocatable.as_mut().unwrap().insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("lots".into()),
        );
        let st = fit(StrategyType::LeastAllocated).filter(
            &CycleState::default(),
            &pod_info(pod("p", "1m", "0")),
            &node_info(n, vec![]),
        );
        assert_eq!(st.code, crate::framework::Code::UnschedulableAndUnresolvable);
        assert!(st.message().contains("invalid allocatable"), "{}", st.message());
    }

    #[test]
    fn least_allocated_prefers_empty_and_most_allocated_prefers_full() {
        let st = CycleState::default();
        let p = pod_info(pod("p", "1", "1Gi"));
        let empty = node_info(node("e", "4", "4Gi", "10"), vec![]);
        let busy = node_info(node("b", "4", "4Gi", "10"), vec![on_node(pod("x", "2", "2Gi"), "b")]);
        let least = fit(StrategyType::LeastAllocated);
        assert_eq!(least.score(&st, &p, &empty).unwrap(), 75);
        assert_eq!(least.score(&st, &p, &busy).unwrap(), 25);
        let most = fit(StrategyType::MostAllocated);
        assert_eq!(most.score(&st, &p, &empty).unwrap(), 25);
        assert_eq!(most.score(&st, &p, &busy).unwrap(), 75);
    }

    #[test]
    fn requested_to_capacity_ratio_follows_the_shape() {
        let plugin = NodeResourcesFit::new(NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                type_: StrategyType::RequestedToCapacityRatio,
                resources: vec![ResourceSpec {
                    name: CPU.into(),
                    weight: 1,
                }],
                requested_to_capacity_ratio: Some(RequestedToCapacityRatioParam {
                    shape: vec![
                        UtilizationShapePoint {
                            utilization: 0,
                            score: 0,
                        },
                        UtilizationShapePoint {
                            utilization: 100,
                            score: 10,
                        },
                    ],
                }),
            },
        })
        .unwrap();
        let info = node_info(node("n", "4", "4Gi", "10"), vec![]);
        assert_eq!(
            plugin
                .score(&CycleState::default(), &pod_info(pod("p", "2", "0")), &info)
                .unwrap(),
            50
        );
    }

    #[test]
    fn huge_quantities_neither_overflow_nor_panic() {
        let info = node_info(
            node("n", "9999999999999", "99999999999Ei", "10"),
            vec![on_node(pod("x", "9999999999999", "8Ei"), "n")],
        );
        let p = pod_info(pod("p", "9999999999999", "99999999999Ei"));
        let st = CycleState::default();
        for t in [StrategyType::LeastAllocated, StrategyType::MostAllocated] {
            let plugin = fit(t);
            let _ = plugin.filter(&st, &p, &info);
            let s = plugin.score(&st, &p, &info).unwrap();
            assert!((0..=MAX_NODE_SCORE).contains(&s), "{s}");
        }
    }

    #[test]
    fn bad_shape_is_a_config_error() {
        let r = NodeResourcesFit::new(NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                type_: StrategyType::RequestedToCapacityRatio,
                ..Default::default()
            },
        });
        assert!(r.is_err());
    }
}
