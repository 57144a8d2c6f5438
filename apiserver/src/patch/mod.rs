//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch and
//! server-side apply with managedFields.

pub mod apply;
pub mod fieldset;
#[cfg(test)]
mod fuzz;
pub mod smp_keys;
pub mod strategic;

use crate::openapi::schemas::definitions;
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
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
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
    Conflict {
        message: String,
        causes: Vec<FieldCause>,
    },
}

/// Applies a JSON, merge or strategic-merge patch to `current` and returns the new object.
pub fn apply_patch(
    gvk: &Gvk,
    current: &Value,
    patch: &[u8],
    patch_type: PatchType,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch =
                serde_json::from_slice(patch).map_err(|e| PatchError::Malformed(e.to_string()))?;
            let mut doc = current.clone();
            // The document is a private copy, so the undo-free variant is enough (and json-patch 5's undo
            // can panic on some move/copy sequences).
            json_patch::patch_unsafe(&mut doc, &ops)
                .map_err(|e| PatchError::NotApplicable(e.to_string()))?;
            Ok(doc)
        }
        PatchType::Merge => {
            let p = parse_object(patch)?;
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        PatchType::StrategicMerge => {
            let p = parse_object(patch)?;
            let defs = definitions();
            let schema = defs.root_for(gvk).and_then(|n| defs.schemas.get(n));
            strategic::apply(current, &p, schema)
        }
        PatchType::Apply => Err(PatchError::Malformed(
            "apply patches go through server_side_apply".into(),
        )),
    }
}

/// Merge and strategic-merge patches are JSON objects (upstream unmarshals them into a map).
fn parse_object(patch: &[u8]) -> Result<Value, PatchError> {
    let v: Value =
        serde_json::from_slice(patch).map_err(|e| PatchError::Malformed(e.to_string()))?;
    if !v.is_object() {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(&v)
        )));
    }
    Ok(v)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Server-side apply of `applied` (the full intended object, already parsed from YAML/JSON) by
/// `manager`. `current` is None when the object does not exist yet. Returns the merged object with
/// `metadata.managedFields` updated. `now` is an RFC 3339 timestamp for the managedFields entry.
pub fn server_side_apply(
    gvk: &Gvk,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    apply::server_side_apply(gvk, current, applied, manager, force, now)
}

/// Records a non-apply write (create, update, patch) by `manager` in `new.metadata.managedFields`
/// with operation `Update`, so that later applies see who owns what.
pub fn record_update(gvk: &Gvk, old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    apply::record_update(gvk, old, new, manager, None, now)
}

/// Like [`record_update`] for a write through a subresource (`status`, `scale`): the entry
/// carries `subresource`, and status writes own the status fields they change.
pub fn record_subresource_update(
    gvk: &Gvk,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    apply::record_update(gvk, old, new, manager, Some(subresource), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }

    #[test]
    fn json_patch_applies_and_failed_test_is_not_applicable() {
        let gvk = Gvk::new("", "v1", "Pod");
        let out = apply_patch(
            &gvk,
            &pod(),
            br#"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx"}]"#,
            PatchType::Json,
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx");
        let err = apply_patch(
            &gvk,
            &pod(),
            br#"[{"op":"test","path":"/metadata/name","value":"x"}]"#,
            PatchType::Json,
        );
        assert!(matches!(err, Err(PatchError::NotApplicable(_))));
        assert!(matches!(
            apply_patch(&gvk, &pod(), b"{", PatchType::Json),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let gvk = Gvk::new("", "v1", "Pod");
        let out = apply_patch(
            &gvk,
            &pod(),
            br#"{"metadata":{"labels":{"a":null,"b":"2"}},"spec":{"containers":[{"name":"d"}]}}"#,
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "d"}]));
        assert!(matches!(
            apply_patch(&gvk, &pod(), b"[]", PatchType::Merge),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn scale_merge_patch_from_kubectl_scale() {
        let gvk = Gvk::new("autoscaling", "v1", "Scale");
        let scale = json!({"kind": "Scale", "spec": {"replicas": 1}});
        let out = apply_patch(
            &gvk,
            &scale,
            br#"{"spec":{"replicas":3}}"#,
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
    }
}
