//! The Node authorizer (upstream plugin/pkg/auth/authorizer/node): a kubelet, user
//! `system:node:<name>` in `system:nodes`, reads only the secrets, configmaps, claims and
//! volumes of pods bound to its node, asks tokens only for their ServiceAccounts, and touches
//! only its own Lease and CSINode; everything else it may do is upstream's NodeRules. Which
//! writes of pods and nodes it may make is NodeRestriction (`crate::admission::node_restriction`).
//!
//! The graph is kept from the pods watch cache: one entry per scheduled pod, updated by its
//! events, so a decision is a hash lookup.

use super::attributes::Attributes;
use super::{Authorizer, Decision};
use crate::registry::Registry;
use crate::watch_cache::{CacheEvent, EventType};
use k8s_openapi::api::rbac::v1::PolicyRule;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is, when it is one.
pub fn node_name(user: &crate::auth::UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    Secret,
    ConfigMap,
    Claim,
    ServiceAccount,
}

/// What one pod lets its node reach: (kind, name) in the pod's namespace.
type Refs = HashSet<(RefKind, String)>;

/// The objects `pod` references (upstream's graph_populator edges).
pub fn pod_refs(pod: &Value) -> Refs {
    let mut refs = Refs::new();
    let mut add = |k: RefKind, v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            refs.insert((k, n.to_string()));
        }
    };
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    add(RefKind::ServiceAccount, spec.get("serviceAccountName"));
    for s in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
        add(RefKind::Secret, s.get("name"));
    }
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        add(RefKind::Secret, v.pointer("/secret/secretName"));
        add(RefKind::ConfigMap, v.pointer("/configMap/name"));
        add(RefKind::Claim, v.pointer("/persistentVolumeClaim/claimName"));
        if v.get("ephemeral").is_some() {
            if let Some(vn) = v.get("name").and_then(Value::as_str) {
                add(RefKind::Claim, Some(&Value::String(format!("{pod_name}-{vn}"))));
            }
        }
        // Volume plugins naming a secret for their credentials (csi, cephfs, rbd, iscsi, ...).
        if let Some(obj) = v.as_object() {
            for src in obj.values() {
                for key in ["secretRef", "nodePublishSecretRef", "nodeStageSecretRef", "controllerPublishSecretRef"] {
                    add(RefKind::Secret, src.get(key).and_then(|r| r.get("name")));
                }
            }
        }
        for s in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add(RefKind::Secret, s.pointer("/secret/name"));
            add(RefKind::ConfigMap, s.pointer("/configMap/name"));
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add(RefKind::Secret, e.pointer("/valueFrom/secretKeyRef/name"));
                add(RefKind::ConfigMap, e.pointer("/valueFrom/configMapKeyRef/name"));
            }
            for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                add(RefKind::Secret, e.pointer("/secretRef/name"));
                add(RefKind::ConfigMap, e.pointer("/configMapRef/name"));
            }
        }
    }
    refs
}

#[derive(Default)]
struct Graph {
    /// node -> pod key -> (namespace, references).
    by_node: HashMap<String, HashMap<String, (String, Refs)>>,
    /// pod key -> node, to move or drop a pod's entry.
    node_of: HashMap<String, String>,
}

impl Graph {
    fn remove(&mut self, key: &str) {
        if let Some(node) = self.node_of.remove(key) {
            if let Some(pods) = self.by_node.get_mut(&node) {
                pods.remove(key);
                if pods.is_empty() {
                    self.by_node.remove(&node);
                }
            }
        }
    }

    fn apply(&mut self, e: &CacheEvent) {
        let key = &e.object.key;
        let node = e.object.fields.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if e.kind == EventType::Deleted || node.is_empty() {
            self.remove(key);
            return;
        }
        // A pod's node and the objects its spec names do not change once it is bound (only
        // ephemeral containers can be added), so the many status writes cost no decode.
        if self.node_of.get(key).is_some_and(|n| n == node) {
            return;
        }
        let pod = e.object.value();
        let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let refs = pod_refs(&pod);
        self.remove(key);
        self.node_of.insert(key.clone(), node.to_string());
        self.by_node.entry(node.to_string()).or_default().insert(key.clone(), (ns, refs));
    }

    fn references(&self, node: &str, ns: &str, kind: RefKind, name: &str) -> bool {
        let want = (kind, name.to_string());
        self.by_node.get(node).is_some_and(|pods| pods.values().any(|(pns, refs)| pns == ns && refs.contains(&want)))
    }

    fn claims(&self, node: &str) -> Vec<(String, String)> {
        let Some(pods) = self.by_node.get(node) else { return Vec::new() };
        pods.values().flat_map(|(ns, refs)| refs.iter().filter(|(k, _)| *k == RefKind::Claim).map(move |(_, n)| (ns.clone(), n.clone()))).collect()
    }
}

