//! Per-kind rules (upstream's RESTCreateStrategy/RESTUpdateStrategy/RESTGracefulDeleteStrategy):
//! what create resets, which half of an object the main resource and the status subresource
//! may change, when generation moves, and how long a delete is graceful. Pure functions.

use crate::resources::{ResourceRow, StrategyKind};
use serde_json::{json, Map, Value};

/// Which part of an object an update is allowed to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
    /// Namespace `finalize`: only spec.finalizers.
    Finalize,
    /// pods/binding: the server itself sets spec.nodeName and the PodScheduled condition,
    /// which update validation would refuse from a client.
    Binding,
}

fn has_status_subresource(row: &ResourceRow) -> bool {
    row.has_subresource("status")
}

fn bumps_generation(row: &ResourceRow) -> bool {
    matches!(row.strategy, StrategyKind::Workload)
}

/// Upstream's PodQOSClass, simplified to requests/limits of cpu and memory.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for res in ["cpu", "memory"] {
            let r = req.and_then(|m| m.get(res)).or_else(|| lim.and_then(|m| m.get(res)));
            let l = lim.and_then(|m| m.get(res));
            if r.is_some() || l.is_some() {
                any = true;
            }
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just set to an object")
}

/// What create does to an object before validation: reset status, start generation.
pub fn prepare_for_create(row: &ResourceRow, obj: &mut Value) {
    match row.strategy {
        StrategyKind::Pod => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        StrategyKind::Namespace => {
            let spec = ensure_obj(obj, "spec");
            if !spec.contains_key("finalizers") {
                spec.insert("finalizers".into(), json!(["kubernetes"]));
            }
            obj["status"] = json!({"phase": "Active"});
        }
        StrategyKind::Workload => {
            obj["status"] = json!({});
        }
        StrategyKind::Service => {
            if !obj.get("status").is_some_and(Value::is_object) {
                obj["status"] = json!({"loadBalancer": {}});
            }
        }
        StrategyKind::Node | StrategyKind::Generic | StrategyKind::Data => {}
    }
    if bumps_generation(row) {
        ensure_obj(obj, "metadata").insert("generation".into(), json!(1));
    }
}

/// Fields of metadata that only the server sets; a client's update never changes them.
const SERVER_METADATA: &[&str] =
    &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name"];

/// Merges an update of `part` into `old`: the main resource ignores status, the status
/// subresource ignores everything but status (and labels/annotations, as upstream allows
/// for nodes), and server-owned metadata never changes. Bumps generation on spec changes.
pub fn prepare_for_update(row: &ResourceRow, part: Part, old: &Value, mut new: Value) -> Value {
    match part {
        Part::Main => {
            if has_status_subresource(row) {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
        }
        Part::Status => {
            let mut merged = old.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            // Keep the client's resourceVersion so it still acts as a precondition.
            if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
                ensure_obj(&mut merged, "metadata").insert("resourceVersion".into(), rv);
            }
            if let Some(uid) = new.pointer("/metadata/uid").cloned() {
                ensure_obj(&mut merged, "metadata").insert("uid".into(), uid);
            }
            new = merged;
        }
        Part::Binding => {}
        Part::Finalize => {
            let mut merged = old.clone();
            let fin = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            ensure_obj(&mut merged, "spec").insert("finalizers".into(), fin);
            new = merged;
        }
    }
    if let (Some(old_meta), Some(new_meta)) = (old.get("metadata").and_then(Value::as_object), new.get_mut("metadata").and_then(Value::as_object_mut)) {
        for k in SERVER_METADATA {
            // The UID stays as the client sent it: a mismatch is a precondition failure, checked later.
            if *k == "uid" && new_meta.contains_key("uid") {
                continue;
            }
            match old_meta.get(*k) {
                Some(v) => {
                    new_meta.insert((*k).into(), v.clone());
                }
                None => {
                    new_meta.remove(*k);
                }
            }
        }
    }
    if bumps_generation(row) && part == Part::Main {
        let spec_changed = old.get("spec") != new.get("spec");
        let gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let gen = if spec_changed { gen + 1 } else { gen };
        ensure_obj(&mut new, "metadata").insert("generation".into(), json!(gen));
    }
    new
}

/// The grace period a delete gets (upstream CheckGracefulDelete): pods bound to a node that
/// have not finished wait for the kubelet; everything else goes at once.
pub fn grace_period(row: &ResourceRow, obj: &Value, requested: Option<i64>) -> i64 {
    if row.strategy != StrategyKind::Pod {
        return 0;
    }
    let unbound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty);
    let finished = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    if unbound || finished {
        return 0;
    }
    let default = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    // Upstream turns a requested 0 into 1 for bound pods unless forced; the kubelet's own
    // final delete (grace 0) arrives once the pod already carries a deletion timestamp.
    requested.unwrap_or(default).max(0)
}

/// The finalizer a propagation policy asks for (upstream: orphan / foregroundDeletion).
pub fn propagation_finalizer(policy: Option<&str>) -> Option<&'static str> {
    match policy {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// For namespaces, finalization also needs spec.finalizers to be empty.
pub fn blocks_deletion(row: &ResourceRow, obj: &Value) -> bool {
    if !finalizers(obj).is_empty() {
        return true;
    }
    row.strategy == StrategyKind::Namespace
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn pod_create_resets_status() {
        let pods = lookup("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Running"}});
        prepare_for_create(pods, &mut pod);
        assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
    }

    #[test]
    fn main_update_ignores_status_and_status_update_ignores_spec() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 1, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let main = prepare_for_update(deploy, Part::Main, &old, new.clone());
        assert_eq!(main["spec"]["replicas"], 3);
        assert_eq!(main["status"]["replicas"], 1);
        assert_eq!(main["metadata"]["generation"], 2);
        assert_eq!(main["metadata"]["uid"], "u");
        let status = prepare_for_update(deploy, Part::Status, &old, new);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 9);
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn metadata_only_change_keeps_generation() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 4}, "spec": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        assert_eq!(prepare_for_update(deploy, Part::Main, &old, new)["metadata"]["generation"], 4);
    }

    #[test]
    fn pod_grace_period_rules() {
        let pods = lookup("", "v1", "pods").unwrap();
        let unbound = json!({"spec": {}});
        assert_eq!(grace_period(pods, &unbound, None), 0);
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 10}, "status": {"phase": "Running"}});
        assert_eq!(grace_period(pods, &bound, None), 10);
        assert_eq!(grace_period(pods, &bound, Some(0)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(grace_period(pods, &done, None), 0);
        let cms = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(grace_period(cms, &bound, Some(30)), 0);
    }

    #[test]
    fn qos_classes() {
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
