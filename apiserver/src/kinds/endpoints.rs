//! core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlices: port protocols default to TCP.

use crate::registry::strategy::Strategy;
use crate::table::{arr, i, or_none, s, Column};
use crate::validation::defaults;
use serde_json::{json, Value};

pub struct Endpoints;

impl Strategy for Endpoints {
    fn default(&self, obj: &mut Value) {
        defaults::endpoints(obj);
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Endpoints", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut eps = Vec::new();
        for subset in arr(obj, "/subsets") {
            for a in arr(subset, "/addresses") {
                let ports = arr(subset, "/ports");
                if ports.is_empty() {
                    eps.push(s(a, "/ip").to_string());
                }
                for p in ports {
                    eps.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
                }
            }
        }
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(or_none(eps.join(","))));
        cells
    }
}

pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    fn default(&self, obj: &mut Value) {
        defaults::endpoint_slice(obj);
    }
}
