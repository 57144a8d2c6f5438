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

/// autoscaling/v1 beside the stored v2, as upstream's v1 conversion
/// (pkg/apis/autoscaling/v1/conversion.go): v1 has only `targetCPUUtilizationPercentage`, so
/// every other metric, the behavior, the conditions and the other current metrics ride in
/// annotations in v1's older metric format.
pub mod v1 {
    use serde_json::{json, Map, Value};

    pub const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
    pub const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
    pub const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
    pub const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

    fn set(m: &mut Map<String, Value>, k: &str, v: Option<&Value>) {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            m.insert(k.into(), v.clone());
        }
    }

    fn is_cpu_utilization(m: &Value) -> bool {
        m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu")) && m.pointer("/resource/target/type") == Some(&json!("Utilization"))
    }

    /// A v2 MetricSpec in v1's metric format (`targetAverageUtilization`, `metricName`, ...).
    fn spec_to_v1(m: &Value) -> Value {
        let ty = m["type"].as_str().unwrap_or("");
        let mut out = Map::new();
        let t = |k: &str, src: &Value| src.pointer(&format!("/target/{k}")).cloned();
        match ty {
            "Resource" | "ContainerResource" => {
                let key = if ty == "Resource" { "resource" } else { "containerResource" };
                let r = &m[key];
                set(&mut out, "name", r.get("name"));
                set(&mut out, "container", r.get("container"));
                set(&mut out, "targetAverageUtilization", t("averageUtilization", r).as_ref());
                set(&mut out, "targetAverageValue", t("averageValue", r).as_ref());
                json!({"type": ty, key: out})
            }
            "Pods" => {
                let p = &m["pods"];
                set(&mut out, "metricName", p.pointer("/metric/name"));
                set(&mut out, "selector", p.pointer("/metric/selector"));
                set(&mut out, "targetAverageValue", t("averageValue", p).as_ref());
                json!({"type": ty, "pods": out})
            }
            "Object" => {
                let o = &m["object"];
                set(&mut out, "target", o.get("describedObject"));
                set(&mut out, "metricName", o.pointer("/metric/name"));
                set(&mut out, "selector", o.pointer("/metric/selector"));
                set(&mut out, "targetValue", t("value", o).as_ref());
                set(&mut out, "averageValue", t("averageValue", o).as_ref());
                json!({"type": ty, "object": out})
            }
            "External" => {
                let e = &m["external"];
                set(&mut out, "metricName", e.pointer("/metric/name"));
                set(&mut out, "metricSelector", e.pointer("/metric/selector"));
                set(&mut out, "targetValue", t("value", e).as_ref());
                set(&mut out, "targetAverageValue", t("averageValue", e).as_ref());
                json!({"type": ty, "external": out})
            }
            _ => m.clone(),
        }
    }

    fn target(utilization: Option<&Value>, average: Option<&Value>, value: Option<&Value>) -> Value {
        let mut t = Map::new();
        let (ty, k, v) = match (utilization.filter(|v| !v.is_null()), average.filter(|v| !v.is_null()), value.filter(|v| !v.is_null())) {
            (Some(u), _, _) => ("Utilization", "averageUtilization", u),
            (_, Some(a), _) => ("AverageValue", "averageValue", a),
            (_, _, Some(v)) => ("Value", "value", v),
            _ => return json!({}),
        };
        t.insert("type".into(), json!(ty));
        t.insert(k.into(), v.clone());
        Value::Object(t)
    }

    /// A v1-format metric back to a v2 MetricSpec.
    fn spec_to_v2(m: &Value) -> Value {
        let ty = m["type"].as_str().unwrap_or("");
        match ty {
            "Resource" | "ContainerResource" => {
                let key = if ty == "Resource" { "resource" } else { "containerResource" };
                let r = &m[key];
                let mut out = Map::new();
                set(&mut out, "name", r.get("name"));
                set(&mut out, "container", r.get("container"));
                out.insert("target".into(), target(r.get("targetAverageUtilization"), r.get("targetAverageValue"), None));
                json!({"type": ty, key: out})
            }
            "Pods" => {
                let p = &m["pods"];
                json!({"type": ty, "pods": {"metric": metric(p.get("metricName"), p.get("selector")), "target": target(None, p.get("targetAverageValue"), None)}})
            }
            "Object" => {
                let o = &m["object"];
                json!({"type": ty, "object": {"describedObject": o.get("target").cloned().unwrap_or(json!({})), "metric": metric(o.get("metricName"), o.get("selector")),
                    "target": target(None, o.get("averageValue"), o.get("targetValue"))}})
            }
            "External" => {
                let e = &m["external"];
                json!({"type": ty, "external": {"metric": metric(e.get("metricName"), e.get("metricSelector")), "target": target(None, e.get("targetAverageValue"), e.get("targetValue"))}})
            }
            _ => m.clone(),
        }
    }

    fn metric(name: Option<&Value>, selector: Option<&Value>) -> Value {
        let mut out = Map::new();
        set(&mut out, "name", name);
        set(&mut out, "selector", selector);
        Value::Object(out)
    }

    /// A v2 MetricStatus in v1's format (`currentAverageUtilization`, ...); the reverse of
    /// [`status_to_v2`].
    fn status_to_v1(m: &Value) -> Value {
        let ty = m["type"].as_str().unwrap_or("");
        let key = match ty {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            _ => return m.clone(),
        };
        let s = &m[key];
        let mut out = Map::new();
        set(&mut out, "name", s.get("name"));
        set(&mut out, "container", s.get("container"));
        set(&mut out, "metricName", s.pointer("/metric/name"));
        set(&mut out, if ty == "External" { "metricSelector" } else { "selector" }, s.pointer("/metric/selector"));
        set(&mut out, "target", s.get("describedObject"));
        set(&mut out, "currentAverageUtilization", s.pointer("/current/averageUtilization"));
        set(&mut out, "currentAverageValue", s.pointer("/current/averageValue"));
        set(&mut out, "currentValue", s.pointer("/current/value"));
        json!({"type": ty, key: out})
    }

    fn status_to_v2(m: &Value) -> Value {
        let ty = m["type"].as_str().unwrap_or("");
        let key = match ty {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            _ => return m.clone(),
        };
        let s = &m[key];
        let mut out = Map::new();
        set(&mut out, "name", s.get("name"));
        set(&mut out, "container", s.get("container"));
        if s.get("metricName").is_some() {
            out.insert("metric".into(), metric(s.get("metricName"), s.get("selector").or(s.get("metricSelector"))));
        }
        set(&mut out, "describedObject", s.get("target"));
        let mut current = Map::new();
        set(&mut current, "averageUtilization", s.get("currentAverageUtilization"));
        set(&mut current, "averageValue", s.get("currentAverageValue"));
        set(&mut current, "value", s.get("currentValue"));
        out.insert("current".into(), Value::Object(current));
        json!({"type": ty, key: out})
    }

    fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if !obj["metadata"]["annotations"].is_object() {
            obj["metadata"]["annotations"] = json!({});
        }
        obj["metadata"]["annotations"].as_object_mut().expect("made an object above")
    }

    fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
        let anns = obj.pointer_mut("/metadata/annotations")?.as_object_mut()?;
        let v = anns.remove(key)?;
        if anns.is_empty() {
            obj["metadata"].as_object_mut().map(|m| m.remove("annotations"));
        }
        serde_json::from_str(v.as_str()?).ok()
    }

    /// The stored v2 object as autoscaling/v1 shows it.
    pub fn from_v2(v2: &Value) -> Value {
        let mut out = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": v2.get("metadata").cloned().unwrap_or(json!({}))});
        let spec = &v2["spec"];
        let mut s = Map::new();
        set(&mut s, "scaleTargetRef", spec.get("scaleTargetRef"));
        set(&mut s, "minReplicas", spec.get("minReplicas"));
        set(&mut s, "maxReplicas", spec.get("maxReplicas"));
        let metrics = spec.get("metrics").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut others = Vec::new();
        for m in &metrics {
            if is_cpu_utilization(m) && !s.contains_key("targetCPUUtilizationPercentage") {
                set(&mut s, "targetCPUUtilizationPercentage", m.pointer("/resource/target/averageUtilization"));
            } else {
                others.push(spec_to_v1(m));
            }
        }
        if !others.is_empty() {
            annotations(&mut out).insert(METRICS.into(), json!(Value::Array(others).to_string()));
        }
        if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
            annotations(&mut out).insert(BEHAVIOR.into(), json!(b.to_string()));
        }
        out["spec"] = Value::Object(s);
        let status = &v2["status"];
        let mut st = Map::new();
        for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
            set(&mut st, k, status.get(k));
        }
        let mut current_others = Vec::new();
        for m in status.get("currentMetrics").and_then(Value::as_array).into_iter().flatten() {
            let cpu = m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"));
            match m.pointer("/resource/current/averageUtilization") {
                Some(u) if cpu && !st.contains_key("currentCPUUtilizationPercentage") => {
                    st.insert("currentCPUUtilizationPercentage".into(), u.clone());
                }
                _ => current_others.push(status_to_v1(m)),
            }
        }
        if !current_others.is_empty() {
            annotations(&mut out).insert(CURRENT_METRICS.into(), json!(Value::Array(current_others).to_string()));
        }
        if let Some(c) = status.get("conditions").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            annotations(&mut out).insert(CONDITIONS.into(), json!(Value::Array(c.clone()).to_string()));
        }
        if !st.contains_key("currentReplicas") && v2.get("status").is_some() {
            st.insert("currentReplicas".into(), json!(0));
        }
        if !st.contains_key("desiredReplicas") && v2.get("status").is_some() {
            st.insert("desiredReplicas".into(), json!(0));
        }
        out["status"] = Value::Object(st);
        out
    }

    /// An autoscaling/v1 object (possibly partial, as an apply body is) as the stored v2.
    pub fn to_v2(v1: &Value) -> Value {
        let mut v1 = v1.clone();
        let extra = take_annotation(&mut v1, METRICS);
        let behavior = take_annotation(&mut v1, BEHAVIOR);
        let current = take_annotation(&mut v1, CURRENT_METRICS);
        let conditions = take_annotation(&mut v1, CONDITIONS);
        let mut out = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"});
        if let Some(m) = v1.get("metadata") {
            out["metadata"] = m.clone();
        }
        if let Some(spec) = v1.get("spec").filter(|s| s.is_object()) {
            let mut s = Map::new();
            set(&mut s, "scaleTargetRef", spec.get("scaleTargetRef"));
            set(&mut s, "minReplicas", spec.get("minReplicas"));
            set(&mut s, "maxReplicas", spec.get("maxReplicas"));
            let mut metrics = Vec::new();
            if let Some(cpu) = spec.get("targetCPUUtilizationPercentage").filter(|v| !v.is_null()) {
                metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}));
            }
            for m in extra.as_ref().and_then(Value::as_array).into_iter().flatten() {
                metrics.push(spec_to_v2(m));
            }
            if !metrics.is_empty() {
                s.insert("metrics".into(), Value::Array(metrics));
            }
            if let Some(b) = behavior {
                s.insert("behavior".into(), b);
            }
            out["spec"] = Value::Object(s);
        }
        let status = v1.get("status").filter(|s| s.is_object());
        if status.is_some() || current.is_some() || conditions.is_some() {
            let empty = json!({});
            let status = status.unwrap_or(&empty);
            let mut st = Map::new();
            for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
                set(&mut st, k, status.get(k));
            }
            let mut cm = Vec::new();
            if let Some(u) = status.get("currentCPUUtilizationPercentage").filter(|v| !v.is_null()) {
                cm.push(json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}));
            }
            for m in current.as_ref().and_then(Value::as_array).into_iter().flatten() {
                cm.push(status_to_v2(m));
            }
            if !cm.is_empty() {
                st.insert("currentMetrics".into(), Value::Array(cm));
            }
            if let Some(c) = conditions {
                st.insert("conditions".into(), c);
            }
            out["status"] = Value::Object(st);
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cpu_target_maps_to_a_resource_metric_and_back() {
            let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
            let v2 = to_v2(&v1);
            assert_eq!(v2["apiVersion"], "autoscaling/v2");
            assert_eq!(v2["spec"]["metrics"], json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]));
            let back = from_v2(&v2);
            assert_eq!(back["spec"], v1["spec"]);
            assert!(back.pointer("/metadata/annotations").is_none());
        }

        #[test]
        fn other_metrics_behavior_and_conditions_ride_in_annotations() {
            let v2 = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "minReplicas": 2,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
                "status": {"currentReplicas": 2, "desiredReplicas": 3, "conditions": [{"type": "AbleToScale", "status": "True"}],
                    "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "7"}}}]}});
            let v1 = from_v2(&v2);
            assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
            assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
            let anns = &v1["metadata"]["annotations"];
            let metrics: Value = serde_json::from_str(anns[METRICS].as_str().unwrap()).unwrap();
            assert_eq!(metrics[0]["resource"], json!({"name": "memory", "targetAverageValue": "100Mi"}));
            assert_eq!(metrics[1]["pods"], json!({"metricName": "qps", "targetAverageValue": "10"}));
            assert_eq!(metrics[2]["external"], json!({"metricName": "queue", "targetValue": "30"}));
            let back = to_v2(&v1);
            assert_eq!(back["spec"], v2["spec"]);
            assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
            assert_eq!(back["status"]["currentMetrics"], v2["status"]["currentMetrics"]);
            assert!(back.pointer("/metadata/annotations").is_none());
        }
    }
}
