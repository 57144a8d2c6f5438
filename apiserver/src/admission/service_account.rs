//! ServiceAccount: a pod that names no service account runs as `default`. (Mounting its token
//! comes with the permissions work.)

use super::{Attributes, Plugin};
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::{json, Value};

pub struct ServiceAccount;

impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, pod: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        if attrs.is("", "pods") && pod.get("spec").is_some_and(Value::is_object) {
            let spec = &mut pod["spec"];
            let name = spec.get("serviceAccountName").and_then(Value::as_str).filter(|s| !s.is_empty());
            let name = name.or_else(|| spec.get("serviceAccount").and_then(Value::as_str).filter(|s| !s.is_empty())).unwrap_or("default").to_string();
            // serviceAccount is the deprecated twin that v1 keeps equal.
            spec["serviceAccountName"] = json!(name);
            spec["serviceAccount"] = json!(name);
        }
        Box::pin(async { Ok(()) })
    }
}
