//! Pod spec validation (upstream pkg/apis/core/validation `ValidatePodSpec`) and the pod update
//! rules.

use super::field::{self, Path};
use super::names;
use super::quantity::{Quantity, QUANTITY_REGEX_MSG};
use crate::types::FieldCause;
use serde_json::Value;
use std::collections::HashSet;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Validates a pod spec at `path` (`spec` for pods, `spec.template.spec` for workloads).
pub fn validate_pod_spec(spec: Option<&Value>, path: &Path) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        errs.push(field::required(&path.child("containers"), ""));
        return errs;
    };
    let volumes = validate_volumes(spec, path, &mut errs);
    let containers = items(spec, "containers");
    if containers.is_empty() {
        errs.push(field::required(&path.child("containers"), ""));
    }
    let mut seen = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in items(spec, list).iter().enumerate() {
            validate_container(
                c,
                &path.child(list).index(i),
                &volumes,
                &mut seen,
                &mut errs,
            );
        }
    }
    if let Some(v) = spec.get("restartPolicy") {
        if !v.as_str().is_some_and(|s| RESTART_POLICIES.contains(&s)) {
            errs.push(field::not_supported(
                &path.child("restartPolicy"),
                v,
                RESTART_POLICIES,
            ));
        }
    }
    if let Some(v) = spec.get("dnsPolicy") {
        if !v.as_str().is_some_and(|s| DNS_POLICIES.contains(&s)) {
            errs.push(field::not_supported(
                &path.child("dnsPolicy"),
                v,
                DNS_POLICIES,
            ));
        }
    }
    validate_dns_config(spec, path, &mut errs);
    if let Some(v) = spec.get("terminationGracePeriodSeconds") {
        if !v.is_i64() {
            errs.push(field::invalid(
                &path.child("terminationGracePeriodSeconds"),
                v,
                "must be an integer",
            ));
        }
    }
    if let Some(v) = spec.get("activeDeadlineSeconds") {
        if v.as_i64().is_none_or(|n| n <= 0) {
            errs.push(field::invalid(
                &path.child("activeDeadlineSeconds"),
                v,
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    if let Some(node) = str_at(spec, "nodeName").filter(|n| !n.is_empty()) {
        for msg in names::dns1123_subdomain(node) {
            errs.push(field::invalid(
                &path.child("nodeName"),
                &Value::String(node.into()),
                &msg,
            ));
        }
    }
    if let Some(sa) = str_at(spec, "serviceAccountName").filter(|n| !n.is_empty()) {
        for msg in names::dns1123_subdomain(sa) {
            errs.push(field::invalid(
                &path.child("serviceAccountName"),
                &Value::String(sa.into()),
                &msg,
            ));
        }
    }
    for (i, t) in items(spec, "tolerations").iter().enumerate() {
        let p = path.child("tolerations").index(i);
        match str_at(t, "operator") {
            None | Some("Equal") | Some("") => {}
            Some("Exists") => {
                if str_at(t, "value").is_some_and(|v| !v.is_empty()) {
                    errs.push(field::invalid(
                        &p.child("operator"),
                        &t["value"],
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            Some(_) => errs.push(field::not_supported(
                &p.child("operator"),
                &t["operator"],
                &["Equal", "Exists"],
            )),
        }
        if let Some(effect) = t
            .get("effect")
            .filter(|e| e.as_str().is_some_and(|s| !s.is_empty()))
        {
            let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
            if !effect.as_str().is_some_and(|s| effects.contains(&s)) {
                errs.push(field::not_supported(&p.child("effect"), effect, &effects));
            }
        }
    }
    errs
}

fn validate_volumes(spec: &Value, path: &Path, errs: &mut Vec<FieldCause>) -> HashSet<String> {
    let mut names_seen = HashSet::new();
    for (i, v) in items(spec, "volumes").iter().enumerate() {
        let p = path.child("volumes").index(i).child("name");
        match str_at(v, "name").filter(|n| !n.is_empty()) {
            None => errs.push(field::required(&p, "")),
            Some(name) => {
                for msg in names::dns1123_label(name) {
                    errs.push(field::invalid(&p, &Value::String(name.into()), &msg));
                }
                if !names_seen.insert(name.to_string()) {
                    errs.push(field::duplicate(&p, &Value::String(name.into())));
                }
            }
        }
    }
    names_seen
}

fn validate_container(
    c: &Value,
    p: &Path,
    volumes: &HashSet<String>,
    seen: &mut HashSet<String>,
    errs: &mut Vec<FieldCause>,
) {
    match str_at(c, "name").filter(|n| !n.is_empty()) {
        None => errs.push(field::required(&p.child("name"), "")),
        Some(name) => {
            for msg in names::dns1123_label(name) {
                errs.push(field::invalid(
                    &p.child("name"),
                    &Value::String(name.into()),
                    &msg,
                ));
            }
            if !seen.insert(name.to_string()) {
                errs.push(field::duplicate(
                    &p.child("name"),
                    &Value::String(name.into()),
                ));
            }
        }
    }
    if str_at(c, "image").is_none_or(|i| i.trim().is_empty()) {
        errs.push(field::required(&p.child("image"), ""));
    }
    for (key, allowed) in [
        ("imagePullPolicy", PULL_POLICIES),
        ("terminationMessagePolicy", TERMINATION_MESSAGE_POLICIES),
    ] {
        if let Some(v) = c.get(key) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                errs.push(field::not_supported(&p.child(key), v, allowed));
            }
        }
    }
    validate_resources(c.get("resources"), &p.child("resources"), errs);
    let mut port_names = HashSet::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let pp = p.child("ports").index(i);
        if let Some(name) = str_at(port, "name").filter(|n| !n.is_empty()) {
            for msg in names::port_name(name) {
                errs.push(field::invalid(
                    &pp.child("name"),
                    &Value::String(name.into()),
                    &msg,
                ));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(field::duplicate(
                    &pp.child("name"),
                    &Value::String(name.into()),
                ));
            }
        }
        match port.get("containerPort") {
            None | Some(Value::Null) => errs.push(field::required(&pp.child("containerPort"), "")),
            Some(v) => {
                if !v.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    errs.push(field::invalid(
                        &pp.child("containerPort"),
                        v,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        if let Some(v) = port.get("hostPort") {
            if !v.as_i64().is_some_and(|n| (0..=65535).contains(&n)) {
                errs.push(field::invalid(
                    &pp.child("hostPort"),
                    v,
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        if let Some(v) = port.get("protocol") {
            if !v.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) {
                errs.push(field::not_supported(&pp.child("protocol"), v, PROTOCOLS));
            }
        }
    }
    for (i, env) in items(c, "env").iter().enumerate() {
        let ep = p.child("env").index(i).child("name");
        match str_at(env, "name").filter(|n| !n.is_empty()) {
            None => errs.push(field::required(&ep, "")),
            Some(name) => {
                for msg in names::env_var_name(name) {
                    errs.push(field::invalid(&ep, &Value::String(name.into()), &msg));
                }
            }
        }
    }
    for (i, m) in items(c, "volumeMounts").iter().enumerate() {
        let mp = p.child("volumeMounts").index(i);
        match str_at(m, "name").filter(|n| !n.is_empty()) {
            None => errs.push(field::required(&mp.child("name"), "")),
            Some(name) if !volumes.contains(name) => errs.push(field::not_found(
                &mp.child("name"),
                &Value::String(name.into()),
            )),
            Some(_) => {}
        }
        if str_at(m, "mountPath").is_none_or(str::is_empty) {
            errs.push(field::required(&mp.child("mountPath"), ""));
        }
    }
}

/// Quantities must parse, and a request may not exceed its limit.
fn validate_resources(resources: Option<&Value>, p: &Path, errs: &mut Vec<FieldCause>) {
    let Some(resources) = resources else { return };
    let mut parsed: Vec<(&str, &str, Quantity)> = Vec::new();
    for key in ["limits", "requests"] {
        let Some(map) = resources.get(key).and_then(Value::as_object) else {
            continue;
        };
        for (name, v) in map {
            let path = p.child(key).key(name);
            match Quantity::from_json(v) {
                None => errs.push(field::invalid(&path, v, QUANTITY_REGEX_MSG)),
                Some(q) if q.is_negative() => errs.push(field::invalid(
                    &path,
                    v,
                    "must be greater than or equal to 0",
                )),
                Some(q) => parsed.push((key, name, q)),
            }
        }
    }
    for (key, name, request) in &parsed {
        if *key != "requests" {
            continue;
        }
        let limit = parsed
            .iter()
            .find(|(k, n, _)| *k == "limits" && n == name)
            .map(|(_, _, q)| q);
        if let Some(limit) = limit {
            if request > limit {
                errs.push(field::invalid(
                    &p.child("requests"),
                    &Value::String(request.canonical()),
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        limit.canonical()
                    ),
                ));
            }
        }
    }
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod's spec may only change in the images, activeDeadlineSeconds, added tolerations and
/// removed scheduling gates.
pub fn validate_pod_spec_update(new: &Value, old: &Value) -> Vec<FieldCause> {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let old_tolerations = items(old_spec, "tolerations");
    let new_tolerations = items(new_spec, "tolerations");
    if !old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        errs.push(field::forbidden(
            &Path::new("spec").child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // Take the mutable fields from the new spec into the old one: anything left different is forbidden.
    let mut candidate = old_spec.clone();
    if let (Some(c), Some(n)) = (candidate.as_object_mut(), new_spec.as_object()) {
        for key in [
            "activeDeadlineSeconds",
            "tolerations",
            "schedulingGates",
            "terminationGracePeriodSeconds",
        ] {
            match n.get(key) {
                Some(v) => c.insert(key.into(), v.clone()),
                None => c.remove(key),
            };
        }
        for list in ["containers", "initContainers"] {
            let (Some(Value::Array(cs)), Some(Value::Array(ns))) = (c.get_mut(list), n.get(list))
            else {
                continue;
            };
            if cs.len() != ns.len() {
                continue;
            }
            for (co, no) in cs.iter_mut().zip(ns) {
                if let (Some(co), Some(image)) = (co.as_object_mut(), no.get("image")) {
                    co.insert("image".into(), image.clone());
                }
            }
        }
    }
    if &candidate != new_spec {
        errs.push(field::forbidden(&Path::new("spec"), POD_UPDATE_MSG));
    }
    errs
}

/// `spec.dnsConfig` against `spec.dnsPolicy`, and the pod's DNS labels, as
/// upstream's validatePodDNSConfig and ValidatePodSpec's hostname/subdomain.
fn validate_dns_config(spec: &Value, path: &Path, errs: &mut Vec<FieldCause>) {
    for key in ["hostname", "subdomain"] {
        if let Some(v) = str_at(spec, key).filter(|v| !v.is_empty()) {
            for msg in names::dns1123_label(v) {
                errs.push(field::invalid(&path.child(key), &Value::String(v.into()), &msg));
            }
        }
    }
    let p = path.child("dnsConfig");
    let cfg = spec.get("dnsConfig").filter(|c| !c.is_null());
    if str_at(spec, "dnsPolicy") == Some("None") {
        let Some(cfg) = cfg else {
            errs.push(field::required(&p, "must provide `dnsConfig` when `dnsPolicy` is None"));
            return;
        };
        if items(cfg, "nameservers").is_empty() {
            errs.push(field::required(
                &p.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    let Some(cfg) = cfg else { return };
    let servers = items(cfg, "nameservers");
    if servers.len() > 3 {
        errs.push(field::invalid(&p.child("nameservers"), &cfg["nameservers"], "must not have more than 3 nameservers"));
    }
    for (i, ns) in servers.iter().enumerate() {
        if !ns.as_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()) {
            errs.push(field::invalid(
                &p.child("nameservers").index(i),
                ns,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    let searches = items(cfg, "searches");
    if searches.len() > 32 {
        errs.push(field::invalid(&p.child("searches"), &cfg["searches"], "must not have more than 32 search paths"));
    }
    let line: Vec<&str> = searches.iter().filter_map(Value::as_str).collect();
    if line.join(" ").len() > 2048 {
        errs.push(field::invalid(
            &p.child("searches"),
            &cfg["searches"],
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = s.as_str().unwrap_or_default();
        if s == "." {
            continue;
        }
        for msg in names::dns1123_subdomain(s.strip_suffix('.').unwrap_or(s)) {
            errs.push(field::invalid(&p.child("searches").index(i), &Value::String(s.into()), &msg));
        }
    }
    for (i, o) in items(cfg, "options").iter().enumerate() {
        if str_at(o, "name").is_none_or(str::is_empty) {
            errs.push(field::required(&p.child("options").index(i), "must not be empty"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
               "restartPolicy": "Always"})
    }

    fn fields(errs: &[FieldCause]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn valid_spec_passes() {
        assert!(validate_pod_spec(Some(&spec()), &Path::new("spec")).is_empty());
    }

    #[test]
    fn table_of_invalid_specs() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "spec.containers: Required value"),
            (json!({"containers": [{"name": "a"}]}), "spec.containers[0].image: Required value"),
            (json!({"containers": [{"image": "a"}]}), "spec.containers[0].name: Required value"),
            (json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}), "spec.containers[1].name: Duplicate value: \"a\""),
            (json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]}),
             "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"),
            (json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocol": "XYZ"}]}]}),
             "spec.containers[0].ports[0].protocol: Unsupported value: \"XYZ\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            (json!({"containers": [{"name": "a", "image": "x"}], "restartPolicy": "Foo"}),
             "spec.restartPolicy: Unsupported value: \"Foo\": supported values: \"Always\", \"OnFailure\", \"Never\""),
            (json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}]}),
             "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"),
            (json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"memory": "lots"}}}]}),
             "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
            (json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/d"}]}]}),
             "spec.containers[0].volumeMounts[0].name: Not found: \"v\""),
        ];
        for (spec, want) in cases {
            let got = fields(&validate_pod_spec(Some(&spec), &Path::new("spec")));
            assert!(got.iter().any(|g| g == want), "want {want}, got {got:?}");
        }
    }

    #[test]
    fn dns_config_is_checked_against_the_policy() {
        let c = |extra: Value| {
            let mut s = spec();
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            fields(&validate_pod_spec(Some(&s), &Path::new("spec")))
        };
        assert_eq!(c(json!({"dnsPolicy": "None"})), ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]);
        assert_eq!(
            c(json!({"dnsPolicy": "None", "dnsConfig": {"searches": ["a"]}})),
            ["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"]
        );
        assert!(c(json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example.", "."],
                          "options": [{"name": "ndots", "value": "2"}]}})).is_empty());
        let got = c(json!({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "nope"],
                                         "searches": ["Bad_Domain"], "options": [{"value": "1"}]}}));
        assert!(got.contains(&"spec.dnsConfig.nameservers: Invalid value: [\"1.1.1.1\",\"1.0.0.1\",\"8.8.8.8\",\"nope\"]: must not have more than 3 nameservers".to_string()), "{got:?}");
        assert!(got.contains(&"spec.dnsConfig.nameservers[3]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()), "{got:?}");
        assert!(got.iter().any(|g| g.starts_with("spec.dnsConfig.searches[0]: Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain")), "{got:?}");
        assert!(got.contains(&"spec.dnsConfig.options[0]: Required value: must not be empty".to_string()), "{got:?}");
        assert!(c(json!({"hostname": "web_0"}))[0].starts_with("spec.hostname: Invalid value: \"web_0\""));
    }

    #[test]
    fn pod_updates_allow_image_changes_only() {
        let old = json!({"spec": spec()});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        assert!(validate_pod_spec_update(&new, &old).is_empty());
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = validate_pod_spec_update(&new, &old);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0]
            .message
            .starts_with("Forbidden: pod updates may not change fields other than"));
    }
}
