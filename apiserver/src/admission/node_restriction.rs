//! NodeRestriction (upstream plugin/pkg/admission/noderestriction): a kubelet changes only
//! its own Node and Lease, and of pods only those bound to it: their status, their deletion,
//! their eviction. It creates no pods (mirror pods are not served here).
//!
//! Upstream's plugin sees the decoded object in the admission chain; this chain runs on
//! creates only and knows no user, so the authorization layer calls [`admit`] for node users
//! before the handler, with the request body (a create) or the cached pod (the others).

use crate::authz::attributes::Attributes;
use serde_json::Value;

/// Why a node's request is refused, as upstream words it; None when it may go on.
/// `body` is the object a create sends; `pod` the stored pod a pod request is about.
pub fn admit(node: &str, a: &Attributes, body: Option<&Value>, pod: Option<&Value>) -> Option<String> {
    if !a.resource_request {
        return None;
    }
    let pod_node = || pod.and_then(|p| p.pointer("/spec/nodeName")).and_then(Value::as_str).unwrap_or("");
    match (a.api_group.as_str(), a.resource.as_str(), a.subresource.as_str(), a.verb.as_str()) {
        ("", "pods", "", "create") => Some(format!("node {node:?} can only create mirror pods, and this server serves none")),
        ("", "pods", "", "delete") if pod_node() != node => Some(format!("node {node:?} can only delete pods with spec.nodeName set to itself")),
        ("", "pods", "", "update" | "patch") => Some(format!("node {node:?} can only update pod status")),
        ("", "pods", "status", "update" | "patch") if pod_node() != node => {
            Some(format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"))
        }
        ("", "pods", "eviction", "create") if pod_node() != node => Some(format!("node {node:?} can only evict pods with spec.nodeName set to itself")),
        ("", "nodes", _, "create") => {
            let name = body.and_then(|b| b.pointer("/metadata/name")).and_then(Value::as_str).unwrap_or("");
            (name != node).then(|| format!("node {node:?} is not allowed to modify node {name:?}"))
        }
        ("", "nodes", _, "update" | "patch" | "delete") if a.name != node => Some(format!("node {node:?} is not allowed to modify node {:?}", a.name)),
        ("coordination.k8s.io", "leases", "", "create") => {
            let name = body.and_then(|b| b.pointer("/metadata/name")).and_then(Value::as_str).unwrap_or("");
            (name != node).then(|| "can only access node lease with the same name as the requesting node".to_string())
        }
        _ => None,
    }
}

/// Whether [`admit`] needs the request body.
pub fn needs_body(a: &Attributes) -> bool {
    a.verb == "create" && a.api_group.is_empty() && a.resource == "nodes" || a.verb == "create" && a.resource == "leases"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::resource(UserInfo::default(), verb, group, resource, sub, "ns", name)
    }

    #[test]
    fn a_node_writes_only_its_own_pods_and_node() {
        let mine = json!({"spec": {"nodeName": "n1"}});
        let other = json!({"spec": {"nodeName": "n2"}});
        assert_eq!(admit("n1", &attrs("patch", "", "pods", "status", "p"), None, Some(&mine)), None);
        assert_eq!(
            admit("n1", &attrs("patch", "", "pods", "status", "p"), None, Some(&other)).as_deref(),
            Some("node \"n1\" can only update pod status for pods with spec.nodeName set to itself")
        );
        assert!(admit("n1", &attrs("delete", "", "pods", "", "p"), None, Some(&other)).is_some());
        assert!(admit("n1", &attrs("create", "", "pods", "", ""), None, None).is_some());
        assert_eq!(admit("n1", &attrs("patch", "", "nodes", "status", "n1"), None, None), None);
        assert_eq!(admit("n1", &attrs("patch", "", "nodes", "", "n2"), None, None).as_deref(), Some("node \"n1\" is not allowed to modify node \"n2\""));
        assert_eq!(admit("n1", &attrs("create", "", "nodes", "", ""), Some(&json!({"metadata": {"name": "n1"}})), None), None);
        assert!(admit("n1", &attrs("create", "", "nodes", "", ""), Some(&json!({"metadata": {"name": "n3"}})), None).is_some());
        assert!(admit("n1", &attrs("create", "coordination.k8s.io", "leases", "", ""), Some(&json!({"metadata": {"name": "n3"}})), None).is_some());
    }
}
