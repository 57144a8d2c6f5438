//! ServiceAccounts: a delete answers with the deleted object, as upstream's does.

use crate::registry::strategy::Strategy;
use crate::table::{arr, Column};
use serde_json::{json, Value};

pub struct ServiceAccounts;

impl Strategy for ServiceAccounts {
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Secrets", "integer", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(arr(obj, "/secrets").len()));
        cells
    }
}
