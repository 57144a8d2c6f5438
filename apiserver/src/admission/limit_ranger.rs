//! LimitRanger: a pod's containers get the namespace's LimitRange defaults for the requests and
//! limits they leave out, and a pod or claim outside a LimitRange's min, max or ratio is
//! refused with upstream's 403 message.

use super::{Attributes, Operation, Plugin};
use crate::registry::Store;
use crate::status::ApiError;
use crate::validation::quantity::Quantity;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct LimitRanger {
    limit_ranges: Arc<Store>,
}

/// The `{resource: quantity}` map at `key` of a LimitRange item, parsed.
fn item_map(item: &Value, key: &str) -> Vec<(String, Quantity)> {
    item.get(key)
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), Quantity::from_json(v)?))).collect())
        .unwrap_or_default()
}

fn get_q(map: Option<&Map<String, Value>>, r: &str) -> Option<Quantity> {
    map.and_then(|m| m.get(r)).and_then(Quantity::from_json)
}

impl LimitRanger {
    pub fn new(limit_ranges: Arc<Store>) -> Self {
        LimitRanger { limit_ranges }
    }

    /// The items of every LimitRange in the namespace.
    fn items(&self, ns: &str) -> Vec<Value> {
        let (ranges, _) = self.limit_ranges.cache.snapshot(&self.limit_ranges.prefix(Some(ns)));
        ranges.iter().flat_map(|r| r.value().pointer("/spec/limits").and_then(Value::as_array).cloned().unwrap_or_default()).collect()
    }

    fn admit_pod(&self, attrs: &Attributes<'_>, pod: &mut Value, items: &[Value]) -> Result<(), ApiError> {
        let mut set_notes: Vec<String> = Vec::new();
        let mut errs: Vec<String> = Vec::new();
        for item in items.iter().filter(|i| i.get("type").and_then(Value::as_str) == Some("Container")) {
            let (default, default_request) = (item_map(item, "default"), item_map(item, "defaultRequest"));
            for list in ["initContainers", "containers"] {
                let Some(containers) = pod.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) else { continue };
                for c in containers.iter_mut().filter(|c| c.is_object()) {
                    let cname = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                    if !c.get("resources").is_some_and(Value::is_object) {
                        c["resources"] = json!({});
                    }
                    let res = &mut c["resources"];
                    let (mut set_req, mut set_lim) = (Vec::new(), Vec::new());
                    for (r, q) in &default {
                        if get_q(res.get("limits").and_then(Value::as_object), r).is_none() {
                            if !res.get("limits").is_some_and(Value::is_object) {
                                res["limits"] = json!({});
                            }
                            res["limits"][r.as_str()] = json!(q.canonical());
                            set_lim.push(r.clone());
                        }
                    }
                    for (r, q) in &default_request {
                        if get_q(res.get("requests").and_then(Value::as_object), r).is_none() {
                            if !res.get("requests").is_some_and(Value::is_object) {
                                res["requests"] = json!({});
                            }
                            res["requests"][r.as_str()] = json!(q.canonical());
                            set_req.push(r.clone());
                        }
                    }
                    // Upstream defaults a missing request to the limit it now has.
                    for r in default.iter().map(|(r, _)| r) {
                        if get_q(res.get("requests").and_then(Value::as_object), r).is_none() {
                            let lim = res["limits"][r.as_str()].clone();
                            if !res.get("requests").is_some_and(Value::is_object) {
                                res["requests"] = json!({});
                            }
                            res["requests"][r.as_str()] = lim;
                            set_req.push(r.clone());
                        }
                    }
                    if !set_req.is_empty() {
                        set_notes.push(format!("{} request for {} {cname}", set_req.join(", "), if list == "initContainers" { "init container" } else { "container" }));
                    }
                    if !set_lim.is_empty() {
                        set_notes.push(format!("{} limit for {} {cname}", set_lim.join(", "), if list == "initContainers" { "init container" } else { "container" }));
                    }
                    check_bounds(item, "Container", res, &mut errs);
                }
            }
        }
        if !set_notes.is_empty() && pod.get("metadata").is_some_and(Value::is_object) {
            if !pod["metadata"].get("annotations").is_some_and(Value::is_object) {
                pod["metadata"]["annotations"] = json!({});
            }
            pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] = json!(format!("LimitRanger plugin set: {}", set_notes.join("; ")));
        }
        for item in items.iter().filter(|i| i.get("type").and_then(Value::as_str) == Some("Pod")) {
            let totals = pod_totals(pod);
            check_bounds(item, "Pod", &totals, &mut errs);
        }
        refuse(attrs, errs)
    }
}

