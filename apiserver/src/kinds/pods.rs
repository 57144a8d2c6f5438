//! Pods (pkg/registry/core/pod/strategy.go): status reset with the QoS class on create, the
//! graceful delete that waits for the kubelet, and upstream's printPod columns.

use crate::registry::strategy::Strategy;
use crate::table::{arr, human_duration, i, or_none, s, Column};
use crate::types::FieldCause;
use crate::validation::{defaults, field::Path, pod};
use serde_json::{json, Value};

pub struct Pods;

impl Strategy for Pods {
    fn default(&self, obj: &mut Value) {
        defaults::pod(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let qos = apimachinery::qos::pod_qos_class_json(obj.get("spec").unwrap_or(&Value::Null)).as_str();
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        pod::validate_pod_spec(obj.get("spec"), &Path::new("spec"))
    }

    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        pod::validate_pod_spec_update(obj, old)
    }

    /// CheckGracefulDelete: a pod bound to a node that has not finished waits for the kubelet;
    /// any other goes at once.
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let unbound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty);
        let finished = obj.pointer("/status/phase").and_then(Value::as_str).is_some_and(apimachinery::phase::is_pod_phase_terminal);
        if unbound || finished {
            return 0;
        }
        let default = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
        // The kubelet's own final delete (grace 0) arrives once the pod carries a deletion timestamp.
        requested.unwrap_or(default).max(0)
    }

    fn return_deleted_object(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Ready", "string", 0), Column("Status", "string", 0), Column("Restarts", "string", 0),
            Column("Age", "string", 0), Column("IP", "string", 1), Column("Node", "string", 1), Column("Nominated Node", "string", 1),
            Column("Readiness Gates", "string", 1),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let total = arr(obj, "/spec/containers").len();
        let ready = arr(obj, "/status/containerStatuses").iter().filter(|c| c.get("ready") == Some(&json!(true))).count();
        let gates = arr(obj, "/spec/readinessGates");
        let gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let ok = gates.iter().filter(|g| arr(obj, "/status/conditions").iter().any(|c| s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True")).count();
            format!("{ok}/{}", gates.len())
        };
        cells.extend([
            json!(format!("{ready}/{total}")), json!(pod_status(obj)), json!(pod_restarts(obj)), age,
            json!(or_none(s(obj, "/status/podIP").into())), json!(or_none(s(obj, "/spec/nodeName").into())),
            json!(or_none(s(obj, "/status/nominatedNodeName").into())), json!(gates),
        ]);
        cells
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategy::{prepare_for_create, validate_create};
    use crate::resources::lookup;

    #[test]
    fn defaulted_busybox_pod_is_valid_and_bad_name_is_not() {
        let pods = lookup("", "v1", "pods").unwrap();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb", "namespace": "default"},
                             "spec": {"containers": [{"name": "bb", "image": "busybox", "command": ["sleep", "3600"]}]}});
        Pods.default(&mut pod);
        assert!(validate_create(pods, &pod).is_empty(), "{:?}", validate_create(pods, &pod));
        pod["metadata"]["name"] = json!("Foo_Bar");
        assert_eq!(validate_create(pods, &pod)[0].field, "metadata.name");
    }

    #[test]
    fn pod_create_resets_status() {
        let pods = lookup("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Running"}});
        prepare_for_create(pods, &mut pod);
        assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
    }

    #[test]
    fn pod_grace_period_rules() {
        let unbound = json!({"spec": {}});
        assert_eq!(Pods.grace_period(&unbound, None), 0);
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 10}, "status": {"phase": "Running"}});
        assert_eq!(Pods.grace_period(&bound, None), 10);
        assert_eq!(Pods.grace_period(&bound, Some(0)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(Pods.grace_period(&done, None), 0);
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
        let c = Pods.cells(&pod);
        assert_eq!(c[0], "web");
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "2");
        assert_eq!(c[5], "10.0.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c.len(), Pods.columns().len());
        let defs = crate::table::column_definitions(&Pods);
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[5]["name"], "IP");
        assert_eq!(defs[5]["priority"], 1);
    }

    #[test]
    fn terminating_pod() {
        let pod = json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&pod), "Terminating");
    }
}
