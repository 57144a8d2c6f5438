//! Defaulting and validation of API objects, as upstream's strategies do on create and update.

use crate::types::{FieldCause, Gvk};
use serde_json::Value;

/// Fills in upstream's defaults (restartPolicy, dnsPolicy, imagePullPolicy, protocol, ...).
pub fn default_object(_gvk: &Gvk, _obj: &mut Value) {}

/// Validation on create; an empty list means valid (422 Invalid otherwise).
pub fn validate_create(_gvk: &Gvk, _obj: &Value) -> Vec<FieldCause> {
    Vec::new()
}

/// Validation on update, including immutable fields.
pub fn validate_update(_gvk: &Gvk, _obj: &Value, _old: &Value) -> Vec<FieldCause> {
    Vec::new()
}

/// Paths of fields that the kind's schema does not know, e.g. `.spec.foo`, for fieldValidation
/// Strict (400 BadRequest `strict decoding error: unknown field "spec.foo"`) and Warn.
pub fn unknown_fields(_gvk: &Gvk, _obj: &Value) -> Vec<String> {
    Vec::new()
}
