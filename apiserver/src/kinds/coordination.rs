//! coordination.k8s.io/v1 Leases.

use crate::registry::strategy::Strategy;
use crate::table::{s, Column};
use crate::types::FieldCause;
use crate::validation::core;
use serde_json::{json, Value};

pub struct Leases;

impl Strategy for Leases {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        core::validate_lease(obj)
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Holder", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(s(obj, "/spec/holderIdentity")));
        cells
    }
}
