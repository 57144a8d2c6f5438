//! `kubectl get` Tables (meta.k8s.io/v1 Table): upstream's printer columns per kind
//! (pkg/printers/internalversion/printers.go), NAME and AGE for the rest.

use crate::resources::Printer;
use serde_json::{json, Value};

struct Col(&'static str, &'static str, u8);

fn columns(p: Printer) -> Vec<Col> {
    use Printer::*;
    match p {
        Pod => vec![
            Col("Name", "string", 0), Col("Ready", "string", 0), Col("Status", "string", 0), Col("Restarts", "string", 0),
            Col("Age", "string", 0), Col("IP", "string", 1), Col("Node", "string", 1), Col("Nominated Node", "string", 1),
            Col("Readiness Gates", "string", 1),
        ],
        Node => vec![
            Col("Name", "string", 0), Col("Status", "string", 0), Col("Roles", "string", 0), Col("Age", "string", 0),
            Col("Version", "string", 0), Col("Internal-IP", "string", 1), Col("External-IP", "string", 1),
            Col("OS-Image", "string", 1), Col("Kernel-Version", "string", 1), Col("Container-Runtime", "string", 1),
        ],
        Namespace => vec![Col("Name", "string", 0), Col("Status", "string", 0), Col("Age", "string", 0)],
        Deployment => vec![
            Col("Name", "string", 0), Col("Ready", "string", 0), Col("Up-to-date", "integer", 0), Col("Available", "integer", 0),
            Col("Age", "string", 0), Col("Containers", "string", 1), Col("Images", "string", 1), Col("Selector", "string", 1),
        ],
        ReplicaSet => vec![
            Col("Name", "string", 0), Col("Desired", "integer", 0), Col("Current", "integer", 0), Col("Ready", "integer", 0),
            Col("Age", "string", 0), Col("Containers", "string", 1), Col("Images", "string", 1), Col("Selector", "string", 1),
        ],
        StatefulSet => vec![Col("Name", "string", 0), Col("Ready", "string", 0), Col("Age", "string", 0), Col("Containers", "string", 1), Col("Images", "string", 1)],
        DaemonSet => vec![
            Col("Name", "string", 0), Col("Desired", "integer", 0), Col("Current", "integer", 0), Col("Ready", "integer", 0),
            Col("Up-to-date", "integer", 0), Col("Available", "integer", 0), Col("Node Selector", "string", 0), Col("Age", "string", 0),
        ],
        Job => vec![Col("Name", "string", 0), Col("Status", "string", 0), Col("Completions", "string", 0), Col("Duration", "string", 0), Col("Age", "string", 0)],
        Service => vec![
            Col("Name", "string", 0), Col("Type", "string", 0), Col("Cluster-IP", "string", 0), Col("External-IP", "string", 0),
            Col("Port(s)", "string", 0), Col("Age", "string", 0), Col("Selector", "string", 1),
        ],
        Endpoints => vec![Col("Name", "string", 0), Col("Endpoints", "string", 0), Col("Age", "string", 0)],
        Event => vec![
            Col("Last Seen", "string", 0), Col("Type", "string", 0), Col("Reason", "string", 0), Col("Object", "string", 0),
            Col("Message", "string", 0),
        ],
        ConfigMap => vec![Col("Name", "string", 0), Col("Data", "integer", 0), Col("Age", "string", 0)],
        Secret => vec![Col("Name", "string", 0), Col("Type", "string", 0), Col("Data", "integer", 0), Col("Age", "string", 0)],
        Lease => vec![Col("Name", "string", 0), Col("Holder", "string", 0), Col("Age", "string", 0)],
        ServiceAccount => vec![Col("Name", "string", 0), Col("Secrets", "integer", 0), Col("Age", "string", 0)],
        PriorityClass => vec![
            Col("Name", "string", 0), Col("Value", "integer", 0), Col("Global-Default", "boolean", 0), Col("Age", "string", 0),
            Col("Preemption Policy", "string", 0),
        ],
        Default => vec![Col("Name", "string", 0), Col("Age", "string", 0)],
    }
}

