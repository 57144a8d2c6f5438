//! The registry: one generic `Store` per resource row, all over one storage backend.

pub mod conversion;
pub mod decoding;
pub mod eviction;
pub mod hooks;
pub mod list;
pub mod store;
pub mod strategy;
pub mod subresources;

pub use decoding::{FieldValidation, WarningRecorder};
pub use store::{DeleteOptions, DeleteOutcome, Store, WriteOptions};

use crate::resources::{ResourceRow, RESOURCES};
use crate::storage::DynStorage;
use parking_lot::RwLock;
use std::sync::Arc;

pub struct Registry {
    pub storage: DynStorage,
    pub etcd_prefix: String,
    /// In discovery order. Rows can be added while the server runs (a CustomResourceDefinition
    /// will add its kinds here), so readers take a snapshot.
    stores: RwLock<Vec<Arc<Store>>>,
}

/// Adding a resource that is already served.
#[derive(Debug, thiserror::Error)]
#[error("{group}/{version} {plural} is already served")]
pub struct AlreadyServed {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Registry {
    /// Builds a store (and starts its watch cache) for every row of the built-in table.
    pub fn new(storage: DynStorage, etcd_prefix: &str) -> Arc<Self> {
        let stores = RESOURCES.iter().map(|row| Arc::new(Store::new(row, storage.clone(), etcd_prefix))).collect();
        Arc::new(Registry { storage, etcd_prefix: etcd_prefix.to_string(), stores: RwLock::new(stores) })
    }

    /// Serves one more resource: its store and watch cache start now, and routes, discovery
    /// and OpenAPI include it from the next request on.
    pub fn add(&self, row: &'static ResourceRow) -> Result<Arc<Store>, AlreadyServed> {
        let mut stores = self.stores.write();
        if stores.iter().any(|s| same_resource(s.row, row.group(), row.info.version, row.plural())) {
            return Err(AlreadyServed { group: row.group().into(), version: row.info.version.into(), plural: row.plural().into() });
        }
        let store = Arc::new(Store::new(row, self.storage.clone(), &self.etcd_prefix));
        stores.push(store.clone());
        Ok(store)
    }

    /// Stops serving a resource; its objects stay in storage.
    pub fn remove(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Store>> {
        let mut stores = self.stores.write();
        let i = stores.iter().position(|s| same_resource(s.row, group, version, plural))?;
        Some(stores.remove(i))
    }

    pub fn store(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Store>> {
        self.stores.read().iter().find(|s| same_resource(s.row, group, version, plural)).cloned()
    }

    pub fn store_for(&self, row: &ResourceRow) -> Option<Arc<Store>> {
        self.store(row.info.group, row.info.version, row.info.plural)
    }

    pub fn stores(&self) -> Vec<Arc<Store>> {
        self.stores.read().clone()
    }

    /// The served rows, in discovery order.
    pub fn rows(&self) -> Vec<&'static ResourceRow> {
        self.stores.read().iter().map(|s| s.row).collect()
    }

    /// True once every watch cache has done its first list.
    pub fn caches_ready(&self) -> bool {
        self.stores.read().iter().all(|s| s.cache.is_ready())
    }
}

fn same_resource(row: &ResourceRow, group: &str, version: &str, plural: &str) -> bool {
    row.info.group == group && row.info.version == version && row.info.plural == plural
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    #[tokio::test]
    async fn rows_can_be_added_and_removed_while_serving() {
        let reg = Registry::new(Arc::new(MemoryStorage::new()), "/registry");
        let before = reg.rows().len();
        static WIDGETS: std::sync::LazyLock<ResourceRow> = std::sync::LazyLock::new(|| ResourceRow {
            info: crate::types::ResourceInfo {
                group: "example.com", version: "v1", kind: "Widget", plural: "widgets", singular: "widget",
                namespaced: true, subresources: &[], short_names: &[], categories: &[],
            },
            storage_name: "example.com/widgets",
            strategy: &crate::kinds::Plain,
        });
        let store = reg.add(&WIDGETS).expect("a new resource");
        assert_eq!(reg.rows().len(), before + 1);
        assert!(reg.store("example.com", "v1", "widgets").is_some_and(|s| Arc::ptr_eq(&s, &store)));
        assert!(reg.add(&WIDGETS).is_err(), "served twice");
        assert!(reg.remove("example.com", "v1", "widgets").is_some());
        assert!(reg.store("example.com", "v1", "widgets").is_none());
        assert_eq!(reg.rows().len(), before);
    }
}
