//! ConfigMaps and Secrets: key validation, Secret's type and stringData, immutability.

use crate::registry::strategy::Strategy;
use crate::table::{s, Column};
use crate::types::FieldCause;
use crate::validation::{core, defaults};
use serde_json::{json, Value};

fn count(obj: &Value, key: &str) -> usize {
    obj.get(key).and_then(Value::as_object).map_or(0, |m| m.len())
}

pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        core::validate_config_map(obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        core::validate_data_update("ConfigMap", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Data", "integer", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(count(obj, "data") + count(obj, "binaryData")));
        cells
    }
}

pub struct Secrets;

impl Strategy for Secrets {
    fn default(&self, obj: &mut Value) {
        defaults::secret(obj);
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        core::validate_secret(obj)
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        core::validate_data_update("Secret", obj, old)
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Type", "string", 0), Column("Data", "integer", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(s(obj, "/type")));
        cells.insert(2, json!(count(obj, "data")));
        cells
    }
}
