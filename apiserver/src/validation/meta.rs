//! ObjectMeta validation (upstream apimachinery `ValidateObjectMeta`) and label selectors.

use super::field::{self, Path};
use super::names;
use crate::types::FieldCause;
use serde_json::Value;

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Which name syntax a kind's `metadata.name` must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// Names with free syntax apart from path-segment rules (e.g. RBAC objects).
    PathSegment,
}

fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::dns1123_subdomain(name),
        NameRule::Label => names::dns1123_label(name),
        NameRule::Dns1035 => names::dns1035_label(name),
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                vec![format!("may not be '{name}'")]
            } else if name.contains('/') || name.contains('%') {
                vec!["may not contain '/'".into()]
            } else {
                Vec::new()
            }
        }
    }
}

pub fn validate_object_meta(obj: &Value, rule: NameRule, namespaced: bool) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let path = Path::new("metadata");
    let meta = obj.get("metadata");
    let Some(meta) = meta.filter(|m| m.is_object()) else {
        errs.push(field::required(
            &path.child("name"),
            "name or generateName is required",
        ));
        return errs;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && generate.is_empty() {
        errs.push(field::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    }
    if !name.is_empty() {
        for msg in name_errors(rule, name) {
            errs.push(field::invalid(
                &path.child("name"),
                &Value::String(name.into()),
                &msg,
            ));
        }
    }
    if !generate.is_empty() && name.is_empty() {
        // upstream validates the prefix as a name with the trailing '-' removed.
        let trimmed = generate.trim_end_matches('-');
        let prefix_ok = trimmed.is_empty() || name_errors(rule, trimmed).is_empty();
        if !prefix_ok {
            for msg in name_errors(rule, trimmed) {
                errs.push(field::invalid(
                    &path.child("generateName"),
                    &Value::String(generate.into()),
                    &msg,
                ));
            }
        }
    }
    if namespaced {
        if let Some(ns) = meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            for msg in names::dns1123_label(ns) {
                errs.push(field::invalid(
                    &path.child("namespace"),
                    &Value::String(ns.into()),
                    &msg,
                ));
            }
        }
    }
    errs.extend(validate_labels(meta.get("labels"), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &path.child("annotations"),
    ));
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in finalizers.iter().enumerate() {
            let s = f.as_str().unwrap_or("");
            for msg in names::qualified_name(s) {
                errs.push(field::invalid(&path.child("finalizers").index(i), f, &msg));
            }
        }
    }
    errs
}

pub fn validate_labels(labels: Option<&Value>, path: &Path) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let Some(labels) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in labels {
        for msg in names::qualified_name(k) {
            errs.push(field::invalid(path, &Value::String(k.clone()), &msg));
        }
        match v.as_str() {
            Some(s) => {
                for msg in names::label_value(s) {
                    errs.push(field::invalid(&path.key(k), v, &msg));
                }
            }
            None if v.is_null() => {}
            None => errs.push(field::invalid(
                &path.key(k),
                v,
                "label values must be strings",
            )),
        }
    }
    errs
}

pub fn validate_annotations(annotations: Option<&Value>, path: &Path) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in map {
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(field::invalid(path, &Value::String(k.clone()), &msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldCause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
            field: path.as_str().into(),
        });
    }
    errs
}

pub fn validate_label_selector(selector: &Value, path: &Path) -> Vec<FieldCause> {
    let mut errs = validate_labels(selector.get("matchLabels"), &path.child("matchLabels"));
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for (i, e) in exprs.iter().enumerate() {
            let p = path.child("matchExpressions").index(i);
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            for msg in names::qualified_name(key) {
                errs.push(field::invalid(
                    &p.child("key"),
                    &Value::String(key.into()),
                    &msg,
                ));
            }
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let op = e.get("operator").cloned().unwrap_or(Value::Null);
            match op.as_str() {
                Some("In") | Some("NotIn") if values == 0 => errs.push(field::required(
                    &p.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                )),
                Some("Exists") | Some("DoesNotExist") if values > 0 => errs.push(field::forbidden(
                    &p.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
                Some("In") | Some("NotIn") | Some("Exists") | Some("DoesNotExist") => {}
                _ => errs.push(field::invalid(
                    &p.child("operator"),
                    &op,
                    "not a valid selector operator",
                )),
            }
        }
    }
    errs
}

/// Does a LabelSelector select these labels? An empty selector selects everything; one that
/// does not parse (an unknown operator) selects nothing.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let Ok(selector) = serde_json::from_value::<LabelSelector>(selector.clone()) else { return false };
    let empty = serde_json::Map::new();
    let labels = labels.as_object().unwrap_or(&empty);
    apimachinery::labels::label_selector_matches(&selector, labels).unwrap_or(false)
}

/// True when a selector has neither matchLabels nor matchExpressions.
pub fn selector_is_empty(selector: &Value) -> bool {
    let empty = |k: &str| {
        selector.get(k).is_none_or(|v| {
            v.as_object().is_some_and(|m| m.is_empty())
                || v.as_array().is_some_and(|a| a.is_empty())
                || v.is_null()
        })
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// A LabelSelector as Go's `%#v` prints it in upstream's messages.
pub fn show_selector(selector: &Value) -> String {
    let labels = selector
        .get("matchLabels")
        .map(field::show)
        .filter(|s| s.starts_with("map"))
        .unwrap_or_else(|| "map[string]string(nil)".into());
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_required_and_checked() {
        let errs = validate_object_meta(&json!({"metadata": {}}), NameRule::Subdomain, true);
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(
            errs[0].message,
            "Required value: name or generateName is required"
        );
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "Foo_Bar"}}),
            NameRule::Subdomain,
            true,
        );
        assert_eq!(errs[0].reason, "FieldValueInvalid");
        assert!(errs[0].message.starts_with(
            "Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of"
        ));
        assert!(validate_object_meta(
            &json!({"metadata": {"generateName": "web-"}}),
            NameRule::Subdomain,
            true
        )
        .is_empty());
        assert!(!validate_object_meta(
            &json!({"metadata": {"generateName": "Web_"}}),
            NameRule::Subdomain,
            true
        )
        .is_empty());
    }

    #[test]
    fn labels_and_annotations() {
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "a", "labels": {"bad key!": "x", "ok": "-bad"}}}),
            NameRule::Subdomain,
            true,
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.labels", "metadata.labels[ok]"]);
        let big = "x".repeat(300 * 1024);
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "a", "annotations": {"a": big}}}),
            NameRule::Subdomain,
            true,
        );
        assert_eq!(errs[0].reason, "FieldValueTooLong");
    }

    #[test]
    fn selectors() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]});
        assert!(selector_matches(&sel, &json!({"app": "web", "tier": "a"})));
        assert!(!selector_matches(&sel, &json!({"app": "web"})));
        assert!(selector_is_empty(&json!({})));
        let bad = json!({"matchExpressions": [{"key": "k", "operator": "In"}]});
        assert_eq!(
            validate_label_selector(&bad, &Path::new("spec.selector"))[0].field,
            "spec.selector.matchExpressions[0].values"
        );
    }
}
