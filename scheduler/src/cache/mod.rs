//! The scheduler cache: every node with the pods counted against it, both
//! bound (seen through the watch) and assumed (chosen by this scheduler,
//! binding in flight). Assumed pods count at once, so two pods scheduled
//! back to back never overcommit a node before the bind is observed.
//!
//! Single writer (the scheduler, under its lock); cycles read
//! [`Snapshot`]s that share unchanged NodeInfos.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::framework::{NodeInfo, PodInfo, Snapshot};

#[derive(Debug, Clone, PartialEq)]
struct PodState {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    /// NodeInfos that hold pods but whose Node object is absent.
    phantom: HashSet<String>,
    pods: HashMap<String, PodState>,
    /// Nodes changed since the last snapshot update.
    dirty: HashSet<String>,
    /// A node was added or removed: the snapshot is rebuilt.
    membership_changed: bool,
}

impl Cache {
    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        self.dirty.insert(name.to_string());
        if !self.nodes.contains_key(name) {
            let placeholder = Node {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            self.nodes
                .insert(name.to_string(), Arc::new(NodeInfo::new(Arc::new(placeholder))));
            self.phantom.insert(name.to_string());
        }
        let entry = self.nodes.get_mut(name).expect("inserted above");
        Arc::make_mut(entry)
    }

    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.dirty.insert(name.clone());
        if !self.nodes.contains_key(&name) {
            self.membership_changed = true;
            self.nodes.insert(name, Arc::new(NodeInfo::new(node)));
            return;
        }
        if self.phantom.remove(&name) {
            self.membership_changed = true;
        }
        self.node_mut(&name).set_node(node);
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get(name) else { return };
        self.membership_changed = true;
        if info.pods.is_empty() {
            self.nodes.remove(name);
            self.phantom.remove(name);
        } else {
            // Its pods still exist until their deletion is observed.
            self.phantom.insert(name.to_string());
        }
        self.dirty.insert(name.to_string());
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|n| !self.phantom.contains(*n))
            .cloned()
            .collect()
    }

    pub fn node(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.nodes.get(name).filter(|_| !self.phantom.contains(name))
    }

    /// A pod the scheduler has chosen a node for, before the bind lands.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.key);
        self.pods.insert(
            pod.key.clone(),
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
        self.node_mut(node).add_pod(pod);
    }

    /// The bind failed: the assumed pod no longer counts.
    pub fn forget_pod(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// A bound pod seen through the watch (confirms an assumed one).
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        self.remove_pod(&pod.key);
        self.pods.insert(
            pod.key.clone(),
            PodState {
                node: node.clone(),
                assumed: false,
            },
        );
        self.node_mut(&node).add_pod(pod);
    }

    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(state) = self.pods.remove(key) else {
            return false;
        };
        if self.nodes.contains_key(&state.node) {
            self.node_mut(&state.node).remove_pod(key);
            let empty_phantom = self.phantom.contains(&state.node) && self.nodes[&state.node].pods.is_empty();
            if empty_phantom {
                self.nodes.remove(&state.node);
                self.phantom.remove(&state.node);
            }
        }
        true
    }

    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    pub fn has_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Brings a snapshot up to date, copying only what changed.
    pub fn update_snapshot(&mut self, snapshot: &mut Snapshot) {
        if self.membership_changed {
            let mut names: Vec<&String> = self.nodes.keys().filter(|n| !self.phantom.contains(*n)).collect();
            names.sort();
            *snapshot = Snapshot::new(names.into_iter().map(|n| self.nodes[n].clone()).collect());
            self.membership_changed = false;
        } else {
            for name in &self.dirty {
                if let Some(info) = self.nodes.get(name).filter(|_| !self.phantom.contains(name)) {
                    snapshot.replace(info.clone());
                }
            }
        }
        self.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut c = Cache::default();
        c.add_or_update_node(Arc::new(node("n1", "1", "1Gi", "10")));
        let p = Arc::new(pod_info(on_node(pod("p", "600m", "0"), "n1")));
        c.assume_pod(p.clone(), "n1");
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 600);
        assert!(c.is_assumed("default/p"));
        c.forget_pod("default/p");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn observed_bind_confirms_the_assumed_pod_once() {
        let mut c = Cache::default();
        c.add_or_update_node(Arc::new(node("n1", "1", "1Gi", "10")));
        let p = Arc::new(pod_info(on_node(pod("p", "600m", "0"), "n1")));
        c.assume_pod(p.clone(), "n1");
        c.add_or_update_pod(p);
        assert!(!c.is_assumed("default/p"));
        c.forget_pod("default/p");
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(
            snap.get("n1").unwrap().requested.milli_cpu,
            600,
            "a confirmed pod is not forgotten"
        );
        assert_eq!(snap.get("n1").unwrap().pods.len(), 1);
    }

    #[test]
    fn pods_seen_before_their_node_are_kept() {
        let mut c = Cache::default();
        c.add_or_update_pod(Arc::new(pod_info(on_node(pod("p", "600m", "0"), "n1"))));
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert!(snap.is_empty(), "no Node object yet");
        c.add_or_update_node(Arc::new(node("n1", "1", "1Gi", "10")));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 600);
        c.remove_node("n1");
        c.update_snapshot(&mut snap);
        assert!(snap.is_empty());
    }

    #[test]
    fn snapshot_updates_share_unchanged_nodes() {
        let mut c = Cache::default();
        c.add_or_update_node(Arc::new(node("a", "1", "1Gi", "10")));
        c.add_or_update_node(Arc::new(node("b", "1", "1Gi", "10")));
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        let b_before = snap.get("b").unwrap().clone();
        c.assume_pod(Arc::new(pod_info(on_node(pod("p", "1", "0"), "a"))), "a");
        c.update_snapshot(&mut snap);
        assert!(Arc::ptr_eq(&b_before, snap.get("b").unwrap()));
        assert_eq!(snap.get("a").unwrap().pods.len(), 1);
    }
}
