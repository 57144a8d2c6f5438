//! Validation of the core kinds other than Pod: Service, ConfigMap, Secret, Lease.

use super::field::{self, Path};
use super::meta::validate_labels;
use super::names;
use crate::types::FieldCause;
use base64::Engine;
use serde_json::Value;
use std::collections::HashSet;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_DATA_SIZE: usize = 1024 * 1024;

pub fn validate_service(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let ty = spec
        .get("type")
        .cloned()
        .unwrap_or(Value::String("ClusterIP".into()));
    if !ty.as_str().is_some_and(|t| SERVICE_TYPES.contains(&t)) {
        errs.push(field::not_supported(&sp.child("type"), &ty, SERVICE_TYPES));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let external_name = ty.as_str() == Some("ExternalName");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && !headless && !external_name {
        errs.push(field::required(&sp.child("ports"), ""));
    }
    if external_name
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errs.push(field::required(&sp.child("externalName"), ""));
    }
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        match port
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None if ports.len() > 1 => errs.push(field::required(&pp.child("name"), "")),
            None => {}
            Some(name) => {
                for msg in names::dns1123_label(name) {
                    errs.push(field::invalid(
                        &pp.child("name"),
                        &Value::String(name.into()),
                        &msg,
                    ));
                }
                if !seen.insert(name.to_string()) {
                    errs.push(field::duplicate(
                        &pp.child("name"),
                        &Value::String(name.into()),
                    ));
                }
            }
        }
        match port.get("port") {
            None | Some(Value::Null) => errs.push(field::required(&pp.child("port"), "")),
            Some(v) if !v.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {
                errs.push(field::invalid(
                    &pp.child("port"),
                    v,
                    "must be between 1 and 65535, inclusive",
                ))
            }
            Some(_) => {}
        }
        if let Some(v) = port.get("protocol") {
            if !v.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) {
                errs.push(field::not_supported(&pp.child("protocol"), v, PROTOCOLS));
            }
        }
        match port.get("targetPort") {
            Some(v @ Value::Number(_)) if !v.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {
                errs.push(field::invalid(
                    &pp.child("targetPort"),
                    v,
                    "must be between 1 and 65535, inclusive",
                ))
            }
            Some(v @ Value::String(s)) => {
                for msg in names::port_name(s) {
                    errs.push(field::invalid(&pp.child("targetPort"), v, &msg));
                }
            }
            _ => {}
        }
    }
    if let Some(v) = spec.get("sessionAffinity") {
        if !matches!(v.as_str(), Some("ClientIP") | Some("None")) {
            errs.push(field::not_supported(
                &sp.child("sessionAffinity"),
                v,
                &["ClientIP", "None"],
            ));
        }
    }
    errs.extend(validate_labels(spec.get("selector"), &sp.child("selector")));
    errs
}

pub fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldCause> {
    let old_ip = old
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_ip = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    let changes_type = new.pointer("/spec/type") != old.pointer("/spec/type");
    if !old_ip.is_empty() && old_ip != new_ip && !changes_type {
        return vec![field::invalid(
            &Path::new("spec.clusterIPs[0]"),
            &Value::String(new_ip.into()),
            "may not change once set",
        )];
    }
    Vec::new()
}

fn validate_keys(obj: &Value, keys: &[&str], errs: &mut Vec<FieldCause>) -> usize {
    let mut size = 0;
    let mut seen = HashSet::new();
    for section in keys {
        let Some(map) = obj.get(*section).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            let p = Path::new(section).key(k);
            for msg in names::config_key(k) {
                errs.push(field::invalid(&p, &Value::String(k.clone()), &msg));
            }
            if !seen.insert(k.clone()) {
                errs.push(field::invalid(
                    &p,
                    &Value::String(k.clone()),
                    "duplicate of key present in binaryData",
                ));
            }
            size += v.as_str().map_or(0, str::len);
        }
    }
    size
}

pub fn validate_config_map(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let size = validate_keys(obj, &["data", "binaryData"], &mut errs);
    if size > MAX_DATA_SIZE {
        errs.push(FieldCause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: must have at most {MAX_DATA_SIZE} bytes"),
            field: "[]".into(),
        });
    }
    errs
}

pub fn validate_secret(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let size = validate_keys(obj, &["data"], &mut errs);
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let decodes = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !decodes && !v.is_null() {
                errs.push(field::invalid(
                    &Path::new("data").key(k),
                    v,
                    "illegal base64 data",
                ));
            }
        }
    }
    if size > MAX_DATA_SIZE {
        errs.push(FieldCause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: must have at most {MAX_DATA_SIZE} bytes"),
            field: "data".into(),
        });
    }
    if obj.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token")
        && obj
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .is_none()
    {
        errs.push(field::required(
            &Path::new("metadata.annotations[kubernetes.io/service-account.name]"),
            "",
        ));
    }
    errs
}

/// ConfigMaps and Secrets marked immutable keep their data; Secrets keep their type.
pub fn validate_data_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if kind == "Secret" && new.get("type") != old.get("type") {
        let shown = new.get("type").cloned().unwrap_or(Value::Null);
        errs.push(field::invalid(&Path::new("type"), &shown, field::IMMUTABLE));
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(field::forbidden(
                &Path::new("immutable"),
                "field is immutable when `immutable` is set",
            ));
        }
        for key in ["data", "binaryData"] {
            if new.get(key) != old.get(key) {
                errs.push(field::forbidden(
                    &Path::new(key),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

pub fn validate_lease(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if let Some(v) = obj.pointer("/spec/leaseDurationSeconds") {
        if v.as_i64().is_none_or(|n| n <= 0) {
            errs.push(field::invalid(
                &Path::new("spec.leaseDurationSeconds"),
                v,
                "must be greater than 0",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services() {
        assert!(validate_service(
            &json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}})
        )
        .is_empty());
        assert_eq!(
            validate_service(&json!({"spec": {}}))[0].field,
            "spec.ports"
        );
        let two = json!({"spec": {"ports": [{"name": "a", "port": 80}, {"port": 81}]}});
        assert_eq!(validate_service(&two)[0].field, "spec.ports[1].name");
        let bad = json!({"spec": {"type": "Foo", "ports": [{"port": 70000}]}});
        let msgs: Vec<String> = validate_service(&bad)
            .iter()
            .map(|e| e.message.clone())
            .collect();
        assert!(msgs[0].starts_with("Unsupported value: \"Foo\""));
        assert_eq!(
            msgs[1],
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert!(validate_service(&json!({"spec": {"clusterIP": "None"}})).is_empty());
    }

    #[test]
    fn config_maps_and_secrets() {
        assert!(validate_config_map(&json!({"data": {"key.name": "v"}})).is_empty());
        let errs = validate_config_map(&json!({"data": {"bad key": "v"}}));
        assert_eq!(errs[0].field, "data[bad key]");
        assert!(validate_secret(&json!({"data": {"pw": "aGVsbG8="}})).is_empty());
        assert_eq!(
            validate_secret(&json!({"data": {"pw": "!!"}}))[0].field,
            "data[pw]"
        );
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let new = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            validate_data_update("ConfigMap", &new, &old)[0].field,
            "data"
        );
    }
}
