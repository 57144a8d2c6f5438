//! Subresources that are not a plain part of the object: pods/binding and the
//! autoscaling/v1 Scale of workloads.

use super::decoding::Verb;
use super::store::{now, patch_error, Store, WriteOptions};
use super::strategy::Part;
use crate::patch::{self, PatchType};
use crate::status::ApiError;
use crate::types::Gvk;
use serde_json::{json, Value};

/// The Scale view of a workload.
pub fn scale_of(obj: &Value) -> Value {
    // A ReplicationController's selector is the label map itself.
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .or_else(|| obj.pointer("/spec/selector").filter(|s| s.get("matchLabels").is_none() && s.get("matchExpressions").is_none()))
        .and_then(Value::as_object)
        .map(|m| {
            let mut parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
            parts.sort();
            parts.join(",")
        })
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut m = serde_json::Map::new();
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

impl Store {
    /// POST pods/{name}/binding: sets spec.nodeName and PodScheduled once; a bound pod is a 409.
    pub async fn bind(&self, ns: Option<&str>, name: &str, binding: &Value) -> Result<(), ApiError> {
        let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
        if node.is_empty() {
            let cause = crate::types::FieldCause { reason: "FieldValueRequired".into(), message: "Required value".into(), field: "target.name".into() };
            return Err(ApiError::invalid(self.target(name), "Binding", vec![cause]));
        }
        let uid = binding.pointer("/metadata/uid").and_then(Value::as_str).map(String::from);
        let target = self.target(name);
        let opts = WriteOptions::default();
        self.write(ns, name, Part::Binding, Verb::Update, &opts, |current| {
            let Some(cur) = current else { return Err(ApiError::NotFound(target.clone())) };
            let mut pod = cur.clone();
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::Conflict { target: target.clone(), message: "pod is being deleted, cannot be assigned to a host".into(), causes: vec![] });
            }
            if let Some(existing) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(ApiError::Conflict {
                    target: target.clone(),
                    message: format!("pod {name} is already assigned to node \"{existing}\""),
                    causes: vec![],
                });
            }
            if let Some(uid) = &uid {
                pod["metadata"]["uid"] = json!(uid);
            }
            pod["spec"]["nodeName"] = json!(node);
            // The status half is written here too: binding owns PodScheduled.
            let conds = pod["status"].get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
            pod["status"]["conditions"] = json!(conds);
            Ok(pod)
        })
        .await
        .map(|_| ())
    }

    pub async fn get_scale(&self, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        Ok(scale_of(&self.get(ns, name, false).await?))
    }

    /// PUT or PATCH of the Scale: only spec.replicas reaches the object.
    pub async fn update_scale(
        &self,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        patch_type: Option<PatchType>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let target = self.target(name);
        let scale_gvk = Gvk::new("autoscaling", "v1", "Scale");
        let written = self
            .write(ns, name, Part::Main, Verb::Update, opts, |current| {
                let Some(cur) = current else { return Err(ApiError::NotFound(target.clone())) };
                let scale = scale_of(cur);
                let new_scale: Value = match patch_type {
                    None => serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?,
                    Some(PatchType::Apply) => {
                        let applied: Value = serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                        let mut merged = scale.clone();
                        json_patch::merge(&mut merged, &applied);
                        merged
                    }
                    Some(pt) => patch::apply_patch(&scale_gvk, &scale, body, pt).map_err(|e| patch_error(e, &target))?,
                };
                let mut new_scale = new_scale;
                crate::validation::decode::decode(&scale_gvk, &mut new_scale)
                    .map_err(|e| ApiError::BadRequest(format!("Scale in version \"v1\" cannot be handled as a Scale: {e}")))?;
                let replicas = new_scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
                if replicas < 0 {
                    let cause = crate::types::FieldCause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                        field: "spec.replicas".into(),
                    };
                    return Err(ApiError::invalid(target.clone(), "Scale", vec![cause]));
                }
                let mut obj = cur.clone();
                obj["spec"]["replicas"] = json!(replicas);
                match new_scale.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                    Some(rv) if patch_type.is_none() && !rv.is_empty() => obj["metadata"]["resourceVersion"] = json!(rv),
                    _ => {
                        if let Some(m) = obj["metadata"].as_object_mut() {
                            m.remove("resourceVersion");
                        }
                    }
                }
                Ok(obj)
            })
            .await?;
        Ok(scale_of(&written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_of_a_deployment() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
