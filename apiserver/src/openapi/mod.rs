//! OpenAPI v3 documents generated from k8s-openapi's schemars schemas.

use crate::types::ResourceInfo;
use serde_json::Value;

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
pub fn v3_index(_resources: &[ResourceInfo]) -> Value {
    serde_json::json!({ "paths": {} })
}

/// `GET /openapi/v3/{api/v1 | apis/<group>/<version>}`; None for an unknown group-version.
pub fn v3_group_version(_resources: &[ResourceInfo], _path: &str) -> Option<Value> {
    None
}
