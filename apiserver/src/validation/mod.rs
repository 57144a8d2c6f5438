//! Defaulting and validation of API objects, as upstream's strategies do on create and update.

pub mod apps;
pub mod batch;
pub mod core;
pub mod decode;
pub mod defaults;
pub mod field;
pub mod meta;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod scheduling;
pub mod strict;

use crate::types::{FieldCause, Gvk};
use meta::NameRule;
use serde_json::Value;

/// Fills in upstream's defaults (restartPolicy, dnsPolicy, imagePullPolicy, protocol, ...).
/// For a Job that already has `metadata.uid`, also generates its selector and template labels.
pub fn default_object(gvk: &Gvk, obj: &mut Value) {
    defaults::default_object(gvk, obj);
    if gvk.group == "batch" && gvk.kind == "Job" {
        // upstream generates the selector from the uid; a Job defaulted before the registry
        // assigned one gets its uid here so that selector and labels agree.
        let needs_uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if needs_uid && obj.pointer("/spec/selector").is_none_or(Value::is_null) {
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "uid".into(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
            }
        }
        batch::generate_job_selector(obj);
    }
}

/// How a kind's name is checked and whether it lives in a namespace.
fn name_rule(gvk: &Gvk) -> (NameRule, bool) {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Namespace") => (NameRule::Label, false),
        ("", "Service") => (NameRule::Dns1035, true),
        ("", "Node") | ("", "PersistentVolume") => (NameRule::Subdomain, false),
        ("scheduling.k8s.io", "PriorityClass")
        | ("storage.k8s.io", _)
        | ("networking.k8s.io", "IngressClass") => (NameRule::Subdomain, false),
        ("rbac.authorization.k8s.io", "ClusterRole")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => (NameRule::PathSegment, false),
        ("rbac.authorization.k8s.io", _) => (NameRule::PathSegment, true),
        _ => (NameRule::Subdomain, true),
    }
}

fn validate_kind(gvk: &Gvk, obj: &Value) -> Vec<FieldCause> {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Pod") => pod::validate_pod_spec(obj.get("spec"), &field::Path::new("spec")),
        ("", "PodTemplate") => pod::validate_pod_spec(
            obj.pointer("/template/spec"),
            &field::Path::new("template.spec"),
        ),
        ("", "Service") => core::validate_service(obj),
        ("", "ConfigMap") => core::validate_config_map(obj),
        ("", "Secret") => core::validate_secret(obj),
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")) => {
            apps::validate_workload(kind, obj)
        }
        ("batch", "Job") => batch::validate_job(obj),
        ("coordination.k8s.io", "Lease") => core::validate_lease(obj),
        ("scheduling.k8s.io", "PriorityClass") => scheduling::validate_priority_class(obj),
        _ => Vec::new(),
    }
}

/// Validation on create; an empty list means valid (422 Invalid otherwise).
pub fn validate_create(gvk: &Gvk, obj: &Value) -> Vec<FieldCause> {
    let (rule, namespaced) = name_rule(gvk);
    let mut errs = meta::validate_object_meta(obj, rule, namespaced);
    errs.extend(validate_kind(gvk, obj));
    errs
}

/// Validation on update, including immutable fields.
pub fn validate_update(gvk: &Gvk, obj: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = validate_create(gvk, obj);
    for key in ["name", "namespace", "uid"] {
        let (new_v, old_v) = (
            obj.pointer(&format!("/metadata/{key}")),
            old.pointer(&format!("/metadata/{key}")),
        );
        if old_v.is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            && new_v.is_some()
            && new_v != old_v
        {
            let shown = new_v.cloned().unwrap_or(Value::Null);
            errs.push(field::invalid(
                &field::Path::new("metadata").child(key),
                &shown,
                field::IMMUTABLE,
            ));
        }
    }
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Pod") => errs.extend(pod::validate_pod_spec_update(obj, old)),
        ("", "Service") => errs.extend(core::validate_service_update(obj, old)),
        ("", kind @ ("ConfigMap" | "Secret")) => {
            errs.extend(core::validate_data_update(kind, obj, old))
        }
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")) => {
            errs.extend(apps::validate_workload_update(kind, obj, old))
        }
        ("batch", "Job") => errs.extend(batch::validate_job_update(obj, old)),
        ("scheduling.k8s.io", "PriorityClass") => errs.extend(scheduling::validate_priority_class_update(obj, old)),
        _ => {}
    }
    errs
}

/// Unknown and duplicate fields of a raw JSON body, in document order, as upstream's strict
/// decoder words them: `unknown field "spec.foo"`, `duplicate field "spec.replicas"`. Join them
/// with ", " after `strict decoding error: ` for the 400 (Strict) or send each as a warning (Warn).
pub fn strict_decoding_errors(gvk: &Gvk, body: &[u8]) -> Vec<String> {
    strict::strict_decoding_errors(gvk, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaulted_busybox_pod_is_valid_and_bad_name_is_not() {
        let gvk = Gvk::new("", "v1", "Pod");
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb", "namespace": "default"},
                             "spec": {"containers": [{"name": "bb", "image": "busybox", "command": ["sleep", "3600"]}]}});
        default_object(&gvk, &mut pod);
        assert!(
            validate_create(&gvk, &pod).is_empty(),
            "{:?}",
            validate_create(&gvk, &pod)
        );
        assert!(decode::decode(&gvk, &mut pod.clone()).unwrap().is_empty());
        pod["metadata"]["name"] = json!("Foo_Bar");
        let errs = validate_create(&gvk, &pod);
        assert_eq!(errs[0].field, "metadata.name");
    }

    #[test]
    fn namespaces_use_label_names_and_services_dns1035() {
        let errs = validate_create(
            &Gvk::new("", "v1", "Namespace"),
            &json!({"metadata": {"name": "a.b"}}),
        );
        assert!(errs[0].message.contains("RFC 1123 label"));
        let errs = validate_create(
            &Gvk::new("", "v1", "Service"),
            &json!({"metadata": {"name": "1svc"}, "spec": {"clusterIP": "None"}}),
        );
        assert!(errs[0].message.contains("DNS-1035 label"));
    }

    #[test]
    fn update_keeps_name_immutable_and_pod_spec_rules() {
        let gvk = Gvk::new("", "v1", "Pod");
        let old = json!({"metadata": {"name": "a", "uid": "1"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let mut new = old.clone();
        new["metadata"]["uid"] = json!("2");
        let errs = validate_update(&gvk, &new, &old);
        assert_eq!(errs[0].field, "metadata.uid");
    }

    #[test]
    fn job_without_uid_still_gets_a_matching_selector() {
        let gvk = Gvk::new("batch", "v1", "Job");
        let mut job = json!({"metadata": {"name": "pi"},
                             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "busybox"}]}}}});
        default_object(&gvk, &mut job);
        let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid.as_str()
        );
        assert!(validate_create(&gvk, &job).is_empty());
    }

    #[test]
    fn job_default_then_validate() {
        let gvk = Gvk::new("batch", "v1", "Job");
        let mut job = json!({"metadata": {"name": "pi", "uid": "abc"},
                             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "busybox"}]}}}});
        default_object(&gvk, &mut job);
        assert!(
            validate_create(&gvk, &job).is_empty(),
            "{:?}",
            validate_create(&gvk, &job)
        );
    }
}
