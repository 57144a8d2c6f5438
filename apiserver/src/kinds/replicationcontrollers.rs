//! core/v1 ReplicationControllers: the ReplicaSet's older twin with a map selector, defaulted
//! from the template's labels as upstream's SetDefaults_ReplicationController does.

use crate::registry::strategy::Strategy;
use crate::table::{containers_images, i, or_none, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::{apps, defaults};
use serde_json::{json, Value};

pub struct ReplicationControllers;

fn is_empty_map(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_none_or(|m| m.is_empty())
}

impl Strategy for ReplicationControllers {
    fn default(&self, obj: &mut Value) {
        defaults::replication_controller(obj);
        let labels = obj.pointer("/spec/template/metadata/labels").filter(|l| !is_empty_map(Some(l))).cloned();
        let Some(labels) = labels else { return };
        if is_empty_map(obj.pointer("/spec/selector")) {
            obj["spec"]["selector"] = labels.clone();
        }
        if obj.get("metadata").is_some_and(Value::is_object) && is_empty_map(obj.pointer("/metadata/labels")) {
            obj["metadata"]["labels"] = labels;
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn bumps_generation(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
            return vec![field::required(&Path::new("spec").child("selector"), "")];
        };
        if is_empty_map(spec.get("selector")) {
            errs.push(field::required(&Path::new("spec").child("selector"), ""));
        }
        if spec.get("template").is_none_or(Value::is_null) {
            errs.push(field::required(&Path::new("spec").child("template"), ""));
            return errs;
        }
        // The set-based rules read a map selector as matchLabels.
        let mut as_set = spec.clone();
        if !is_empty_map(spec.get("selector")) {
            as_set["selector"] = json!({"matchLabels": spec["selector"].clone()});
            apps::validate_selector_and_template(&as_set, "replicationcontroller", &mut errs);
        }
        for key in ["replicas", "minReadySeconds"] {
            apps::non_negative(spec, key, &mut errs);
        }
        apps::restart_always(spec, &mut errs);
        errs
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
        let mut sel: Vec<String> = obj
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        sel.sort();
        cells.extend([
            json!(i(obj, "/spec/replicas")), json!(i(obj, "/status/replicas")), json!(i(obj, "/status/readyReplicas")), age,
            json!(c), json!(im), json!(or_none(sel.join(","))),
        ]);
        cells
    }
}
