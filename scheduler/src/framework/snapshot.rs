//! Snapshot: the cache's nodes as seen by one scheduling cycle. Entries are
//! shared `Arc`s, so taking a snapshot copies pointers, not pods.

use std::collections::HashMap;
use std::sync::Arc;

use super::NodeInfo;

#[derive(Default, Clone)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
}

impl Snapshot {
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Snapshot { nodes, index }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Replaces one node in place; false if the node is not in the snapshot.
    pub fn replace(&mut self, info: Arc<NodeInfo>) -> bool {
        match self.index.get(&info.name) {
            Some(i) => {
                self.nodes[*i] = info;
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
        self.nodes.iter().any(|n| n.pods_with_affinity > 0)
    }
}
