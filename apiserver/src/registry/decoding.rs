//! The decode step of every write: the object checked against its type before anything else
//! looks at it, and `fieldValidation` (Strict, Warn, Ignore) applied to the unknown fields the
//! check dropped. Warnings reach the response through a per-request recorder, as upstream's
//! `warning.AddWarning(ctx, ...)` does.

use crate::resources::ResourceRow;
use crate::status::ApiError;
use crate::types::FieldCause;
use crate::validation::decode;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    /// What the server's own writes use: unknown fields are dropped silently.
    #[default]
    Ignore,
}

impl FieldValidation {
    /// Upstream's default for a request without the parameter is Warn.
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other} (valid values are Ignore, Warn, Strict)"
            ))),
        }
    }
}

/// The `Warning` headers a request collects on its way through.
#[derive(Clone, Debug, Default)]
pub struct WarningRecorder(Arc<Mutex<Vec<String>>>);

impl WarningRecorder {
    pub fn add(&self, w: String) {
        let mut all = self.0.lock();
        if !all.contains(&w) {
            all.push(w);
        }
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Which verb's decode failed: upstream answers a create or update 400, and a patch whose
/// result does not decode 422 on the field `patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Patch,
}

/// Checks `obj` against the row's type, normalizing it as the typed round trip would, and
/// applies `mode` to its unknown fields. Returns the warnings to send.
pub fn decode_for_write(row: &ResourceRow, obj: &mut Value, verb: Verb, mode: FieldValidation) -> Result<Vec<String>, ApiError> {
    let gvk = row.gvk();
    let unknown = match decode::decode(&gvk, obj) {
        Ok(u) => u,
        Err(e) if verb == Verb::Patch => {
            let cause = FieldCause { reason: "FieldValueInvalid".into(), message: format!("Invalid value: {}: {e}", shown(obj)), field: "patch".into() };
            return Err(ApiError::Invalid { target: Default::default(), kind: String::new(), name: String::new(), causes: vec![cause] });
        }
        Err(e) => {
            return Err(ApiError::BadRequest(format!("{} in version \"{}\" cannot be handled as a {}: {e}", gvk.kind, gvk.version, gvk.kind)))
        }
    };
    let unknown: Vec<String> = unknown.into_iter().map(|p| format!("unknown field \"{p}\"")).collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::BadRequest(format!("strict decoding error: {}", unknown.join(", ")))),
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

/// The patched object as upstream quotes it in the cause: its JSON, as a Go string.
fn shown(obj: &Value) -> String {
    Value::String(obj.to_string()).to_string()
}
