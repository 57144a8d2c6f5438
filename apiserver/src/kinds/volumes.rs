//! core/v1 PersistentVolumes and PersistentVolumeClaims (pkg/registry/core/persistentvolume*,
//! pkg/apis/core/validation): defaults, phase Pending on create, the rules on access modes,
//! capacity and sources, what a bound claim keeps immutable, and their printers.

use crate::registry::strategy::Strategy;
use crate::table::{arr, s, Column};
use crate::types::FieldCause;
use crate::validation::defaults::set_if_absent;
use crate::validation::field::{self, Path};
use crate::validation::quantity::{Quantity, QUANTITY_REGEX_MSG};
use serde_json::{json, Value};

const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];
const RECLAIM: &[&str] = &["Retain", "Delete", "Recycle"];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
/// The PersistentVolumeSource members: a volume names exactly one.
const PV_SOURCES: &[&str] = &[
    "hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "glusterfs", "awsElasticBlockStore",
    "gcePersistentDisk", "azureDisk", "azureFile", "cinder", "flexVolume", "flocker", "vsphereVolume", "quobyte",
    "portworxVolume", "scaleIO", "storageos", "photonPersistentDisk",
];

fn access_modes(spec: &Value, path: &Path, errs: &mut Vec<FieldCause>) {
    let modes = spec.get("accessModes").and_then(Value::as_array).cloned().unwrap_or_default();
    if modes.is_empty() {
        errs.push(field::required(&path.child("accessModes"), ""));
    }
    for m in &modes {
        if !m.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            errs.push(field::not_supported(&path.child("accessModes"), m, ACCESS_MODES));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.push(field::forbidden(&path.child("accessModes"), "may not use ReadWriteOncePod with other access modes"));
    }
}

/// `storage` must be there, parse and be positive.
fn storage_quantity(map: Option<&Value>, path: &Path, errs: &mut Vec<FieldCause>) {
    let p = path.key("storage");
    match map.and_then(|m| m.get("storage")) {
        None => errs.push(field::required(&p, "")),
        Some(v) => match Quantity::from_json(v) {
            None => errs.push(field::invalid(&p, v, QUANTITY_REGEX_MSG)),
            Some(q) if q.is_negative() || q.is_zero() => errs.push(field::invalid(&p, v, "must be greater than zero")),
            Some(_) => {}
        },
    }
}

fn enum_field(spec: &Value, key: &str, allowed: &[&str], path: &Path, errs: &mut Vec<FieldCause>) {
    if let Some(v) = spec.get(key).filter(|v| !v.as_str().is_some_and(|x| allowed.contains(&x))) {
        errs.push(field::not_supported(&path.child(key), v, allowed));
    }
}

fn modes_string(obj: &Value, ptr: &str) -> String {
    fn short(m: &str) -> &str {
        match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        }
    }
    arr(obj, ptr).iter().filter_map(Value::as_str).map(short).collect::<Vec<_>>().join(",")
}

pub struct PersistentVolumes;

