//! The ownership graph (upstream's GraphBuilder) and the pure decision of
//! what to do with one object (upstream's attemptToDeleteItem and
//! processDeletingDependentsItem).

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// One object, as far as ownership goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    /// Index of the object's resource in the watched resource list.
    pub resource: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
    /// Deleting in the foreground: waiting for its blocking dependents.
    pub fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn uids(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().filter_map(|d| self.nodes.get(d)).collect())
            .unwrap_or_default()
    }

    /// Insert or update a node; returns the uids whose state may now call
    /// for action.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut out = Vec::new();
        let old = self.nodes.get(&node.uid).cloned();
        let old_owners: HashSet<String> = old
            .as_ref()
            .map(|o| o.owners.iter().map(|r| r.uid.clone()).collect())
            .unwrap_or_default();
        let new_owners: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        for gone in old_owners.difference(&new_owners) {
            if let Some(s) = self.dependents.get_mut(gone) {
                s.remove(&node.uid);
                if s.is_empty() {
                    self.dependents.remove(gone);
                }
            }
            // An owner waiting on this dependent can now go on.
            if self.nodes.get(gone).is_some_and(|o| o.deleting) {
                out.push(gone.clone());
            }
        }
        for o in &new_owners {
            self.dependents.entry(o.clone()).or_default().insert(node.uid.clone());
        }
        if !node.owners.is_empty() || node.has_finalizer(FOREGROUND) || node.has_finalizer(ORPHAN) {
            out.push(node.uid.clone());
        }
        if node.deleting {
            for o in &node.owners {
                if self.nodes.get(&o.uid).is_some_and(|n| n.deleting) {
                    out.push(o.uid.clone());
                }
            }
        }
        self.nodes.insert(node.uid.clone(), node);
        out
    }

    /// Remove a deleted object; its dependents may now be dangling and its
    /// owners may be waiting for it.
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut out: Vec<String> = self.dependents.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        if let Some(node) = self.nodes.remove(uid) {
            for o in &node.owners {
                if let Some(s) = self.dependents.get_mut(&o.uid) {
                    s.remove(uid);
                    if s.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
                if self.nodes.get(&o.uid).is_some_and(|n| n.deleting) {
                    out.push(o.uid.clone());
                }
            }
        }
        out
    }
}

/// An owner as the dependent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Gone (or replaced by an object with another uid).
    Dangling,
    /// Being deleted in the foreground, waiting for its dependents.
    Waiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Nothing,
    /// Drop the owner reference to this object from these dependents, then
    /// remove the `orphan` finalizer.
    OrphanDependents(Vec<String>),
    /// Remove this GC finalizer: its work is done.
    RemoveFinalizer(&'static str),
    /// Foreground deletion waits on these blocking dependents: process them.
    ProcessDependents(Vec<String>),
    /// Some owners remain: drop only the references to gone or waiting ones.
    RemoveOwnerRefs(Vec<String>),
    /// Owned only by waiting owners while having dependents itself: stop
    /// blocking them (which breaks ownership cycles) and delete in the
    /// foreground.
    UnblockAndDelete(Vec<String>),
    Delete(Propagation),
}

/// Does `dependent` hold up the foreground deletion of `owner`? Not when it
/// is the owner itself, nor when it waits in the foreground for the owner in
/// turn: either would be a wait without end (upstream breaks such cycles
/// through the dependent's unblocking; two owners deleted at once need this).
pub fn blocks(owner: &Node, dependent: &Node) -> bool {
    let blocking = |of: &Node, d: &Node| d.owners.iter().any(|o| o.uid == of.uid && o.block_owner_deletion == Some(true));
    dependent.uid != owner.uid
        && blocking(owner, dependent)
        && !(dependent.waiting_for_dependents() && blocking(dependent, owner))
}