/// A pod's summed requests and limits, as `{requests: {...}, limits: {...}}`.
fn pod_totals(pod: &Value) -> Value {
    let mut out = json!({"requests": {}, "limits": {}});
    for kind in ["requests", "limits"] {
        let mut sums: Vec<(String, Quantity)> = Vec::new();
        for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
            for (r, v) in c.pointer(&format!("/resources/{kind}")).and_then(Value::as_object).into_iter().flatten() {
                let Some(q) = Quantity::from_json(v) else { continue };
                match sums.iter_mut().find(|(k, _)| k == r) {
                    Some((_, s)) => *s = Quantity(s.checked_add(&q).unwrap_or(**s)),
                    None => sums.push((r.clone(), q)),
                }
            }
        }
        for (r, q) in sums {
            out[kind][r.as_str()] = json!(q.canonical());
        }
    }
    out
}

/// Upstream's wording: `maximum cpu usage per Container is 1, but limit is 2`.
fn check_bounds(item: &Value, what: &str, res: &Value, errs: &mut Vec<String>) {
    let requests = res.get("requests").and_then(Value::as_object);
    let limits = res.get("limits").and_then(Value::as_object);
    for (r, min) in item_map(item, "min") {
        match get_q(requests, &r) {
            None => errs.push(format!("minimum {r} usage per {what} is {}.  No request is specified", min.canonical())),
            Some(q) if q < min => errs.push(format!("minimum {r} usage per {what} is {}, but request is {}", min.canonical(), q.canonical())),
            _ => {}
        }
    }
    for (r, max) in item_map(item, "max") {
        match get_q(limits, &r) {
            None => errs.push(format!("maximum {r} usage per {what} is {}.  No limit is specified", max.canonical())),
            Some(q) if q > max => errs.push(format!("maximum {r} usage per {what} is {}, but limit is {}", max.canonical(), q.canonical())),
            _ => {}
        }
    }
    for (r, ratio) in item_map(item, "maxLimitRequestRatio") {
        if let (Some(l), Some(q)) = (get_q(limits, &r), get_q(requests, &r)) {
            if q.milli_value() > 0 && (l.milli_value() as i128) * 1000 > (ratio.milli_value() as i128) * (q.milli_value() as i128) {
                errs.push(format!("{r} max limit to request ratio per {what} is {}, but provided ratio is {:.6}", ratio.canonical(), l.milli_value() as f64 / q.milli_value() as f64));
            }
        }
    }
}

fn refuse(attrs: &Attributes<'_>, errs: Vec<String>) -> Result<(), ApiError> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(ApiError::Forbidden(format!("{} \"{}\" is forbidden: {}", attrs.row.plural(), attrs.name, errs[0]))),
        _ => Err(ApiError::Forbidden(format!("{} \"{}\" is forbidden: [{}]", attrs.row.plural(), attrs.name, errs.join(", ")))),
    }
}

impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, obj: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let Some(ns) = attrs.namespace.filter(|_| attrs.operation == Operation::Create) else { return Ok(()) };
            let is_pod = attrs.is("", "pods");
            let is_claim = attrs.is("", "persistentvolumeclaims");
            if !is_pod && !is_claim {
                return Ok(());
            }
            let items = self.items(ns);
            if items.is_empty() {
                return Ok(());
            }
            if is_pod {
                return self.admit_pod(attrs, obj, &items);
            }
            let mut errs = Vec::new();
            let claim = json!({"requests": obj.pointer("/spec/resources/requests").cloned().unwrap_or(json!({})),
                               "limits": obj.pointer("/spec/resources/requests").cloned().unwrap_or(json!({}))});
            for item in items.iter().filter(|i| i.get("type").and_then(Value::as_str) == Some("PersistentVolumeClaim")) {
                check_bounds(item, "PersistentVolumeClaim", &claim, &mut errs);
            }
            refuse(attrs, errs)
        })
    }
}
