//! Workload validation shared by Deployment, ReplicaSet, DaemonSet, StatefulSet (and the
//! selector/template rules that Job reuses).

use super::field::{self, Path};
use super::meta::{
    selector_is_empty, selector_matches, show_selector, validate_label_selector, validate_labels,
};
use super::pod::validate_pod_spec;
use crate::types::FieldCause;
use serde_json::Value;

/// The selector must be set, non-empty and must select the template's labels.
pub fn validate_selector_and_template(spec: &Value, kind_word: &str, errs: &mut Vec<FieldCause>) {
    let sp = Path::new("spec");
    match spec.get("selector").filter(|s| s.is_object()) {
        None => errs.push(field::required(&sp.child("selector"), "")),
        Some(selector) => {
            errs.extend(validate_label_selector(selector, &sp.child("selector")));
            if selector_is_empty(selector) {
                errs.push(FieldCause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {}: empty selector is invalid for {kind_word}",
                        show_selector(selector)
                    ),
                    field: "spec.selector".into(),
                });
            } else {
                let labels = spec
                    .pointer("/template/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null);
                if !selector_matches(selector, &labels) {
                    let shown = if labels.is_object() {
                        field::show(&labels)
                    } else {
                        "map[string]string(nil)".into()
                    };
                    errs.push(FieldCause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: {shown}: `selector` does not match template `labels`"
                        ),
                        field: "spec.template.metadata.labels".into(),
                    });
                }
            }
        }
    }
    let tp = sp.child("template");
    errs.extend(validate_labels(
        spec.pointer("/template/metadata/labels"),
        &tp.child("metadata").child("labels"),
    ));
    errs.extend(validate_pod_spec(
        spec.pointer("/template/spec"),
        &tp.child("spec"),
    ));
}

pub fn non_negative(spec: &Value, key: &str, errs: &mut Vec<FieldCause>) {
    if let Some(v) = spec.get(key) {
        if v.as_i64().is_none_or(|n| n < 0) {
            errs.push(field::invalid(
                &Path::new("spec").child(key),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Controllers that restart pods forever require `restartPolicy: Always` in the template.
pub fn restart_always(spec: &Value, errs: &mut Vec<FieldCause>) {
    if let Some(v) = spec.pointer("/template/spec/restartPolicy") {
        if v.as_str() != Some("Always") {
            errs.push(field::not_supported(
                &Path::new("spec.template.spec.restartPolicy"),
                v,
                &["Always"],
            ));
        }
    }
}

pub fn validate_workload(kind: &str, obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(field::required(&Path::new("spec").child("selector"), ""));
        return errs;
    };
    let word = kind.to_lowercase();
    validate_selector_and_template(spec, &word, &mut errs);
    for key in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, key, &mut errs);
    }
    restart_always(spec, &mut errs);
    if kind == "Deployment" {
        if let Some(t) = spec.pointer("/strategy/type") {
            if !t
                .as_str()
                .is_some_and(|s| s == "Recreate" || s == "RollingUpdate")
            {
                errs.push(field::not_supported(
                    &Path::new("spec.strategy.type"),
                    t,
                    &["Recreate", "RollingUpdate"],
                ));
            }
            if t.as_str() == Some("Recreate")
                && spec
                    .pointer("/strategy/rollingUpdate")
                    .is_some_and(|v| !v.is_null())
            {
                errs.push(field::forbidden(
                    &Path::new("spec.strategy.rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        if let (Some(p), Some(m)) = (
            spec.get("progressDeadlineSeconds").and_then(Value::as_i64),
            spec.get("minReadySeconds").and_then(Value::as_i64),
        ) {
            if p <= m {
                errs.push(field::invalid(
                    &Path::new("spec.progressDeadlineSeconds"),
                    &p.into(),
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
    if kind == "StatefulSet" {
        if let Some(v) = spec.get("podManagementPolicy") {
            if !v
                .as_str()
                .is_some_and(|s| s == "OrderedReady" || s == "Parallel")
            {
                errs.push(field::not_supported(
                    &Path::new("spec.podManagementPolicy"),
                    v,
                    &["OrderedReady", "Parallel"],
                ));
            }
        }
    }
    errs
}

const STS_UPDATE_MSG: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub fn validate_workload_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let (new_sel, old_sel) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if new_sel != old_sel && old_sel.is_some() {
        let shown = new_sel
            .map(show_selector)
            .unwrap_or_else(|| "v1.LabelSelector(nil)".into());
        errs.push(FieldCause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {shown}: {}", field::IMMUTABLE),
            field: "spec.selector".into(),
        });
    }
    if kind == "StatefulSet" {
        let strip = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    m.remove(k);
                }
            }
            s
        };
        if strip(new) != strip(old) {
            errs.push(field::forbidden(&Path::new("spec"), STS_UPDATE_MSG));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(selector: Value, labels: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": selector,
               "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "n", "image": "nginx"}]}}}})
    }

    #[test]
    fn selector_must_match_template_labels() {
        let errs = validate_workload(
            "Deployment",
            &deploy(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "other"}),
            ),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        assert_eq!(errs[0].message, "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`");
        assert!(validate_workload(
            "Deployment",
            &deploy(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web"})
            )
        )
        .is_empty());
    }

    #[test]
    fn missing_or_empty_selector() {
        let mut d = deploy(json!({}), json!({"app": "web"}));
        let errs = validate_workload("Deployment", &d);
        assert!(errs[0]
            .message
            .ends_with("empty selector is invalid for deployment"));
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            validate_workload("ReplicaSet", &d)[0].message,
            "Required value"
        );
    }

    #[test]
    fn negative_replicas_and_restart_policy() {
        let mut d = deploy(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let msgs: Vec<String> = validate_workload("Deployment", &d)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert!(msgs.contains(
            &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
        ));
        assert!(msgs.contains(&"spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".to_string()));
    }

    #[test]
    fn selector_is_immutable() {
        let old = deploy(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        let new = deploy(json!({"matchLabels": {"app": "x"}}), json!({"app": "x"}));
        let errs = validate_workload_update("Deployment", &new, &old);
        assert_eq!(errs[0].field, "spec.selector");
        assert!(errs[0].message.ends_with("field is immutable"));
        assert!(validate_workload_update("Deployment", &old, &old).is_empty());
    }
}
