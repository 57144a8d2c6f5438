//! storage.k8s.io/v1 VolumeAttachments (pkg/registry/storage/volumeattachment): the attach
//! intent a CSI attacher acts on. Validation as upstream's ValidateVolumeAttachmentV1: a CSI
//! driver name as attacher, exactly one source, a node name, bounded status messages; the
//! spec is fixed once created. Printed as printVolumeAttachment.

use crate::registry::strategy::Strategy;
use crate::table::{s, Column};
use crate::types::FieldCause;
use crate::validation::field::{self, Path};
use crate::validation::names;
use serde_json::{json, Value};

/// Upstream's maxVolumeErrorMessageSize.
const MAX_ERROR_MESSAGE: usize = 1024;
/// Upstream's maxAttachedVolumeMetadataSize.
const MAX_METADATA: usize = 256 * 1024;

pub struct VolumeAttachments;

fn validate_spec(spec: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let attacher = spec.get("attacher").and_then(Value::as_str).unwrap_or("");
    if attacher.is_empty() {
        errs.push(field::required(&sp.child("attacher"), ""));
    } else if attacher.len() > 63 {
        errs.push(field::too_long(&sp.child("attacher"), 63));
    } else {
        for msg in names::dns1123_subdomain(&attacher.to_ascii_lowercase()) {
            errs.push(field::invalid(&sp.child("attacher"), &json!(attacher), &msg));
        }
    }
    let src = sp.child("source");
    let pv = spec.pointer("/source/persistentVolumeName").filter(|v| !v.is_null());
    let inline = spec.pointer("/source/inlineVolumeSpec").filter(|v| !v.is_null());
    const ONE: &str = "must specify exactly one of inlineVolumeSpec and persistentVolumeName";
    match (pv, inline) {
        (None, None) => errs.push(field::required(&src, ONE)),
        (Some(_), Some(_)) => errs.push(field::forbidden(&src, ONE)),
        (Some(name), None) => match name.as_str().unwrap_or("") {
            "" => errs.push(field::required(&src.child("persistentVolumeName"), "must specify non empty persistentVolumeName")),
            n => {
                for msg in names::dns1123_subdomain(n) {
                    errs.push(field::invalid(&src.child("persistentVolumeName"), name, &msg));
                }
            }
        },
        (None, Some(_)) => {}
    }
    let node = spec.get("nodeName").and_then(Value::as_str).unwrap_or("");
    for msg in names::dns1123_subdomain(node) {
        errs.push(field::invalid(&sp.child("nodeName"), &json!(node), &msg));
    }
    errs
}

fn validate_status(status: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let st = Path::new("status");
    for e in ["attachError", "detachError"] {
        if status.pointer(&format!("/{e}/message")).and_then(Value::as_str).is_some_and(|m| m.len() > MAX_ERROR_MESSAGE) {
            errs.push(field::too_long(&st.child(e).child("message"), MAX_ERROR_MESSAGE));
        }
    }
    let size: usize = status
        .get("attachmentMetadata")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum())
        .unwrap_or(0);
    if size > MAX_METADATA {
        errs.push(field::too_long(&st.child("attachmentMetadata"), MAX_METADATA));
    }
    errs
}

impl Strategy for VolumeAttachments {
    fn validate(&self, obj: &Value) -> Vec<FieldCause> {
        let mut errs = validate_spec(obj.get("spec").unwrap_or(&Value::Null));
        errs.extend(validate_status(obj.get("status").unwrap_or(&Value::Null)));
        errs
    }
    fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldCause> {
        let mut errs = self.validate(obj);
        if obj.get("spec") != old.get("spec") {
            errs.push(field::invalid(&Path::new("spec"), obj.get("spec").unwrap_or(&Value::Null), field::IMMUTABLE));
        }
        errs
    }
    fn columns(&self) -> &'static [Column] {
        &[Column("Name", "string", 0), Column("Attacher", "string", 0), Column("PV", "string", 0), Column("Node", "string", 0), Column("Attached", "boolean", 0), Column("Age", "string", 0)]
    }
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut cells = crate::table::name_and_age(obj);
        let age = cells.pop().unwrap_or_default();
        let attached = obj.pointer("/status/attached").and_then(Value::as_bool).unwrap_or(false);
        cells.extend([json!(s(obj, "/spec/attacher")), json!(s(obj, "/spec/source/persistentVolumeName")), json!(s(obj, "/spec/nodeName")), json!(attached), age]);
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn va(spec: Value) -> Value {
        json!({"metadata": {"name": "csi-1"}, "spec": spec})
    }

    fn fields(errs: &[FieldCause]) -> Vec<(&str, &str)> {
        errs.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect()
    }

    #[test]
    fn a_complete_attachment_is_valid() {
        let ok = va(json!({"attacher": "hostpath.csi.k8s.io", "nodeName": "node-0", "source": {"persistentVolumeName": "pv-1"}}));
        assert!(VolumeAttachments.validate(&ok).is_empty());
    }

    #[test]
    fn missing_or_doubled_parts_are_refused_with_upstreams_paths() {
        let errs = VolumeAttachments.validate(&va(json!({"source": {}})));
        assert_eq!(fields(&errs), vec![("spec.attacher", "FieldValueRequired"), ("spec.source", "FieldValueRequired"), ("spec.nodeName", "FieldValueInvalid")]);
        let both = va(json!({"attacher": "a.b", "nodeName": "n", "source": {"persistentVolumeName": "p", "inlineVolumeSpec": {}}}));
        assert_eq!(fields(&VolumeAttachments.validate(&both)), vec![("spec.source", "FieldValueForbidden")]);
        let bad = va(json!({"attacher": "Not_A_Driver!", "nodeName": "n", "source": {"persistentVolumeName": ""}}));
        assert_eq!(fields(&VolumeAttachments.validate(&bad)), vec![("spec.attacher", "FieldValueInvalid"), ("spec.source.persistentVolumeName", "FieldValueRequired")]);
    }

    #[test]
    fn the_spec_is_immutable_and_status_messages_bounded() {
        let old = va(json!({"attacher": "a.b", "nodeName": "n", "source": {"persistentVolumeName": "p"}}));
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!("m");
        assert_eq!(fields(&VolumeAttachments.validate_update(&new, &old)), vec![("spec", "FieldValueInvalid")]);
        let mut status = old.clone();
        status["status"] = json!({"attached": false, "attachError": {"message": "x".repeat(1025)}});
        assert_eq!(fields(&VolumeAttachments.validate(&status)), vec![("status.attachError.message", "FieldValueTooLong")]);
    }
}
