//! Admission on create: the Priority plugin (spec.priority from the PriorityClass) and
//! DefaultTolerationSeconds (not-ready / unreachable NoExecute tolerations).

use crate::registry::Registry;
use crate::resources::{ResourceRow, StrategyKind};
use crate::status::ApiError;
use serde_json::{json, Value};

/// Built-in classes upstream creates at startup.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)];

pub async fn admit_create(reg: &Registry, row: &ResourceRow, obj: &mut Value) -> Result<(), ApiError> {
    if row.strategy != StrategyKind::Pod {
        return Ok(());
    }
    admit_priority(reg, obj).await?;
    default_tolerations(reg, obj);
    Ok(())
}

async fn admit_priority(reg: &Registry, pod: &mut Value) -> Result<(), ApiError> {
    let Some(pcs) = reg.store("scheduling.k8s.io", "v1", "priorityclasses") else { return Ok(()) };
    let class = pod.pointer("/spec/priorityClassName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    let (value, policy) = match &class {
        Some(name) => {
            let pc = match pcs.cached(None, name) {
                Some(o) => o.value(),
                None => pcs.get(None, name, false).await.map_err(|_| {
                    ApiError::Forbidden(format!("pods \"{}\" is forbidden: no PriorityClass with name {name} was found", pod_name(pod)))
                })?,
            };
            (pc.get("value").and_then(Value::as_i64).unwrap_or(0), pc.get("preemptionPolicy").cloned())
        }
        None => {
            let (all, _) = pcs.cache.snapshot(&pcs.prefix(None));
            match all.iter().find(|o| o.fields.get("globalDefault") == Some(&json!(true))).map(|o| o.value()) {
                Some(d) => {
                    pod["spec"]["priorityClassName"] = d["metadata"]["name"].clone();
                    (d.get("value").and_then(Value::as_i64).unwrap_or(0), d.get("preemptionPolicy").cloned())
                }
                None => (0, None),
            }
        }
    };
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        if given != value {
            return Err(ApiError::Forbidden(format!(
                "pods \"{}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name",
                pod_name(pod)
            )));
        }
    }
    pod["spec"]["priority"] = json!(value);
    pod["spec"]["preemptionPolicy"] = policy.unwrap_or(json!("PreemptLowerPriority"));
    Ok(())
}

fn pod_name(pod: &Value) -> String {
    pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string()
}

/// Adds `key:NoExecute` tolerations for not-ready and unreachable nodes unless present.
pub fn default_tolerations(reg: &Registry, pod: &mut Value) {
    let spec = &mut pod["spec"];
    if !spec.is_object() {
        return;
    }
    let mut tols = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    for (key, secs) in [
        ("node.kubernetes.io/not-ready", reg.admission.default_not_ready_toleration_seconds),
        ("node.kubernetes.io/unreachable", reg.admission.default_unreachable_toleration_seconds),
    ] {
        let tolerated = tols.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str);
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            (k == Some(key) || (k.is_none() && op == "Exists")) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
        }
    }
    spec["tolerations"] = json!(tols);
}
