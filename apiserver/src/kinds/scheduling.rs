//! scheduling.k8s.io/v1 PriorityClasses.

use crate::registry::strategy::Strategy;
use crate::table::{i, Column};
use crate::types::FieldCause;
use crate::validation::{defaults, scheduling};
use serde_json::{json, Value};

pub struct PriorityClasses;

impl Strategy for PriorityClasses {
    fn default(&self, obj: &mut Value) {
        defaults::priority_class(obj);
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        scheduling::validate_priority_class(obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        scheduling::validate_priority_class_update(obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Value", "integer", 0), Column("Global-Default", "boolean", 0), Column("Age", "string", 0),
            Column("Preemption Policy", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(i(obj, "/value")));
        cells.insert(2, json!(obj.get("globalDefault") == Some(&json!(true))));
        cells.push(json!(obj.get("preemptionPolicy").and_then(Value::as_str).unwrap_or("PreemptLowerPriority")));
        cells
    }
}
