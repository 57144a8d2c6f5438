//! pods/eviction (policy/v1 Eviction, pkg/registry/core/pod/storage/eviction.go): a pod goes
//! only if its PodDisruptionBudget allows one more disruption now. The budget's allowance is
//! spent in its status (with the pod recorded under disruptedPods) before the pod is deleted,
//! so two evictions racing for the last allowed disruption cannot both win. `kubectl drain`
//! is built on this.

use super::store::{now, DeleteOptions, Store};
use super::strategy::Part;
use super::{decoding::Verb, Registry, WriteOptions};
use crate::status::{ApiError, Target};
use crate::types::FieldCause;
use serde_json::{json, Value};

/// Pods that no budget protects: finished, not started, or already being deleted.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed" | "Pending"))
        || pod.pointer("/metadata/deletionTimestamp").is_some()
}

fn budget_cause(message: String) -> Vec<FieldCause> {
    vec![FieldCause { reason: "DisruptionBudget".into(), message, field: String::new() }]
}

/// Evicts `name`: checks and spends its budget, then deletes it with the eviction's options.
pub async fn evict(registry: &Registry, pods: &Store, ns: &str, name: &str, delete: DeleteOptions) -> Result<(), ApiError> {
    let pod = pods.get(Some(ns), name, false).await?;
    if !can_ignore_budget(&pod) {
        spend_budget(registry, ns, name, &pod).await?;
    }
    match pods.delete(Some(ns), name, &delete).await {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn spend_budget(registry: &Registry, ns: &str, pod_name: &str, pod: &Value) -> Result<(), ApiError> {
    let Some(pdbs) = registry.store("policy", "v1", "poddisruptionbudgets") else { return Ok(()) };
    let labels = pod.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
    let (all, _) = pdbs.cache.snapshot(&pdbs.prefix(Some(ns)));
    let matching: Vec<Value> = all
        .iter()
        .map(|o| o.value())
        .filter(|pdb| {
            // policy/v1: an empty selector selects every pod of the namespace, a missing one none.
            pdb.pointer("/spec/selector").is_some_and(|sel| crate::validation::meta::selector_matches(sel, &labels))
        })
        .collect();
    let pdb = match matching.as_slice() {
        [] => return Ok(()),
        [one] => one,
        _ => return Err(ApiError::Internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into())),
    };
    let pdb_name = pdb.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let target = Target::new("policy", "poddisruptionbudgets", &pdb_name);
    let opts = WriteOptions::default();
    pdbs.write(Some(ns), &pdb_name, Part::Status, Verb::Update, &opts, |current| {
        let Some(cur) = current else { return Err(ApiError::NotFound(target.clone())) };
        let generation = cur.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let observed = cur.pointer("/status/observedGeneration").and_then(Value::as_i64).unwrap_or(0);
        if observed < generation {
            return Err(ApiError::TooManyRequests {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                causes: budget_cause(format!("The disruption budget {pdb_name} is still being processed by the server.")),
            });
        }
        let allowed = cur.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
        if allowed < 0 {
            return Err(ApiError::Forbidden("pdb disruptions allowed is negative".into()));
        }
        if allowed == 0 {
            let desired = cur.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0);
            let healthy = cur.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0);
            return Err(ApiError::TooManyRequests {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                causes: budget_cause(format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently")),
            });
        }
        let mut next = cur.clone();
        next["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !next["status"].get("disruptedPods").is_some_and(Value::is_object) {
            next["status"]["disruptedPods"] = json!({});
        }
        next["status"]["disruptedPods"][pod_name] = json!(now());
        if let Some(m) = next["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        Ok(next)
    })
    .await
    .map(|_| ())
}

/// The DeleteOptions an Eviction body carries (policy/v1 `deleteOptions`).
pub fn delete_options_of(eviction: &Value) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    let Some(d) = eviction.get("deleteOptions").filter(|d| !d.is_null()) else { return Ok(opts) };
    let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
        serde_json::from_value(d.clone()).map_err(|e| ApiError::BadRequest(format!("invalid deleteOptions: {e}")))?;
    opts.grace_period_seconds = typed.grace_period_seconds;
    opts.propagation_policy = typed.propagation_policy;
    if let Some(p) = typed.preconditions {
        opts.uid = p.uid;
        opts.resource_version = p.resource_version;
    }
    opts.dry_run = typed.dry_run.is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok(opts)
}
