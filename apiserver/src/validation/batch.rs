//! Job validation and defaulting of its generated selector.

use super::apps::validate_selector_and_template;
use super::field::{self, Path};
use crate::types::FieldCause;
use serde_json::{json, Value};

/// Upstream's job strategy generates the selector from the job's uid unless
/// `spec.manualSelector` is set; this needs the uid, so it runs once the uid is assigned.
pub fn generate_job_selector(obj: &mut Value) {
    let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (Some(uid), false) = (uid, manual) else {
        return;
    };
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // Like upstream's generateSelector, only what is missing is added, so that running it again
    // (on update) changes nothing.
    if !spec.get("selector").is_some_and(Value::is_object) {
        spec.insert("selector".into(), json!({}));
    }
    if let Some(selector) = spec.get_mut("selector").and_then(Value::as_object_mut) {
        if !selector.get("matchLabels").is_some_and(Value::is_object) {
            selector.insert("matchLabels".into(), json!({}));
        }
        if let Some(ml) = selector
            .get_mut("matchLabels")
            .and_then(Value::as_object_mut)
        {
            ml.entry("batch.kubernetes.io/controller-uid")
                .or_insert(json!(uid));
        }
    }
    let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) else {
        return;
    };
    if template.get("metadata").is_none_or(|m| !m.is_object()) {
        template.insert("metadata".into(), json!({}));
    }
    let Some(meta) = template.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if meta.get("labels").is_none_or(|l| !l.is_object()) {
        meta.insert("labels".into(), json!({}));
    }
    let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
        labels.entry(key).or_insert(json!(uid));
    }
    if let Some(name) = name {
        for key in ["batch.kubernetes.io/job-name", "job-name"] {
            labels.entry(key).or_insert(json!(name));
        }
    }
}

pub fn validate_job(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(field::required(&sp.child("template"), ""));
        return errs;
    };
    validate_selector_and_template(spec, "job", &mut errs);
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
            let ok = v.as_i64().is_some_and(|n| {
                if key == "activeDeadlineSeconds" {
                    n > 0
                } else {
                    n >= 0
                }
            });
            if !ok {
                let msg = if key == "activeDeadlineSeconds" {
                    "must be greater than 0"
                } else {
                    "must be greater than or equal to 0"
                };
                errs.push(field::invalid(&sp.child(key), v, msg));
            }
        }
    }
    match spec.pointer("/template/spec/restartPolicy") {
        Some(v) if matches!(v.as_str(), Some("OnFailure") | Some("Never")) => {}
        _ => errs.push(field::required(
            &Path::new("spec.template.spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        )),
    }
    if let Some(v) = spec.get("completionMode") {
        if !matches!(v.as_str(), Some("NonIndexed") | Some("Indexed")) {
            errs.push(field::not_supported(
                &sp.child("completionMode"),
                v,
                &["NonIndexed", "Indexed"],
            ));
        }
    }
    errs
}

pub fn validate_job_update(new: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    for key in [
        "selector",
        "completions",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
    ] {
        let (n, o) = (
            new.pointer(&format!("/spec/{key}")),
            old.pointer(&format!("/spec/{key}")),
        );
        if n != o {
            let shown = n.cloned().unwrap_or(Value::Null);
            errs.push(field::invalid(
                &Path::new("spec").child(key),
                &shown,
                field::IMMUTABLE,
            ));
        }
    }
    let suspended = old.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    if !suspended && new.pointer("/spec/template") != old.pointer("/spec/template") {
        let shown = new
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        errs.push(field::invalid(
            &Path::new("spec.template"),
            &shown,
            field::IMMUTABLE,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({"metadata": {"name": "pi", "uid": "u1"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "busybox"}]}}}})
    }

    #[test]
    fn generated_selector_matches_template() {
        let mut j = job();
        generate_job_selector(&mut j);
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert!(validate_job(&j).is_empty(), "{:?}", validate_job(&j));
    }

    #[test]
    fn generating_again_with_another_uid_changes_nothing() {
        let mut j = job();
        generate_job_selector(&mut j);
        let once = j.clone();
        j["metadata"]["uid"] = json!("u2");
        generate_job_selector(&mut j);
        j["metadata"]["uid"] = json!("u1");
        assert_eq!(j, once);
        assert!(validate_job_update(&j, &once).is_empty());
    }

    #[test]
    fn restart_policy_always_is_refused() {
        let mut j = job();
        generate_job_selector(&mut j);
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let errs = validate_job(&j);
        assert_eq!(errs[0].field, "spec.template.spec.restartPolicy");
        assert_eq!(
            errs[0].message,
            "Required value: valid values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn completions_are_immutable() {
        let old = json!({"spec": {"completions": 1}});
        let new = json!({"spec": {"completions": 3}});
        let errs = validate_job_update(&new, &old);
        assert_eq!(errs[0].message, "Invalid value: 3: field is immutable");
    }
}
