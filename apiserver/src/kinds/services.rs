//! Services: defaults, validation, an empty load-balancer status on create, the deleted
//! object as a delete's answer (ReturnDeletedObject), and printService's columns.

use crate::registry::strategy::Strategy;
use crate::table::{arr, i, or_none, s, Column};
use crate::types::FieldCause;
use crate::validation::{core, defaults, meta::NameRule};
use serde_json::{json, Value};

pub struct Services;

impl Strategy for Services {
    fn default(&self, obj: &mut Value) {
        defaults::service(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj.get("status").is_some_and(Value::is_object) {
            obj["status"] = json!({"loadBalancer": {}});
        }
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }

    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        core::validate_service(obj)
    }

    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        core::validate_service_update(obj, old)
    }

    fn return_deleted_object(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Type", "string", 0), Column("Cluster-IP", "string", 0), Column("External-IP", "string", 0),
            Column("Port(s)", "string", 0), Column("Age", "string", 0), Column("Selector", "string", 1),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let mut selector: Vec<String> = obj
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        selector.sort();
        cells.extend([
            json!(s(obj, "/spec/type")), json!(or_none(s(obj, "/spec/clusterIP").into())), json!(external_ip(obj)),
            json!(service_ports(obj)), age, json!(or_none(selector.join(","))),
        ]);
        cells
    }
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
