//! DefaultStorageClass: a claim that names no class gets the default one (the StorageClass
//! annotated `storageclass.kubernetes.io/is-default-class: "true"`, the newest if several).
//! An explicit `storageClassName: ""` asks for no class and is left alone.

use super::{Attributes, Operation, Plugin};
use crate::registry::Store;
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct DefaultStorageClass {
    classes: Arc<Store>,
}

impl DefaultStorageClass {
    pub fn new(classes: Arc<Store>) -> Self {
        DefaultStorageClass { classes }
    }

    fn default_class(&self) -> Option<String> {
        let (all, _) = self.classes.cache.snapshot(&self.classes.prefix(None));
        let mut defaults: Vec<(String, String)> = all
            .iter()
            .map(|o| o.value())
            .filter(|sc| {
                ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
                    .iter()
                    .any(|a| sc.pointer("/metadata/annotations").and_then(|m| m.get(*a)).and_then(Value::as_str) == Some("true"))
            })
            .map(|sc| {
                let at = sc.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
                (at, sc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string())
            })
            .collect();
        defaults.sort();
        defaults.pop().map(|(_, name)| name)
    }
}

impl Plugin for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, claim: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        if attrs.operation == Operation::Create && attrs.is("", "persistentvolumeclaims") && claim.get("spec").is_some_and(Value::is_object) {
            let unset = claim.pointer("/spec/storageClassName").is_none_or(Value::is_null);
            if unset {
                if let Some(class) = self.default_class() {
                    claim["spec"]["storageClassName"] = json!(class);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }
}
