//! ImageLocality: favours nodes that already hold the pod's images,
//! weighted by how widely each image is spread (to avoid piling pods on
//! the one node that has it), as upstream.

use std::collections::HashMap;

use crate::framework::{
    normalize_image, CycleState, NodeInfo, Plugin, PodInfo, PreScore, Score, Snapshot, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

struct Spread {
    /// Normalized image name to the number of nodes holding it.
    nodes_with: HashMap<String, usize>,
    total_nodes: usize,
}

fn images(pod: &PodInfo) -> Vec<String> {
    let Some(spec) = &pod.pod.spec else { return Vec::new() };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.as_deref())
        .map(normalize_image)
        .collect()
}

impl PreScore for ImageLocality {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        let wanted = images(pod);
        if wanted.is_empty() || !snapshot.any_node_with_images() {
            return Status::skip();
        }
        let nodes_with = wanted
            .iter()
            .map(|i| {
                (
                    i.clone(),
                    snapshot.nodes.iter().filter(|n| n.images.contains_key(i)).count(),
                )
            })
            .collect();
        state.write(
            NAME,
            Spread {
                nodes_with,
                total_nodes: snapshot.len().max(1),
            },
        );
        Status::success()
    }
}

impl Score for ImageLocality {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(spread) = state.read::<Spread>(NAME) else {
            return Ok(0);
        };
        let wanted = images(pod);
        let sum: i64 = wanted
            .iter()
            .filter_map(|i| {
                let size = *node.images.get(i)?;
                let n = *spread.nodes_with.get(i).unwrap_or(&0) as f64;
                Some((size as f64 * n / spread.total_nodes as f64) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * wanted.len().max(1) as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        Ok(MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::ContainerImage;
    use std::sync::Arc;

    #[test]
    fn node_with_the_image_scores_higher() {
        let mut with = node("a", "1", "1Gi", "10");
        with.status.as_mut().unwrap().images = Some(vec![ContainerImage {
            names: Some(vec!["docker.io/library/busybox:latest".into()]),
            size_bytes: Some(800 * MB),
        }]);
        let snap = Snapshot::new(vec![
            Arc::new(node_info(with, vec![])),
            Arc::new(node_info(node("b", "1", "1Gi", "10"), vec![])),
        ]);
        let p = pod_info(pod("p", "0", "0"));
        let mut st = CycleState::default();
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().map(|n| n.as_ref()).collect();
        assert!(ImageLocality.pre_score(&mut st, &p, &nodes, &snap).is_success());
        let a = ImageLocality.score(&st, &p, &snap.nodes[0]).unwrap();
        let b = ImageLocality.score(&st, &p, &snap.nodes[1]).unwrap();
        assert!(a > b, "{a} > {b}");
        assert_eq!(b, 0);
    }
}
