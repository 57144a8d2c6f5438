//! core/v1 Events (printEvent's columns) and events.k8s.io/v1 Events.

use crate::registry::strategy::Strategy;
use crate::table::{age_of, s, Column};
use serde_json::{json, Value};

pub struct Events;

impl Strategy for Events {
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Last Seen", "string", 0), Column("Type", "string", 0), Column("Reason", "string", 0), Column("Object", "string", 0),
            Column("Message", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let last = obj.get("lastTimestamp").filter(|v| !v.is_null()).or_else(|| obj.get("eventTime")).or_else(|| obj.pointer("/metadata/creationTimestamp"));
        let object = format!("{}/{}", s(obj, "/involvedObject/kind").to_lowercase(), s(obj, "/involvedObject/name"));
        vec![json!(age_of(last)), json!(s(obj, "/type")), json!(s(obj, "/reason")), json!(object), json!(s(obj, "/message"))]
    }
}

/// events.k8s.io/v1: the same objects, printed with the default columns.
pub struct EventsV1;

impl Strategy for EventsV1 {}