pub struct NodeAuthorizer {
    registry: Arc<Registry>,
    graph: Arc<RwLock<Graph>>,
    rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    /// Starts following the pods cache (needs a tokio runtime).
    pub fn new(registry: Arc<Registry>) -> Arc<NodeAuthorizer> {
        let graph = Arc::new(RwLock::new(Graph::default()));
        if let Some(pods) = registry.store("", "v1", "pods") {
            let g = graph.clone();
            tokio::spawn(async move {
                loop {
                    let sub = match pods.cache.subscribe(&pods.prefix(None), None) {
                        Ok(s) => s,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    {
                        let mut graph = g.write();
                        *graph = Graph::default();
                        for e in &sub.initial {
                            graph.apply(e);
                        }
                    }
                    let mut live = sub.live;
                    loop {
                        match live.recv().await {
                            Ok(e) if e.seq > sub.start_seq => g.write().apply(&e),
                            Ok(_) => {}
                            // Missed events: start over from the cache's current state.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        }
                    }
                }
            });
        }
        Arc::new(NodeAuthorizer { registry, graph, rules: super::bootstrap_policy::node_rules() })
    }

    fn pv_of_node(&self, node: &str, pv: &str) -> bool {
        let Some(pvcs) = self.registry.store("", "v1", "persistentvolumeclaims") else { return false };
        let claims = self.graph.read().claims(node);
        claims.iter().any(|(ns, name)| {
            pvcs.cached(Some(ns), name).is_some_and(|o| o.value().pointer("/spec/volumeName").and_then(Value::as_str) == Some(pv))
        })
    }

    fn related(&self, node: &str, a: &Attributes, kind: RefKind) -> Decision {
        if a.name.is_empty() {
            return Decision::NoOpinion("can only read individual objects".into());
        }
        if self.graph.read().references(node, &a.namespace, kind, &a.name) {
            return Decision::Allow(String::new());
        }
        Decision::NoOpinion(format!("no relationship found between node '{node}' and this object"))
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, a: &Attributes) -> Decision {
        let Some(node) = node_name(&a.user) else { return Decision::NoOpinion(String::new()) };
        if a.resource_request {
            let read = matches!(a.verb.as_str(), "get" | "list" | "watch");
            match (a.api_group.as_str(), a.resource.as_str(), a.subresource.as_str()) {
                ("", "secrets", "") | ("", "configmaps", "") if !read => return Decision::NoOpinion(String::new()),
                ("", "secrets", "") => return self.related(node, a, RefKind::Secret),
                ("", "configmaps", "") => return self.related(node, a, RefKind::ConfigMap),
                ("", "persistentvolumeclaims", "") if a.verb == "get" => return self.related(node, a, RefKind::Claim),
                ("", "persistentvolumeclaims", "status") if matches!(a.verb.as_str(), "get" | "update" | "patch") => {
                    return self.related(node, a, RefKind::Claim);
                }
                ("", "persistentvolumeclaims", _) => return Decision::NoOpinion(String::new()),
                ("", "persistentvolumes", "") if a.verb == "get" => {
                    return if self.pv_of_node(node, &a.name) {
                        Decision::Allow(String::new())
                    } else {
                        Decision::NoOpinion(format!("no relationship found between node '{node}' and this object"))
                    };
                }
                ("", "persistentvolumes", _) => return Decision::NoOpinion(String::new()),
                ("", "serviceaccounts", "token") if a.verb == "create" => return self.related(node, a, RefKind::ServiceAccount),
                ("coordination.k8s.io", "leases", "") => {
                    let own = a.namespace == "kube-node-lease" && (a.verb == "create" || a.name == node);
                    if !own || !matches!(a.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
                        return Decision::NoOpinion("can only access node lease with the same name as the requesting node".into());
                    }
                    return Decision::Allow(String::new());
                }
                ("storage.k8s.io", "csinodes", "") => {
                    if a.verb != "create" && a.name != node {
                        return Decision::NoOpinion("can only access CSINode with the same name as the requesting node".into());
                    }
                }
                _ => {}
            }
        }
        if self.rules.iter().any(|r| super::rbac::rule_allows(a, r)) {
            return Decision::Allow(String::new());
        }
        Decision::NoOpinion(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_references_cover_volumes_env_and_pull_secrets() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "sa", "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "v", "secret": {"secretName": "s1"}}, {"name": "c", "configMap": {"name": "cm1"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "ephemeral": {}},
                {"name": "x", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                {"name": "pr", "projected": {"sources": [{"secret": {"name": "s2"}}, {"configMap": {"name": "cm2"}}]}}],
            "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "cm3"}}]}]}});
        let refs = pod_refs(&pod);
        for (k, n) in [(RefKind::ServiceAccount, "sa"), (RefKind::Secret, "pull"), (RefKind::Secret, "s1"), (RefKind::ConfigMap, "cm1"),
            (RefKind::Claim, "data"), (RefKind::Claim, "p-e"), (RefKind::Secret, "csi"), (RefKind::Secret, "s2"), (RefKind::ConfigMap, "cm2"),
            (RefKind::Secret, "s3"), (RefKind::ConfigMap, "cm3")] {
            assert!(refs.contains(&(k, n.to_string())), "{k:?} {n}");
        }
        assert_eq!(refs.len(), 11);
    }

    #[test]
    fn node_identity_needs_the_group() {
        let u = |name: &str, groups: &[&str]| crate::auth::UserInfo { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() };
        assert_eq!(node_name(&u("system:node:n1", &[NODES_GROUP])), Some("n1"));
        assert_eq!(node_name(&u("system:node:n1", &[])), None);
        assert_eq!(node_name(&u("alice", &[NODES_GROUP])), None);
    }
}
