//! Namespaces: label-syntax names, the `kubernetes` finalizer and Active phase on create, and a
//! delete that turns the namespace Terminating until its content is gone.

use crate::registry::strategy::Strategy;
use crate::table::{s, Column};
use crate::validation::{defaults, meta::NameRule};
use serde_json::{json, Value};

pub struct Namespaces;

impl Strategy for Namespaces {
    fn default(&self, obj: &mut Value) {
        defaults::namespace(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        if obj["spec"].get("finalizers").is_none() {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        obj["status"] = json!({"phase": "Active"});
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    /// spec.finalizers, which the namespace controller empties once the content is gone.
    fn blocks_deletion(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
    }

    fn mark_deleting(&self, obj: &mut Value) -> bool {
        if obj.pointer("/status/phase") == Some(&json!("Terminating")) {
            return false;
        }
        obj["status"]["phase"] = json!("Terminating");
        true
    }

    fn takes_propagation_finalizers(&self) -> bool {
        false
    }

    fn deletion_gates_admission(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Status", "string", 0), Column("Age", "string", 0)]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(s(obj, "/status/phase")));
        cells
    }
}
