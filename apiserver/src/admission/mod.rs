//! The admission chain, as upstream's: the handlers pass it to the Store through the write's
//! options, and the Store runs it on a create after decoding and before defaults and
//! validation. Each plugin is a file named after its upstream counterpart and decides for
//! itself which resources it acts on. Later plugins (webhooks, policies) join the list in
//! `Chain::new`.

mod default_storage_class;
mod default_toleration_seconds;
mod limit_ranger;
mod namespace_lifecycle;
pub mod node_restriction;
mod priority;
mod resource_quota;
mod service_account;

use crate::registry::Registry;
use crate::resources::ResourceRow;
use crate::status::ApiError;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

pub use priority::SYSTEM_PRIORITY_CLASSES;

/// Admission settings from the command line.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    pub default_not_ready_toleration_seconds: i64,
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig { default_not_ready_toleration_seconds: 300, default_unreachable_toleration_seconds: 300 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
}

/// What a plugin knows of the request (upstream's admission.Attributes).
pub struct Attributes<'a> {
    pub row: &'static ResourceRow,
    pub operation: Operation,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// Nothing will be stored: plugins check, but keep no record (no quota charge).
    pub dry_run: bool,
}

impl Attributes<'_> {
    pub fn is(&self, group: &str, resource: &str) -> bool {
        self.row.group() == group && self.row.plural() == resource
    }
}

/// One admission plugin: it may change the object, or refuse the request.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn admit<'a>(&'a self, attrs: &'a Attributes<'a>, obj: &'a mut Value) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// The plugins in upstream's order.
pub struct Chain {
    plugins: Vec<Box<dyn Plugin>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Chain {
    pub fn new(registry: &Arc<Registry>, config: &AdmissionConfig) -> Arc<Chain> {
        let store = |g: &str, r: &str| registry.store(g, "v1", r);
        let mut plugins: Vec<Box<dyn Plugin>> = Vec::new();
        if let Some(namespaces) = store("", "namespaces") {
            plugins.push(Box::new(namespace_lifecycle::NamespaceLifecycle::new(namespaces)));
        }
        if let Some(ranges) = store("", "limitranges") {
            plugins.push(Box::new(limit_ranger::LimitRanger::new(ranges)));
        }
        plugins.push(Box::new(service_account::ServiceAccount::new(store("", "serviceaccounts"))));
        if let Some(classes) = store("scheduling.k8s.io", "priorityclasses") {
            plugins.push(Box::new(priority::Priority::new(classes)));
        }
        plugins.push(Box::new(default_toleration_seconds::DefaultTolerationSeconds::new(config)));
        if let Some(classes) = registry.store("storage.k8s.io", "v1", "storageclasses") {
            plugins.push(Box::new(default_storage_class::DefaultStorageClass::new(classes)));
        }
        // Last, as upstream: quota charges what the plugins before it admitted.
        if let Some(quotas) = store("", "resourcequotas") {
            plugins.push(Box::new(resource_quota::ResourceQuotaAdmission::new(quotas, Arc::downgrade(registry))));
        }
        Arc::new(Chain { plugins })
    }

    /// The plugins' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    pub async fn admit(&self, attrs: &Attributes<'_>, obj: &mut Value) -> Result<(), ApiError> {
        for p in &self.plugins {
            p.admit(attrs, obj).await?;
        }
        Ok(())
    }
}
