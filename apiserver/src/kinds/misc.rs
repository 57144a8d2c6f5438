//! Kinds that are stored and printed with little of their own: core/v1 PodTemplates and
//! node.k8s.io/v1 RuntimeClasses.

use crate::registry::strategy::Strategy;
use crate::table::{containers_images, s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::{defaults, names, pod};
use serde_json::{json, Value};

pub struct PodTemplates;

impl Strategy for PodTemplates {
    fn default(&self, obj: &mut Value) {
        defaults::pod_template(obj);
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        pod::validate_pod_spec(obj.pointer("/template/spec"), &Path::new("template").child("spec"))
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Template", "string", 0), Column("Containers", "string", 0), Column("Images", "string", 0), Column("Pod Labels", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let (c, im) = containers_images(obj, "/template/spec/containers");
        let mut labels: Vec<String> = obj
            .pointer("/template/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        labels.sort();
        vec![json!(s(obj, "/metadata/name")), json!(c), json!(im), json!(labels.join(","))]
    }
}

pub struct RuntimeClasses;

impl Strategy for RuntimeClasses {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let path = Path::new("handler");
        match obj.get("handler").and_then(Value::as_str) {
            None | Some("") => vec![field::required(&path, "")],
            Some(h) => names::dns1123_label(h).into_iter().map(|m| field::invalid(&path, &json!(h), &m)).collect(),
        }
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        if obj.get("handler") != old.get("handler") {
            return vec![field::invalid(&Path::new("handler"), obj.get("handler").unwrap_or(&Value::Null), field::IMMUTABLE)];
        }
        Vec::new()
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Handler", "string", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(s(obj, "/handler")));
        cells
    }
}