pub fn column_definitions(p: Printer) -> Value {
    Value::Array(
        columns(p)
            .into_iter()
            .map(|Col(name, ty, prio)| {
                let format = if name == "Name" { "name" } else { "" };
                json!({"name": name, "type": ty, "format": format, "description": "", "priority": prio})
            })
            .collect(),
    )
}

/// Upstream's duration.HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 { format!("{m}m") } else { format!("{m}m{rem}s") };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 { format!("{h}h") } else { format!("{h}h{rem}m") };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rem = h % 24;
        return if rem == 0 { format!("{}d", h / 24) } else { format!("{}d{rem}h", h / 24) };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / 24 / 365)
}

fn age_of(ts: Option<&Value>) -> String {
    let Some(ts) = ts.and_then(Value::as_str) else { return "<unknown>".into() };
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn containers_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = arr(obj, ptr);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_string(obj: &Value) -> String {
    let mut parts: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .or_else(|| obj.pointer("/spec/selector").filter(|s| s.get("matchLabels").is_none() && s.get("matchExpressions").is_none()))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    parts.sort();
    or_none(parts.join(","))
}

/// Upstream printPod's STATUS column.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let mut initializing = false;
    let inits = arr(pod, "/status/initContainerStatuses");
    let n_init = arr(pod, "/spec/initContainers").len();
    for (idx, c) in inits.iter().enumerate() {
        if i(c, "/state/terminated/exitCode") == 0 && c.pointer("/state/terminated").is_some() {
            continue;
        }
        if c.pointer("/state/terminated").is_some() {
            let r = s(c, "/state/terminated/reason");
            reason = if r.is_empty() { format!("Init:ExitCode:{}", i(c, "/state/terminated/exitCode")) } else { format!("Init:{r}") };
        } else if !s(c, "/state/waiting/reason").is_empty() && s(c, "/state/waiting/reason") != "PodInitializing" {
            reason = format!("Init:{}", s(c, "/state/waiting/reason"));
        } else {
            reason = format!("Init:{idx}/{n_init}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            if !s(c, "/state/waiting/reason").is_empty() {
                reason = s(c, "/state/waiting/reason").to_string();
            } else if !s(c, "/state/terminated/reason").is_empty() {
                reason = s(c, "/state/terminated/reason").to_string();
            } else if c.pointer("/state/terminated").is_some() {
                let sig = i(c, "/state/terminated/signal");
                reason = if sig != 0 { format!("Signal:{sig}") } else { format!("ExitCode:{}", i(c, "/state/terminated/exitCode")) };
            } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = arr(pod, "/status/conditions").iter().any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if ready { "Running".into() } else { "NotReady".into() };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    reason
}

fn pod_restarts(pod: &Value) -> String {
    let mut restarts = 0;
    let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
    for c in arr(pod, "/status/containerStatuses") {
        restarts += i(c, "/restartCount");
        if let Some(t) = c.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            let t = t.with_timezone(&chrono::Utc);
            if last.is_none_or(|l| t > l) {
                last = Some(t);
            }
        }
    }
    match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_duration((chrono::Utc::now() - t).num_seconds())),
        _ => restarts.to_string(),
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

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", i(p, "/port")),
                None => format!("{}/{proto}", i(p, "/port")),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn external_ip(svc: &Value) -> String {
    let ty = s(svc, "/spec/type");
    let ext: Vec<&str> = arr(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match ty {
        "LoadBalancer" => {
            let lb: Vec<&str> = arr(svc, "/status/loadBalancer/ingress").iter().map(|i| if s(i, "/ip").is_empty() { s(i, "/hostname") } else { s(i, "/ip") }).collect();
            let all: Vec<&str> = lb.into_iter().chain(ext).collect();
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => or_none(ext.join(",")),
    }
}

/// The cells of one row.
pub fn cells(p: Printer, obj: &Value) -> Vec<Value> {
    use Printer::*;
    let name = json!(s(obj, "/metadata/name"));
    let age = json!(age_of(obj.pointer("/metadata/creationTimestamp")));
    match p {
        Pod => {
            let total = arr(obj, "/spec/containers").len();
            let ready = arr(obj, "/status/containerStatuses").iter().filter(|c| c.get("ready") == Some(&json!(true))).count();
            let gates = arr(obj, "/spec/readinessGates");
            let gates = if gates.is_empty() {
                "<none>".to_string()
            } else {
                let ok = gates.iter().filter(|g| arr(obj, "/status/conditions").iter().any(|c| s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True")).count();
                format!("{ok}/{}", gates.len())
            };
            vec![
                name, json!(format!("{ready}/{total}")), json!(pod_status(obj)), json!(pod_restarts(obj)), age,
                json!(or_none(s(obj, "/status/podIP").into())), json!(or_none(s(obj, "/spec/nodeName").into())),
                json!(or_none(s(obj, "/status/nominatedNodeName").into())), json!(gates),
            ]
        }
        Node => vec![
            name, json!(node_status(obj)), json!(node_roles(obj)), age, json!(s(obj, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(obj, "InternalIP")), json!(node_address(obj, "ExternalIP")),
            json!(or_none(s(obj, "/status/nodeInfo/osImage").into())), json!(or_none(s(obj, "/status/nodeInfo/kernelVersion").into())),
            json!(or_none(s(obj, "/status/nodeInfo/containerRuntimeVersion").into())),
        ],
        Namespace => vec![name, json!(s(obj, "/status/phase")), age],
        Deployment => {
            let (c, im) = containers_images(obj, "/spec/template/spec/containers");
            vec![
                name, json!(format!("{}/{}", i(obj, "/status/readyReplicas"), i(obj, "/spec/replicas"))),
                json!(i(obj, "/status/updatedReplicas")), json!(i(obj, "/status/availableReplicas")), age, json!(c), json!(im),
                json!(selector_string(obj)),
            ]
        }
        ReplicaSet => {
            let (c, im) = containers_images(obj, "/spec/template/spec/containers");
            vec![
                name, json!(i(obj, "/spec/replicas")), json!(i(obj, "/status/replicas")), json!(i(obj, "/status/readyReplicas")), age,
                json!(c), json!(im), json!(selector_string(obj)),
            ]
        }
        StatefulSet => {
            let (c, im) = containers_images(obj, "/spec/template/spec/containers");
            vec![name, json!(format!("{}/{}", i(obj, "/status/readyReplicas"), i(obj, "/spec/replicas"))), age, json!(c), json!(im)]
        }
        DaemonSet => {
            let sel = obj.pointer("/spec/template/spec/nodeSelector").and_then(Value::as_object).map(|m| {
                let mut v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
                v.sort();
                v.join(",")
            });
            vec![
                name, json!(i(obj, "/status/desiredNumberScheduled")), json!(i(obj, "/status/currentNumberScheduled")),
                json!(i(obj, "/status/numberReady")), json!(i(obj, "/status/updatedNumberScheduled")),
                json!(i(obj, "/status/numberAvailable")), json!(or_none(sel.unwrap_or_default())), age,
            ]
        }
        Job => {
            let completions = obj.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1);
            let succeeded = i(obj, "/status/succeeded");
            let conds = arr(obj, "/status/conditions");
            let has = |t: &str| conds.iter().any(|c| s(c, "/type") == t && s(c, "/status") == "True");
            let status = if has("Complete") { "Complete" } else if has("Failed") { "Failed" } else if obj.pointer("/metadata/deletionTimestamp").is_some() { "Terminating" } else { "Running" };
            let duration = match (obj.pointer("/status/startTime").and_then(Value::as_str), obj.pointer("/status/completionTime").and_then(Value::as_str)) {
                (Some(st), end) => {
                    let st = chrono::DateTime::parse_from_rfc3339(st).ok();
                    let end = end.and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()).map(|e| e.with_timezone(&chrono::Utc)).unwrap_or_else(chrono::Utc::now);
                    st.map(|st| human_duration((end - st.with_timezone(&chrono::Utc)).num_seconds())).unwrap_or_default()
                }
                _ => String::new(),
            };
            vec![name, json!(status), json!(format!("{succeeded}/{completions}")), json!(duration), age]
        }
        Service => vec![
            name, json!(s(obj, "/spec/type")), json!(or_none(s(obj, "/spec/clusterIP").into())), json!(external_ip(obj)),
            json!(service_ports(obj)), age, json!(or_none({
                let mut v: Vec<String> = obj.pointer("/spec/selector").and_then(Value::as_object).map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect()).unwrap_or_default();
                v.sort();
                v.join(",")
            })),
        ],
        Endpoints => {
            let mut eps = Vec::new();
            for subset in arr(obj, "/subsets") {
                for a in arr(subset, "/addresses") {
                    let ports = arr(subset, "/ports");
                    if ports.is_empty() {
                        eps.push(s(a, "/ip").to_string());
                    }
                    for p in ports {
                        eps.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
                    }
                }
            }
            vec![name, json!(or_none(eps.join(","))), age]
        }
        Event => {
            let last = obj.get("lastTimestamp").filter(|v| !v.is_null()).or_else(|| obj.get("eventTime")).or_else(|| obj.pointer("/metadata/creationTimestamp"));
            let object = format!("{}/{}", s(obj, "/involvedObject/kind").to_lowercase(), s(obj, "/involvedObject/name"));
            vec![json!(age_of(last)), json!(s(obj, "/type")), json!(s(obj, "/reason")), json!(object), json!(s(obj, "/message"))]
        }
        ConfigMap => {
            let n = obj.get("data").and_then(Value::as_object).map_or(0, |m| m.len()) + obj.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name, json!(n), age]
        }
        Secret => {
            let n = obj.get("data").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name, json!(s(obj, "/type")), json!(n), age]
        }
        Lease => vec![name, json!(s(obj, "/spec/holderIdentity")), age],
        ServiceAccount => vec![name, json!(arr(obj, "/secrets").len()), age],
        PriorityClass => vec![
            name, json!(i(obj, "/value")), json!(obj.get("globalDefault") == Some(&json!(true))), age,
            json!(obj.get("preemptionPolicy").and_then(Value::as_str).unwrap_or("PreemptLowerPriority")),
        ],
        Default => vec![name, age],
    }
}

/// The `PartialObjectMetadata` a row carries (kubectl uses it for -A and --show-labels).
pub fn partial_metadata(obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

pub fn row(p: Printer, obj: &Value, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => partial_metadata(obj),
    };
    json!({"cells": cells(p, obj), "object": object})
}

/// A whole Table for a list (or for one object, with one row).
pub fn table<'a>(p: Printer, objs: impl Iterator<Item = &'a Value>, rv: &str, cont: Option<&str>, include_object: &str, with_columns: bool) -> Value {
    let rows: Vec<Value> = objs.map(|o| row(p, o, include_object)).collect();
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = column_definitions(p);
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
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
        assert_eq!(
            node_status(&json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
            "Ready,SchedulingDisabled"
        );
    }

    #[test]
    fn human_durations_match_upstream() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn pod_columns() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let c = cells(Printer::Pod, &pod);
        assert_eq!(c[0], "web");
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "2");
        assert_eq!(c[5], "10.0.0.5");
        assert_eq!(c[6], "n1");
        let defs = column_definitions(Printer::Pod);
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[5]["name"], "IP");
        assert_eq!(defs[5]["priority"], 1);
    }

    #[test]
    fn terminating_pod() {
        let pod = json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&pod), "Terminating");
    }

    #[test]
    fn node_ready_column() {
        let node = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}, "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(cells(Printer::Node, &node)[1], "Ready,SchedulingDisabled");
        assert_eq!(cells(Printer::Node, &node)[2], "control-plane");
    }
}
