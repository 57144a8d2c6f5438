//! NamespaceLifecycle: nothing is created in a namespace that does not exist or is being
//! deleted. It reads the namespaces' watch cache, which a namespace delete waits for.

use super::{Attributes, Operation, Plugin};
use crate::registry::Store;
use crate::status::{ApiError, Target};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct NamespaceLifecycle {
    namespaces: Arc<Store>,
}

impl NamespaceLifecycle {
    pub fn new(namespaces: Arc<Store>) -> Self {
        NamespaceLifecycle { namespaces }
    }

    async fn check(&self, attrs: &Attributes<'_>) -> Result<(), ApiError> {
        let Some(ns) = attrs.namespace.filter(|_| attrs.row.namespaced() && attrs.operation == Operation::Create) else {
            return Ok(());
        };
        // The cached fields hold deletionTimestamp and status.phase.
        let value = match self.namespaces.cached(None, ns) {
            Some(o) => o.fields.clone(),
            None => match self.namespaces.get(None, ns, false).await {
                Ok(v) => v,
                Err(ApiError::NotFound(_)) => return Err(ApiError::NotFound(Target::new("", "namespaces", ns))),
                Err(e) => return Err(e),
            },
        };
        if value.pointer("/metadata/deletionTimestamp").is_some() || value.pointer("/status/phase") == Some(&json!("Terminating")) {
            return Err(ApiError::Forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                attrs.row.plural(),
                attrs.name
            )));
        }
        Ok(())
    }
}

impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, _obj: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(self.check(attrs))
    }
}
