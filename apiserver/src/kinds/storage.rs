//! storage.k8s.io/v1 StorageClasses, CSIDrivers and CSINodes (pkg/registry/storage/*): upstream's
//! defaults, the fields it keeps immutable, and printStorageClass/printCSIDriver/printCSINode.

use crate::registry::strategy::Strategy;
use crate::table::{arr, s, Column};
use crate::types::FieldCause;
use crate::validation::defaults::set_if_absent as set_default;
use crate::validation::field::{self, Path};
use serde_json::{json, Value};

fn immutable(obj: &Value, old: &Value, keys: &[&str], root: Option<&str>) -> Vec<FieldCause> {
    let (new_root, old_root) = match root {
        Some(r) => (obj.get(r).unwrap_or(&Value::Null), old.get(r).unwrap_or(&Value::Null)),
        None => (obj, old),
    };
    keys.iter()
        .filter(|k| new_root.get(**k) != old_root.get(**k))
        .map(|k| {
            let path = match root {
                Some(r) => Path::new(r).child(k),
                None => Path::new(k),
            };
            field::invalid(&path, new_root.get(*k).unwrap_or(&Value::Null), field::IMMUTABLE)
        })
        .collect()
}

pub struct StorageClasses;

impl Strategy for StorageClasses {
    fn default(&self, obj: &mut Value) {
        if obj.is_object() {
            set_default(obj, "reclaimPolicy", json!("Delete"));
            set_default(obj, "volumeBindingMode", json!("Immediate"));
        }
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        match obj.get("provisioner").and_then(Value::as_str) {
            None | Some("") => errs.push(field::required(&Path::new("provisioner"), "")),
            Some(p) if p.len() > 63 => errs.push(field::too_long(&Path::new("provisioner"), 63)),
            _ => {}
        }
        if let Some(v) = obj.get("reclaimPolicy").filter(|v| !matches!(v.as_str(), Some("Delete" | "Retain"))) {
            errs.push(field::not_supported(&Path::new("reclaimPolicy"), v, &["Delete", "Retain"]));
        }
        if let Some(v) = obj.get("volumeBindingMode").filter(|v| !matches!(v.as_str(), Some("Immediate" | "WaitForFirstConsumer"))) {
            errs.push(field::not_supported(&Path::new("volumeBindingMode"), v, &["Immediate", "WaitForFirstConsumer"]));
        }
        errs
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        // Everything but metadata and allowVolumeExpansion is fixed at creation.
        immutable(obj, old, &["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"], None)
    }
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Provisioner", "string", 0), Column("ReclaimPolicy", "string", 0),
            Column("VolumeBindingMode", "string", 0), Column("AllowVolumeExpansion", "string", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
            .iter()
            .any(|a| obj.pointer("/metadata/annotations").and_then(|m| m.get(*a)).and_then(Value::as_str) == Some("true"));
        if default {
            cells[0] = json!(format!("{} (default)", s(obj, "/metadata/name")));
        }
        cells.extend([
            json!(s(obj, "/provisioner")), json!(s(obj, "/reclaimPolicy")), json!(s(obj, "/volumeBindingMode")),
            json!(obj.get("allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false).to_string()), age,
        ]);
        cells
    }
}

pub struct CsiDrivers;

impl Strategy for CsiDrivers {
    fn default(&self, obj: &mut Value) {
        if !obj.get("spec").is_some_and(Value::is_object) {
            return;
        }
        let spec = &mut obj["spec"];
        set_default(spec, "attachRequired", json!(true));
        set_default(spec, "podInfoOnMount", json!(false));
        set_default(spec, "storageCapacity", json!(false));
        set_default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
        set_default(spec, "requiresRepublish", json!(false));
        set_default(spec, "volumeLifecycleModes", json!(["Persistent"]));
        set_default(spec, "seLinuxMount", json!(false));
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        immutable(obj, old, &["attachRequired", "fsGroupPolicy", "volumeLifecycleModes"], Some("spec"))
    }
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("AttachRequired", "boolean", 0), Column("PodInfoOnMount", "boolean", 0),
            Column("StorageCapacity", "boolean", 0), Column("TokenRequests", "string", 0), Column("RequiresRepublish", "boolean", 0),
            Column("Modes", "string", 0), Column("Age", "string", 0),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let b = |k: &str| json!(obj.pointer(&format!("/spec/{k}")).and_then(Value::as_bool).unwrap_or(false));
        let tokens: Vec<&str> = arr(obj, "/spec/tokenRequests").iter().map(|t| s(t, "/audience")).collect();
        let modes: Vec<&str> = arr(obj, "/spec/volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
        cells.extend([
            b("attachRequired"), b("podInfoOnMount"), b("storageCapacity"),
            json!(if tokens.is_empty() { "<unset>".to_string() } else { tokens.join(",") }), b("requiresRepublish"),
            json!(modes.join(",")), age,
        ]);
        cells
    }
}

pub struct CsiNodes;

impl Strategy for CsiNodes {
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Drivers", "integer", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        cells.insert(1, json!(arr(obj, "/spec/drivers").len()));
        cells
    }
}
