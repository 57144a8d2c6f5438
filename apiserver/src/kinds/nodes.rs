//! Nodes: capacity and allocatable in canonical quantities, and printNode's columns.

use crate::registry::strategy::Strategy;
use crate::table::{arr, or_none, s, Column};
use crate::validation::defaults;
use serde_json::{json, Value};

pub struct Nodes;

impl Strategy for Nodes {
    fn default(&self, obj: &mut Value) {
        defaults::node(obj);
    }

    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Status", "string", 0), Column("Roles", "string", 0), Column("Age", "string", 0),
            Column("Version", "string", 0), Column("Internal-IP", "string", 1), Column("External-IP", "string", 1),
            Column("OS-Image", "string", 1), Column("Kernel-Version", "string", 1), Column("Container-Runtime", "string", 1),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        cells.extend([
            json!(node_status(obj)), json!(node_roles(obj)), age, json!(s(obj, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(obj, "InternalIP")), json!(node_address(obj, "ExternalIP")),
            json!(or_none(s(obj, "/status/nodeInfo/osImage").into())), json!(or_none(s(obj, "/status/nodeInfo/kernelVersion").into())),
            json!(or_none(s(obj, "/status/nodeInfo/containerRuntimeVersion").into())),
        ]);
        cells
    }
}

fn node_status(node: &Value) -> String {
    let mut st: Vec<&str> = Vec::new();
    match arr(node, "/status/conditions").iter().find(|c| s(c, "/type") == "Ready") {
        // Upstream's printer: any Ready status but True (False or Unknown) prints NotReady;
        // only a node without a Ready condition is Unknown.
        Some(c) if s(c, "/status") == "True" => st.push("Ready"),
        Some(_) => st.push("NotReady"),
        None => st.push("Unknown"),
    }
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        st.push("SchedulingDisabled");
    }
    st.join(",")
}

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("node-role.kubernetes.io/").map(String::from).or_else(|| (k == "kubernetes.io/role").then(|| v.as_str().unwrap_or("").to_string()))
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    or_none(roles.join(","))
}

fn node_address(node: &Value, ty: &str) -> String {
    or_none(arr(node, "/status/addresses").iter().find(|a| s(a, "/type") == ty).map(|a| s(a, "/address").to_string()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_prints_not_ready_for_false_and_unknown() {
        let node = |status: &str| json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
        assert_eq!(node_status(&node("True")), "Ready");
        assert_eq!(node_status(&node("False")), "NotReady");
        assert_eq!(node_status(&node("Unknown")), "NotReady");
        assert_eq!(node_status(&json!({"status": {}})), "Unknown");
    }

    #[test]
    fn node_ready_column() {
        let node = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}, "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(Nodes.cells(&node)[1], "Ready,SchedulingDisabled");
        assert_eq!(Nodes.cells(&node)[2], "control-plane");
    }
}
