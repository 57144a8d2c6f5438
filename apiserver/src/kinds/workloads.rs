//! Deployments, ReplicaSets, StatefulSets and DaemonSets (pkg/registry/apps/*/strategy.go):
//! status reset on create, generation on spec changes, their validation and printers.

use crate::registry::strategy::Strategy;
use crate::table::{containers_images, i, or_none, selector_string, Column};
use crate::types::FieldCause;
use crate::validation::{apps, defaults};
use serde_json::{json, Value};

/// What every workload's create does: the status starts empty (required counters at zero).
fn reset_status(obj: &mut Value) {
    obj["status"] = json!({});
}

fn ready_of_replicas(obj: &Value) -> Value {
    json!(format!("{}/{}", i(obj, "/status/readyReplicas"), i(obj, "/spec/replicas")))
}

pub struct Deployments;

impl Strategy for Deployments {
    fn default(&self, obj: &mut Value) {
        defaults::deployment(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        apps::validate_workload("Deployment", obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        apps::validate_workload_update("Deployment", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Ready", "string", 0), Column("Up-to-date", "integer", 0), Column("Available", "integer", 0),
            Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1), Column("Selector", "string", 1),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let (c, im) = containers_images(obj, "/spec/template/spec/containers");
        cells.extend([
            ready_of_replicas(obj), json!(i(obj, "/status/updatedReplicas")), json!(i(obj, "/status/availableReplicas")), age,
            json!(c), json!(im), json!(selector_string(obj)),
        ]);
        cells
    }
}

pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn default(&self, obj: &mut Value) {
        defaults::replica_set(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        apps::validate_workload("ReplicaSet", obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        apps::validate_workload_update("ReplicaSet", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Desired", "integer", 0), Column("Current", "integer", 0), Column("Ready", "integer", 0),
            Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1), Column("Selector", "string", 1),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let (c, im) = containers_images(obj, "/spec/template/spec/containers");
        cells.extend([
            json!(i(obj, "/spec/replicas")), json!(i(obj, "/status/replicas")), json!(i(obj, "/status/readyReplicas")), age,
            json!(c), json!(im), json!(selector_string(obj)),
        ]);
        cells
    }
}

pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn default(&self, obj: &mut Value) {
        defaults::stateful_set(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        apps::validate_workload("StatefulSet", obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        apps::validate_workload_update("StatefulSet", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Ready", "string", 0), Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let (c, im) = containers_images(obj, "/spec/template/spec/containers");
        cells.extend([ready_of_replicas(obj), age, json!(c), json!(im)]);
        cells
    }
}

pub struct DaemonSets;

impl Strategy for DaemonSets {
    fn default(&self, obj: &mut Value) {
        defaults::daemon_set(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        apps::validate_workload("DaemonSet", obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        apps::validate_workload_update("DaemonSet", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Desired", "integer", 0), Column("Current", "integer", 0), Column("Ready", "integer", 0),
            Column("Up-to-date", "integer", 0), Column("Available", "integer", 0), Column("Node Selector", "string", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let sel = obj.pointer("/spec/template/spec/nodeSelector").and_then(Value::as_object).map(|m| {
            let mut v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
            v.sort();
            v.join(",")
        });
        cells.extend([
            json!(i(obj, "/status/desiredNumberScheduled")), json!(i(obj, "/status/currentNumberScheduled")),
            json!(i(obj, "/status/numberReady")), json!(i(obj, "/status/updatedNumberScheduled")),
            json!(i(obj, "/status/numberAvailable")), json!(or_none(sel.unwrap_or_default())), age,
        ]);
        cells
    }
}

/// policy/v1 PodDisruptionBudgets: status reset and generation like the workloads.
pub struct PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Min Available", "string", 0), Column("Max Unavailable", "string", 0),
            Column("Allowed Disruptions", "integer", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let shown = |ptr: &str| match obj.pointer(ptr) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "N/A".into(),
        };
        cells.extend([json!(shown("/spec/minAvailable")), json!(shown("/spec/maxUnavailable")), json!(i(obj, "/status/disruptionsAllowed")), age]);
        cells
    }
}
