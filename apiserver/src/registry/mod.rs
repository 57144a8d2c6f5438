//! The registry: one generic `Store` per resource row, all over one storage backend.

pub mod decoding;
pub mod list;
pub mod store;
pub mod strategy;
pub mod subresources;

pub use decoding::{FieldValidation, WarningRecorder};
pub use store::{DeleteOptions, DeleteOutcome, Store, WriteOptions};

use crate::resources::{ResourceRow, RESOURCES};
use crate::storage::DynStorage;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Registry {
    pub storage: DynStorage,
    pub etcd_prefix: String,
    stores: HashMap<(&'static str, &'static str, &'static str), Arc<Store>>,
}

impl Registry {
    /// Builds a store (and starts its watch cache) for every row of the resource table.
    pub fn new(storage: DynStorage, etcd_prefix: &str) -> Arc<Self> {
        let mut stores = HashMap::new();
        for row in RESOURCES {
            let store = Store::new(row, storage.clone(), etcd_prefix);
            stores.insert((row.info.group, row.info.version, row.info.plural), Arc::new(store));
        }
        Arc::new(Registry { storage, etcd_prefix: etcd_prefix.to_string(), stores })
    }

    pub fn store(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Store>> {
        self.stores.iter().find(|((g, v, p), _)| *g == group && *v == version && *p == plural).map(|(_, s)| s)
    }

    pub fn store_for(&self, row: &ResourceRow) -> Option<&Arc<Store>> {
        self.store(row.info.group, row.info.version, row.info.plural)
    }

    pub fn stores(&self) -> impl Iterator<Item = &Arc<Store>> {
        self.stores.values()
    }

    /// True once every watch cache has done its first list.
    pub fn caches_ready(&self) -> bool {
        self.stores.values().all(|s| s.cache.is_ready())
    }
}
