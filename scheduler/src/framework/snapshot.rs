//! Snapshot: the cache's nodes as seen by one scheduling cycle. Entries are
//! shared `Arc`s, so taking a snapshot copies pointers, not pods.

use std::collections::HashMap;
use std::sync::Arc;

use super::NodeInfo;

#[derive(Default, Clone)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    /// Cluster-wide counts kept up to date on replace, so plugins can skip
    /// whole-cluster scans without touching every node.
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
    nodes_with_images: usize,
}

impl Snapshot {
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        let mut s = Snapshot {
            nodes,
            index,
            ..Default::default()
        };
        for n in &s.nodes {
            s.pods_with_affinity += n.pods_with_affinity;
            s.pods_with_required_anti_affinity += n.pods_with_required_anti_affinity;
            s.nodes_with_images += (!n.images.is_empty()) as usize;
        }
        s
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Replaces one node in place; false if the node is not in the snapshot.
    pub fn replace(&mut self, info: Arc<NodeInfo>) -> bool {
        match self.index.get(&info.name) {
            Some(i) => {
                let old = std::mem::replace(&mut self.nodes[*i], info);
                let new = &self.nodes[*i];
                self.pods_with_affinity = self.pods_with_affinity + new.pods_with_affinity - old.pods_with_affinity;
                self.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
                    + new.pods_with_required_anti_affinity
                    - old.pods_with_required_anti_affinity;
                self.nodes_with_images =
                    self.nodes_with_images + (!new.images.is_empty()) as usize - (!old.images.is_empty()) as usize;
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether any pod on any node has (anti-)affinity terms, so that
    /// InterPodAffinity can skip the scan for ordinary pods.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    pub fn any_pod_with_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    pub fn any_node_with_images(&self) -> bool {
        self.nodes_with_images > 0
    }
}
