//! Priority: spec.priority and preemptionPolicy come from the pod's PriorityClass, or from the
//! global default class; a pod that states a different priority is refused.

use super::{Attributes, Plugin};
use crate::registry::Store;
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

/// Built-in classes upstream creates at startup.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)];

pub struct Priority {
    classes: Arc<Store>,
}

impl Priority {
    pub fn new(classes: Arc<Store>) -> Self {
        Priority { classes }
    }

    async fn admit_pod(&self, pod: &mut Value) -> Result<(), ApiError> {
        let pcs = &self.classes;
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
}

fn pod_name(pod: &Value) -> String {
    pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string()
}

impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, pod: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if attrs.is("", "pods") && pod.get("spec").is_some_and(Value::is_object) {
                self.admit_pod(pod).await?;
            }
            Ok(())
        })
    }
}