impl Strategy for PersistentVolumes {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            set_if_absent(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set_if_absent(spec, "volumeMode", json!("Filesystem"));
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let sp = Path::new("spec");
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        access_modes(&spec, &sp, &mut errs);
        storage_quantity(spec.get("capacity"), &sp.child("capacity"), &mut errs);
        let sources: Vec<&&str> = PV_SOURCES.iter().filter(|k| spec.get(**k).is_some_and(|v| !v.is_null())).collect();
        match sources.len() {
            0 => errs.push(field::required(&sp, "must specify a volume type")),
            1 => {}
            _ => errs.push(field::forbidden(&sp.child(sources[1]), "may not specify more than 1 volume type")),
        }
        if spec.get("local").is_some_and(|v| !v.is_null()) && spec.get("nodeAffinity").is_none_or(Value::is_null) {
            errs.push(field::required(&sp.child("nodeAffinity"), "Local volume requires node affinity"));
        }
        enum_field(&spec, "persistentVolumeReclaimPolicy", RECLAIM, &sp, &mut errs);
        enum_field(&spec, "volumeMode", VOLUME_MODES, &sp, &mut errs);
        errs
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        let (n, o) = (obj.pointer("/spec/volumeMode"), old.pointer("/spec/volumeMode"));
        if n != o {
            return vec![field::invalid(&Path::new("spec").child("volumeMode"), n.unwrap_or(&Value::Null), field::IMMUTABLE)];
        }
        Vec::new()
    }
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Capacity", "string", 0), Column("Access Modes", "string", 0),
            Column("Reclaim Policy", "string", 0), Column("Status", "string", 0), Column("Claim", "string", 0),
            Column("StorageClass", "string", 0), Column("VolumeAttributesClass", "string", 0), Column("Reason", "string", 0),
            Column("Age", "string", 0), Column("VolumeMode", "string", 1),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let claim = match (s(obj, "/spec/claimRef/namespace"), s(obj, "/spec/claimRef/name")) {
            (_, "") => String::new(),
            (ns, name) => format!("{ns}/{name}"),
        };
        let vac = obj.pointer("/spec/volumeAttributesClassName").and_then(Value::as_str).unwrap_or("<unset>");
        cells.extend([
            json!(s(obj, "/spec/capacity/storage")), json!(modes_string(obj, "/spec/accessModes")),
            json!(s(obj, "/spec/persistentVolumeReclaimPolicy")), json!(s(obj, "/status/phase")), json!(claim),
            json!(s(obj, "/spec/storageClassName")), json!(vac), json!(s(obj, "/status/reason")), age,
            json!(s(obj, "/spec/volumeMode")),
        ]);
        cells
    }
}

pub struct PersistentVolumeClaims;

impl Strategy for PersistentVolumeClaims {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            set_if_absent(spec, "volumeMode", json!("Filesystem"));
        }
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = Vec::new();
        let sp = Path::new("spec");
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        access_modes(&spec, &sp, &mut errs);
        storage_quantity(spec.pointer("/resources/requests"), &sp.child("resources").child("requests"), &mut errs);
        enum_field(&spec, "volumeMode", VOLUME_MODES, &sp, &mut errs);
        errs
    }
    /// After creation only the requested size (expansion) and, while unbound, the volume name
    /// and class may change: the rest of spec is immutable, as upstream's message says.
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        let strip = |v: &Value| {
            let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
            if let Some(m) = spec.as_object_mut() {
                m.remove("resources");
                if old.pointer("/spec/volumeName").and_then(Value::as_str).is_none_or(str::is_empty) {
                    m.remove("volumeName");
                }
                if old.pointer("/spec/storageClassName").is_none_or(Value::is_null) {
                    m.remove("storageClassName");
                }
            }
            spec
        };
        if strip(obj) != strip(old) {
            return vec![field::forbidden(
                &Path::new("spec"),
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            )];
        }
        Vec::new()
    }
    fn return_deleted_object(&self) -> bool {
        true
    }
    fn columns(&self) -> &'static [Column] {
        &[
            Column("Name", "string", 0), Column("Status", "string", 0), Column("Volume", "string", 0), Column("Capacity", "string", 0),
            Column("Access Modes", "string", 0), Column("StorageClass", "string", 0), Column("VolumeAttributesClass", "string", 0),
            Column("Age", "string", 0), Column("VolumeMode", "string", 1),
        ]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let vac = obj.pointer("/spec/volumeAttributesClassName").and_then(Value::as_str).unwrap_or("<unset>");
        cells.extend([
            json!(s(obj, "/status/phase")), json!(s(obj, "/spec/volumeName")), json!(s(obj, "/status/capacity/storage")),
            json!(modes_string(obj, "/status/accessModes")), json!(s(obj, "/spec/storageClassName")), json!(vac), age,
            json!(s(obj, "/spec/volumeMode")),
        ]);
        cells
    }
}
