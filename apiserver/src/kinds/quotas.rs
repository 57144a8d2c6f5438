//! core/v1 ResourceQuotas and LimitRanges (pkg/apis/core/validation): resource names and
//! quantities checked as upstream's, LimitRange's min <= default <= max rules, and their
//! printers. The admission plugins that enforce them live in `crate::admission`.

use crate::registry::strategy::Strategy;
use crate::table::Column;
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::quantity::{Quantity, QUANTITY_REGEX_MSG};
use serde_json::{json, Map, Value};

const SCOPES: &[&str] = &["Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass", "CrossNamespacePodAffinity", "VolumeAttributesClass"];
const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// Quota counts (`pods`, `count/...`, `services`...) must be whole numbers.
fn is_count(resource: &str) -> bool {
    !matches!(resource, "cpu" | "memory" | "storage" | "ephemeral-storage")
        && !resource.starts_with("requests.")
        && !resource.starts_with("limits.")
        && !resource.ends_with("storage")
        && !resource.starts_with("hugepages-")
}

/// Parses every value of a `{resource: quantity}` map, reporting the bad ones.
pub fn quantities(map: Option<&Value>, path: &Path, counts_are_integers: bool, errs: &mut Vec<FieldCause>) -> Vec<(String, Quantity)> {
    let mut out = Vec::new();
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        let p = path.key(k);
        match Quantity::from_json(v) {
            None => errs.push(field::invalid(&p, v, QUANTITY_REGEX_MSG)),
            Some(q) if q.is_negative() => errs.push(field::invalid(&p, v, "must be greater than or equal to 0")),
            Some(q) if counts_are_integers && is_count(k) && q.milli_value() % 1000 != 0 => errs.push(field::invalid(&p, v, "must be an integer")),
            Some(q) => out.push((k.clone(), q)),
        }
    }
    out
}

pub struct ResourceQuotas;

impl Strategy for ResourceQuotas {
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let sp = Path::new("spec");
        quantities(obj.pointer("/spec/hard"), &sp.child("hard"), true, &mut errs);
        for (i, scope) in obj.pointer("/spec/scopes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if !scope.as_str().is_some_and(|s| SCOPES.contains(&s)) {
                errs.push(field::not_supported(&sp.child("scopes").index(i), scope, SCOPES));
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Age", "string", 0), Column("Request", "string", 0), Column("Limit", "string", 0)]
    }
    /// printResourceQuota: `used/hard` per resource, limits.* in the Limit column.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let empty = Map::new();
        let hard = obj.pointer("/status/hard").or_else(|| obj.pointer("/spec/hard")).and_then(Value::as_object).unwrap_or(&empty);
        let used = obj.pointer("/status/used").and_then(Value::as_object).unwrap_or(&empty);
        let (mut request, mut limit) = (Vec::new(), Vec::new());
        let mut keys: Vec<&String> = hard.keys().collect();
        keys.sort();
        for k in keys {
            let shown = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from).unwrap_or_else(|| "0".into());
            let entry = format!("{k}: {}/{}", shown(used.get(k)), shown(hard.get(k)));
            if k.starts_with("limits.") { limit.push(entry) } else { request.push(entry) }
        }
        let mut cells = crate::table::name_and_age(obj);
        cells.push(json!(request.join(", ")));
        cells.push(json!(limit.join(", ")));
        cells
    }
}

pub struct LimitRanges;

impl Strategy for LimitRanges {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        for (i, item) in obj.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let p = Path::new("spec").child("limits").index(i);
            let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
            if !LIMIT_TYPES.contains(&ty) {
                errs.push(field::not_supported(&p.child("type"), item.get("type").unwrap_or(&Value::Null), LIMIT_TYPES));
            }
            let get = |key: &str, errs: &mut Vec<FieldCause>| -> Vec<(String, Quantity)> { quantities(item.get(key), &p.child(key), false, errs) };
            let (min, max) = (get("min", &mut errs), get("max", &mut errs));
            let (default, default_request) = (get("default", &mut errs), get("defaultRequest", &mut errs));
            get("maxLimitRequestRatio", &mut errs);
            if ty == "Pod" {
                for key in ["default", "defaultRequest"] {
                    if item.get(key).is_some() {
                        errs.push(field::forbidden(&p.child(key), "may not be specified when `type` is 'Pod'"));
                    }
                }
            }
            let find = |list: &[(String, Quantity)], r: &str| list.iter().find(|(k, _)| k == r).map(|(_, q)| *q);
            let mut names: Vec<&String> = min.iter().chain(&max).chain(&default).chain(&default_request).map(|(k, _)| k).collect();
            names.sort();
            names.dedup();
            for r in names {
                let (mn, mx, d, dr) = (find(&min, r), find(&max, r), find(&default, r), find(&default_request, r));
                let shown = |q: Quantity| q.canonical();
                if let (Some(mn), Some(mx)) = (mn, mx) {
                    if mn > mx {
                        errs.push(field::invalid(&p.child("min").key(r), &json!(shown(mn)), &format!("min value {} is greater than max value {}", shown(mn), shown(mx))));
                    }
                }
                if let (Some(dr), Some(mx)) = (dr, mx) {
                    if dr > mx {
                        errs.push(field::invalid(&p.child("defaultRequest").key(r), &json!(shown(dr)), &format!("default request value {} is greater than max value {}", shown(dr), shown(mx))));
                    }
                }
                if let (Some(dr), Some(d)) = (dr, d) {
                    if dr > d {
                        errs.push(field::invalid(&p.child("defaultRequest").key(r), &json!(shown(dr)), &format!("default request value {} is greater than default limit value {}", shown(dr), shown(d))));
                    }
                }
                if let (Some(mn), Some(d)) = (mn, d) {
                    if mn > d {
                        errs.push(field::invalid(&p.child("default").key(r), &json!(shown(d)), &format!("min value {} is greater than default value {}", shown(mn), shown(d))));
                    }
                }
                if let (Some(d), Some(mx)) = (d, mx) {
                    if d > mx {
                        errs.push(field::invalid(&p.child("default").key(r), &json!(shown(d)), &format!("default value {} is greater than max value {}", shown(d), shown(mx))));
                    }
                }
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Created At", "date", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![json!(crate::table::s(obj, "/metadata/name")), json!(crate::table::s(obj, "/metadata/creationTimestamp"))]
    }
}
