//! Small shared vocabulary between the apiserver's modules: which kind an object is,
//! which resource serves it, and one field-level cause of an error.

use serde::Serialize;

/// Group, version and kind of an object, as in its `apiVersion` and `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk { group: group.into(), version: version.into(), kind: kind.into() }
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// What the OpenAPI and discovery documents need to know about one served resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// e.g. `["status", "scale"]`
    pub subresources: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
}

impl ResourceInfo {
    pub fn gvk(&self) -> Gvk {
        Gvk::new(self.group, self.version, self.kind)
    }
}

/// One entry of `Status.details.causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldCause {
    /// Upstream's CauseType, e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`,
    /// `FieldValueNotSupported`, `FieldValueTooLong`, `FieldValueForbidden`, `FieldManagerConflict`.
    pub reason: String,
    pub message: String,
    /// JSON path as upstream prints it, e.g. `spec.containers[0].image`, `metadata.name`.
    pub field: String,
}
