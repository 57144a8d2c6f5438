//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch and
//! server-side apply with managedFields.

use crate::types::{FieldCause, Gvk};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    /// From a request's Content-Type (parameters ignored). None means 415.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself does not parse: 400 BadRequest.
    #[error("{0}")]
    Malformed(String),
    /// The patch parses but cannot be applied to this object (e.g. a JSON patch `test` fails,
    /// a path is missing): 422 Invalid / upstream answers 422 for these.
    #[error("{0}")]
    NotApplicable(String),
    /// Server-side apply conflicts: 409 Conflict with causes of reason FieldManagerConflict.
    #[error("{message}")]
    Conflict { message: String, causes: Vec<FieldCause> },
}

/// Applies a JSON, merge or strategic-merge patch to `current` and returns the new object.
pub fn apply_patch(_gvk: &Gvk, _current: &Value, _patch: &[u8], _patch_type: PatchType) -> Result<Value, PatchError> {
    Err(PatchError::Malformed("patch not implemented yet".into()))
}

/// Server-side apply of `applied` (the full intended object, already parsed from YAML/JSON) by
/// `manager`. `current` is None when the object does not exist yet. Returns the merged object with
/// `metadata.managedFields` updated. `now` is an RFC 3339 timestamp for the managedFields entry.
pub fn server_side_apply(
    _gvk: &Gvk,
    _current: Option<&Value>,
    _applied: &Value,
    _manager: &str,
    _force: bool,
    _now: &str,
) -> Result<Value, PatchError> {
    Err(PatchError::Malformed("server-side apply not implemented yet".into()))
}

/// Records a non-apply write (create, update, patch) by `manager` in `new.metadata.managedFields`
/// with operation `Update`, so that later applies see who owns what.
pub fn record_update(_gvk: &Gvk, _old: Option<&Value>, _new: &mut Value, _manager: &str, _now: &str) {}
