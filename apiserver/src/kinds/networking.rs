//! networking.k8s.io/v1 Ingresses, IngressClasses and NetworkPolicies: served, validated and
//! printed as upstream's; nothing here enforces them (no ingress controller, no policy
//! enforcement yet).

use crate::registry::strategy::Strategy;
use crate::table::{arr, or_none, s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use serde_json::{json, Value};

const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];

fn validate_backend(b: &Value, path: &Path, errs: &mut Vec<FieldCause>) {
    let service = b.get("service").filter(|v| v.is_object());
    let resource = b.get("resource").filter(|v| v.is_object());
    match (service, resource) {
        (None, None) => errs.push(field::invalid(path, b, "exactly one of `service` or `resource` must be specified")),
        (Some(_), Some(_)) => errs.push(field::invalid(path, b, "cannot set both `service` and `resource` backends")),
        (Some(svc), None) => {
            if svc.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(field::required(&path.child("service").child("name"), ""));
            }
            let port = svc.get("port").cloned().unwrap_or(json!({}));
            let (name, number) = (port.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()), port.get("number").and_then(Value::as_i64));
            match (name, number) {
                (Some(_), Some(_)) => errs.push(field::invalid(&path.child("service").child("port"), &port, "cannot set both port name & port number")),
                (None, None) => errs.push(field::required(&path.child("service").child("port"), "port name or number is required")),
                (None, Some(n)) if !(1..=65535).contains(&n) => {
                    errs.push(field::invalid(&path.child("service").child("port").child("number"), &json!(n), "must be between 1 and 65535, inclusive"))
                }
                _ => {}
            }
        }
        (None, Some(_)) => {}
    }
}

pub struct Ingresses;

impl Strategy for Ingresses {
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"loadBalancer": {}});
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        let rules = spec.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        let default_backend = spec.get("defaultBackend").filter(|v| v.is_object());
        if rules.is_empty() && default_backend.is_none() {
            errs.push(field::invalid(&Path::new("spec"), &Value::String("[]".into()), "either `defaultBackend` or `rules` must be specified"));
        }
        if let Some(b) = default_backend {
            validate_backend(b, &Path::new("spec").child("defaultBackend"), &mut errs);
        }
        for (ri, rule) in rules.iter().enumerate() {
            let rp = Path::new("spec").child("rules").index(ri);
            for (pi, p) in rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let pp = rp.child("http").child("paths").index(pi);
                match p.get("pathType") {
                    None | Some(Value::Null) => errs.push(field::required(&pp.child("pathType"), "pathType must be specified")),
                    Some(t) if !t.as_str().is_some_and(|t| PATH_TYPES.contains(&t)) => errs.push(field::not_supported(&pp.child("pathType"), t, PATH_TYPES)),
                    _ => {}
                }
                let path_value = p.get("path").and_then(Value::as_str).unwrap_or("");
                if p.get("pathType").and_then(Value::as_str) != Some("ImplementationSpecific") && !path_value.starts_with('/') {
                    errs.push(field::invalid(&pp.child("path"), &json!(path_value), "must be an absolute path"));
                }
                match p.get("backend") {
                    Some(b) => validate_backend(b, &pp.child("backend"), &mut errs),
                    None => errs.push(field::required(&pp.child("backend"), "")),
                }
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Class", "string", 0), Column("Hosts", "string", 0), Column("Address", "string", 0),
            Column("Ports", "string", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let class = obj.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>");
        let hosts: Vec<&str> = arr(obj, "/spec/rules").iter().map(|r| s(r, "/host")).filter(|h| !h.is_empty()).collect();
        let addrs: Vec<&str> = arr(obj, "/status/loadBalancer/ingress").iter().map(|a| if s(a, "/ip").is_empty() { s(a, "/hostname") } else { s(a, "/ip") }).collect();
        let ports = if arr(obj, "/spec/tls").is_empty() { "80" } else { "80, 443" };
        cells.extend([json!(class), json!(if hosts.is_empty() { "*".to_string() } else { hosts.join(",") }), json!(addrs.join(",")), json!(ports), age]);
        cells
    }
}

pub struct IngressClasses;

impl Strategy for IngressClasses {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        match obj.pointer("/spec/controller").and_then(Value::as_str) {
            Some(c) if c.len() > 250 => vec![field::too_long(&Path::new("spec").child("controller"), 250)],
            _ => Vec::new(),
        }
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        let (new_c, old_c) = (obj.pointer("/spec/controller"), old.pointer("/spec/controller"));
        if new_c != old_c {
            return vec![field::invalid(&Path::new("spec").child("controller"), new_c.unwrap_or(&Value::Null), field::IMMUTABLE)];
        }
        Vec::new()
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Controller", "string", 0), Column("Parameters", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let params = obj.pointer("/spec/parameters").map(|p| {
            let group = s(p, "/apiGroup");
            let kind = if group.is_empty() { s(p, "/kind").to_string() } else { format!("{}.{group}", s(p, "/kind")) };
            format!("{kind}/{}", s(p, "/name"))
        });
        cells.extend([json!(s(obj, "/spec/controller")), json!(params.unwrap_or_else(|| "<none>".into())), age]);
        cells
    }
}

pub struct NetworkPolicies;

impl Strategy for NetworkPolicies {
    /// SetDefaults_NetworkPolicy: policyTypes from the rules given; ports default to TCP.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
        if spec.get("policyTypes").and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
            let mut types = vec![json!("Ingress")];
            if spec.get("egress").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                types.push(json!("Egress"));
            }
            spec["policyTypes"] = json!(types);
        }
        for dir in ["ingress", "egress"] {
            for rule in spec.get_mut(dir).and_then(Value::as_array_mut).into_iter().flatten() {
                for port in rule.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                    if port.is_object() && port.get("protocol").is_none_or(Value::is_null) {
                        port["protocol"] = json!("TCP");
                    }
                }
            }
        }
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        for (i, t) in obj.pointer("/spec/policyTypes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
                errs.push(field::not_supported(&Path::new("spec").child("policyTypes").index(i), t, &["Ingress", "Egress"]));
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Pod-Selector", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        // metav1.FormatLabelSelector: `app=web`, `<none>` for the empty selector.
        let sel = obj
            .pointer("/spec/podSelector")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .and_then(|sel| apimachinery::labels::label_selector_as_selector(Some(&sel)).ok())
            .map(|sel| sel.to_string())
            .unwrap_or_default();
        cells.insert(1, json!(or_none(sel)));
        cells
    }
}
