//! Deployments, ReplicaSets, StatefulSets and DaemonSets (pkg/registry/apps/*/strategy.go):
//! one strategy for the four, which differ only in their defaults, validation details and
//! printer; each kind is a static `Workload`.

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

pub struct Workload {
    kind: &'static str,
    default: fn(&mut Value),
    columns: &'static [Column],
    cells: fn(&Value) -> Vec<Value>,
}

impl Strategy for Workload {
    fn default(&self, obj: &mut Value) {
        (self.default)(obj);
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        reset_status(obj);
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        if self.kind == "StatefulSet" {
            return apps::validate_workload(self.kind, &with_claim_template_volumes(obj));
        }
        apps::validate_workload(self.kind, obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        apps::validate_workload_update(self.kind, obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        self.columns
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        (self.cells)(obj)
    }
}

/// A StatefulSet's containers may mount its volumeClaimTemplates by name:
/// the controller adds them to each pod as claim volumes, so the template
/// is checked as the pods will be.
fn with_claim_template_volumes(obj: &Value) -> std::borrow::Cow<'_, Value> {
    let names: Vec<Value> = obj
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .map(|n| json!({"name": n, "persistentVolumeClaim": {"claimName": n}}))
        .collect();
    let Some(spec) = obj.pointer("/spec/template/spec").filter(|s| s.is_object() && !names.is_empty()) else {
        return std::borrow::Cow::Borrowed(obj);
    };
    let mut spec = spec.clone();
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    let taken: Vec<Value> = volumes.iter().filter_map(|v| v.get("name").cloned()).collect();
    let mut all = volumes;
    all.extend(names.into_iter().filter(|v| !taken.contains(&v["name"])));
    spec["volumes"] = Value::Array(all);
    let mut out = obj.clone();
    out["spec"]["template"]["spec"] = spec;
    std::borrow::Cow::Owned(out)
}

pub static DEPLOYMENTS: Workload = Workload {
    kind: "Deployment",
    default: defaults::deployment,
    columns: &[
        Column("Name", "string", 0), Column("Ready", "string", 0), Column("Up-to-date", "integer", 0), Column("Available", "integer", 0),
        Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1), Column("Selector", "string", 1),
    ],
    cells: deployment_cells,
};

fn deployment_cells(obj: &Value) -> Vec<Value> {
    let mut cells = crate::table::name_and_age(obj);
    let age = cells.pop().unwrap_or_default();
    let (c, im) = containers_images(obj, "/spec/template/spec/containers");
    cells.extend([
        ready_of_replicas(obj), json!(i(obj, "/status/updatedReplicas")), json!(i(obj, "/status/availableReplicas")), age,
        json!(c), json!(im), json!(selector_string(obj)),
    ]);
    cells
}

pub static REPLICA_SETS: Workload = Workload {
    kind: "ReplicaSet",
    default: defaults::replica_set,
    columns: &[
        Column("Name", "string", 0), Column("Desired", "integer", 0), Column("Current", "integer", 0), Column("Ready", "integer", 0),
        Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1), Column("Selector", "string", 1),
    ],
    cells: replica_set_cells,
};

fn replica_set_cells(obj: &Value) -> Vec<Value> {
    let mut cells = crate::table::name_and_age(obj);
    let age = cells.pop().unwrap_or_default();
    let (c, im) = containers_images(obj, "/spec/template/spec/containers");
    cells.extend([
        json!(i(obj, "/spec/replicas")), json!(i(obj, "/status/replicas")), json!(i(obj, "/status/readyReplicas")), age,
        json!(c), json!(im), json!(selector_string(obj)),
    ]);
    cells
}

pub static STATEFUL_SETS: Workload = Workload {
    kind: "StatefulSet",
    default: defaults::stateful_set,
    columns: &[Column("Name", "string", 0), Column("Ready", "string", 0), Column("Age", "string", 0), Column("Containers", "string", 1), Column("Images", "string", 1)],
    cells: stateful_set_cells,
};

fn stateful_set_cells(obj: &Value) -> Vec<Value> {
    let mut cells = crate::table::name_and_age(obj);
    let age = cells.pop().unwrap_or_default();
    let (c, im) = containers_images(obj, "/spec/template/spec/containers");
    cells.extend([ready_of_replicas(obj), age, json!(c), json!(im)]);
    cells
}

pub static DAEMON_SETS: Workload = Workload {
    kind: "DaemonSet",
    default: defaults::daemon_set,
    columns: &[
        Column("Name", "string", 0), Column("Desired", "integer", 0), Column("Current", "integer", 0), Column("Ready", "integer", 0),
        Column("Up-to-date", "integer", 0), Column("Available", "integer", 0), Column("Node Selector", "string", 0), Column("Age", "string", 0),
    ],
    cells: daemon_set_cells,
};

fn daemon_set_cells(obj: &Value) -> Vec<Value> {
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