/// What to do about `node`, given its dependents and its owners' states
/// (in the order of `node.owners`).
pub fn decide(node: &Node, dependents: &[&Node], owners: &[OwnerState]) -> Decision {
    if node.deleting {
        if node.has_finalizer(ORPHAN) {
            return Decision::OrphanDependents(dependents.iter().map(|d| d.uid.clone()).collect());
        }
        if node.has_finalizer(FOREGROUND) {
            let blocking: Vec<&&Node> = dependents.iter().filter(|d| blocks(node, d)).collect();
            if blocking.is_empty() {
                return Decision::RemoveFinalizer(FOREGROUND);
            }
            return Decision::ProcessDependents(blocking.iter().filter(|d| !d.deleting).map(|d| d.uid.clone()).collect());
        }
        return Decision::Nothing;
    }
    if node.owners.is_empty() {
        return Decision::Nothing;
    }
    let uids = |want: OwnerState| -> Vec<String> {
        node.owners
            .iter()
            .zip(owners)
            .filter(|(_, s)| **s == want)
            .map(|(o, _)| o.uid.clone())
            .collect()
    };
    let (solid, dangling, waiting) = (uids(OwnerState::Solid), uids(OwnerState::Dangling), uids(OwnerState::Waiting));
    if !solid.is_empty() {
        let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
        return if drop.is_empty() {
            Decision::Nothing
        } else {
            Decision::RemoveOwnerRefs(drop)
        };
    }
    if !waiting.is_empty() && !dependents.is_empty() {
        return Decision::UnblockAndDelete(waiting);
    }
    // As upstream: with no dependents of its own, a dependent of a waiting
    // owner needs no foreground deletion; its existing finalizers decide.
    let policy = if node.has_finalizer(ORPHAN) {
        Propagation::Orphan
    } else if node.has_finalizer(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Decision::Delete(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: uid.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: &[(&str, bool)]) -> Node {
        Node {
            name: uid.into(),
            uid: uid.into(),
            owners: owners.iter().map(|(u, b)| owner_ref(u, *b)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn dependents_of_a_gone_owner_are_deleted_in_the_background() {
        let pod = node("pod", &[("rs", true)]);
        assert_eq!(
            decide(&pod, &[], &[OwnerState::Dangling]),
            Decision::Delete(Propagation::Background)
        );
        assert_eq!(decide(&pod, &[], &[OwnerState::Solid]), Decision::Nothing);
    }

    #[test]
    fn a_surviving_owner_keeps_the_dependent() {
        let pod = node("pod", &[("a", false), ("b", false)]);
        assert_eq!(
            decide(&pod, &[], &[OwnerState::Solid, OwnerState::Dangling]),
            Decision::RemoveOwnerRefs(vec!["b".into()])
        );
    }

    #[test]
    fn foreground_waits_for_blocking_dependents_only() {
        let mut rs = node("rs", &[]);
        rs.deleting = true;
        rs.finalizers = vec![FOREGROUND.into()];
        let blocking = node("p1", &[("rs", true)]);
        let free = node("p2", &[("rs", false)]);
        assert_eq!(
            decide(&rs, &[&blocking, &free], &[]),
            Decision::ProcessDependents(vec!["p1".into()])
        );
        assert_eq!(decide(&rs, &[&free], &[]), Decision::RemoveFinalizer(FOREGROUND));
        // A leaf dependent of a waiting owner is simply deleted (upstream's default case).
        assert_eq!(
            decide(&blocking, &[], &[OwnerState::Waiting]),
            Decision::Delete(Propagation::Background)
        );
    }

    #[test]
    fn orphan_finalizer_releases_dependents() {
        let mut rs = node("rs", &[]);
        rs.deleting = true;
        rs.finalizers = vec![ORPHAN.into()];
        let p = node("p1", &[("rs", true)]);
        assert_eq!(decide(&rs, &[&p], &[]), Decision::OrphanDependents(vec!["p1".into()]));
        rs.finalizers.clear();
        assert_eq!(decide(&rs, &[], &[]), Decision::Nothing);
    }

    #[test]
    fn an_ownership_cycle_under_foreground_deletion_is_broken() {
        // a owns b, b owns a; a is deleted in the foreground.
        let mut a = node("a", &[("b", true)]);
        a.deleting = true;
        a.finalizers = vec![FOREGROUND.into()];
        let b = node("b", &[("a", true)]);
        // a waits for b; b is owned only by the waiting a and has a dependent (a):
        assert_eq!(
            decide(&a, &[&b], &[OwnerState::Solid]),
            Decision::ProcessDependents(vec!["b".into()])
        );
        assert_eq!(
            decide(&b, &[&a], &[OwnerState::Waiting]),
            Decision::UnblockAndDelete(vec!["a".into()])
        );
        // Once b no longer blocks a, a's finalizer can go.
        let b_unblocked = node("b", &[("a", false)]);
        assert_eq!(
            decide(&a, &[&b_unblocked], &[OwnerState::Solid]),
            Decision::RemoveFinalizer(FOREGROUND)
        );
    }

    #[test]
    fn a_self_owner_does_not_wait_for_itself() {
        let mut a = node("a", &[("a", true)]);
        a.deleting = true;
        a.finalizers = vec![FOREGROUND.into()];
        let me = a.clone();
        assert_eq!(decide(&a, &[&me], &[]), Decision::RemoveFinalizer(FOREGROUND));
    }

    #[test]
    fn two_owners_deleted_in_the_foreground_do_not_wait_for_each_other() {
        let mut a = node("a", &[("b", true)]);
        a.deleting = true;
        a.finalizers = vec![FOREGROUND.into()];
        let mut b = node("b", &[("a", true)]);
        b.deleting = true;
        b.finalizers = vec![FOREGROUND.into()];
        assert_eq!(decide(&a, &[&b], &[]), Decision::RemoveFinalizer(FOREGROUND));
        assert_eq!(decide(&b, &[&a], &[]), Decision::RemoveFinalizer(FOREGROUND));
    }

    #[test]
    fn graph_tracks_dependents_and_reports_what_to_process() {
        let mut g = Graph::default();
        assert!(g.upsert(node("rs", &[])).is_empty());
        assert_eq!(g.upsert(node("p1", &[("rs", true)])), vec!["p1".to_string()]);
        assert_eq!(g.dependents("rs").len(), 1);
        let mut todo = g.remove("rs");
        todo.sort();
        assert_eq!(todo, vec!["p1".to_string()]);
        // Releasing a dependent wakes an owner that is being deleted.
        let mut rs = node("rs", &[]);
        rs.deleting = true;
        rs.finalizers = vec![ORPHAN.into()];
        g.upsert(rs);
        assert!(g.upsert(node("p1", &[])).contains(&"rs".to_string()));
        assert!(g.dependents("rs").is_empty());
    }
}
