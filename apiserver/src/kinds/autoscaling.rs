//! autoscaling/v2 HorizontalPodAutoscalers: upstream's defaults (minReplicas 1, an 80% CPU
//! target, the behavior rules), validation, and printHorizontalPodAutoscaler's TARGETS.

use crate::registry::strategy::Strategy;
use crate::table::{arr, i, s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use serde_json::{json, Value};

const METRIC_TYPES: &[&str] = &["Object", "Pods", "Resource", "ContainerResource", "External"];
const TARGET_TYPES: &[&str] = &["Utilization", "Value", "AverageValue"];

pub struct HorizontalPodAutoscalers;

fn scaling_rules(rules: &mut Value, window: i64, policies: Value) {
    if !rules.is_object() {
        return;
    }
    if rules.get("stabilizationWindowSeconds").is_none_or(Value::is_null) {
        rules["stabilizationWindowSeconds"] = json!(window);
    }
    if rules.get("selectPolicy").is_none_or(Value::is_null) {
        rules["selectPolicy"] = json!("Max");
    }
    if rules.get("policies").and_then(Value::as_array).is_none_or(|p| p.is_empty()) {
        rules["policies"] = policies;
    }
}

impl Strategy for HorizontalPodAutoscalers {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
        if spec.get("minReplicas").is_none_or(Value::is_null) {
            spec["minReplicas"] = json!(1);
        }
        if spec.get("metrics").and_then(Value::as_array).is_none_or(|m| m.is_empty()) {
            spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
        }
        if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
            if behavior.get("scaleUp").is_none_or(Value::is_null) {
                behavior["scaleUp"] = json!({});
            }
            if behavior.get("scaleDown").is_none_or(Value::is_null) {
                behavior["scaleDown"] = json!({});
            }
            scaling_rules(&mut behavior["scaleUp"], 0, json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]));
            scaling_rules(&mut behavior["scaleDown"], 300, json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let sp = Path::new("spec");
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        for key in ["kind", "name"] {
            if spec.pointer(&format!("/scaleTargetRef/{key}")).and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(field::required(&sp.child("scaleTargetRef").child(key), ""));
            }
        }
        let min = spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1);
        if min < 1 {
            errs.push(field::invalid(&sp.child("minReplicas"), &json!(min), "must be greater than or equal to 1"));
        }
        match spec.get("maxReplicas").and_then(Value::as_i64) {
            None => errs.push(field::required(&sp.child("maxReplicas"), "")),
            Some(max) if max < min => errs.push(field::invalid(&sp.child("maxReplicas"), &json!(max), "must be greater than or equal to `minReplicas`")),
            Some(_) => {}
        }
        for (n, m) in spec.get("metrics").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let mp = sp.child("metrics").index(n);
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
            if !METRIC_TYPES.contains(&ty) {
                errs.push(field::not_supported(&mp.child("type"), m.get("type").unwrap_or(&Value::Null), METRIC_TYPES));
                continue;
            }
            // Each type names its own member: `resource`, `containerResource`, `pods`, ...
            let member = {
                let mut c = ty.chars();
                c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default()
            };
            let Some(body) = m.get(&member).filter(|b| b.is_object()) else {
                errs.push(field::required(&mp.child(&member), &format!("must populate information for the given metric source (type {ty})")));
                continue;
            };
            let target = body.get("target");
            let tt = target.and_then(|t| t.get("type")).and_then(Value::as_str).unwrap_or("");
            if !TARGET_TYPES.contains(&tt) {
                errs.push(field::not_supported(&mp.child(&member).child("target").child("type"), target.and_then(|t| t.get("type")).unwrap_or(&Value::Null), TARGET_TYPES));
            }
            if matches!(ty, "Resource" | "ContainerResource") && body.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(field::required(&mp.child(&member).child("name"), "must specify a resource name"));
            }
            if tt == "Utilization" && target.and_then(|t| t.get("averageUtilization")).and_then(Value::as_i64).is_none_or(|u| u < 1) {
                errs.push(field::required(&mp.child(&member).child("target").child("averageUtilization"), "must set averageUtilization to a value of at least 1"));
            }
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Reference", "string", 0), Column("Targets", "string", 0), Column("MinPods", "string", 0),
            Column("MaxPods", "string", 0), Column("Replicas", "string", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let reference = format!("{}/{}", s(obj, "/spec/scaleTargetRef/kind"), s(obj, "/spec/scaleTargetRef/name"));
        let current = arr(obj, "/status/currentMetrics");
        let targets: Vec<String> = arr(obj, "/spec/metrics")
            .iter()
            .enumerate()
            .map(|(n, m)| {
                let member = if s(m, "/type") == "ContainerResource" { "containerResource" } else { "resource" };
                let name = s(m, &format!("/{member}/name"));
                let now = current.get(n).and_then(|c| c.pointer(&format!("/{member}/current/averageUtilization"))).and_then(Value::as_i64);
                let now = now.map(|u| format!("{u}%")).unwrap_or_else(|| "<unknown>".into());
                match m.pointer(&format!("/{member}/target/averageUtilization")).and_then(Value::as_i64) {
                    Some(t) => format!("{name}: {now}/{t}%"),
                    None => format!("{name}: {now}/{}", s(m, &format!("/{member}/target/averageValue"))),
                }
            })
            .collect();
        cells.extend([
            json!(reference), json!(if targets.is_empty() { "<none>".into() } else { targets.join(", ") }),
            json!(obj.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1).to_string()), json!(i(obj, "/spec/maxReplicas").to_string()),
            json!(i(obj, "/status/currentReplicas").to_string()), age,
        ]);
        cells
    }
}
