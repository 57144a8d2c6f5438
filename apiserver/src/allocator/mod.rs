//! Values Services draw from shared pools, kept in etcd as upstream's RangeAllocation
//! bitmaps: cluster IPs from `--service-cluster-ip-range` and node ports from
//! `--service-node-port-range`. Each change is a compare-and-swap on the bitmap, so
//! apiservers sharing etcd agree; `repair` rebuilds the bitmaps from the Services that
//! exist, freeing leaks and reporting duplicates.

pub mod bitmap;
pub mod ipallocator;
pub mod portallocator;
pub mod range;
pub mod repair;

pub use ipallocator::{IpAllocator, IpRange};
pub use portallocator::{PortAllocator, PortRange};

use crate::storage::{DynStorage, StorageError};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The requested value is outside the pool.
    #[error("not in the valid range {valid}")]
    NotInRange { valid: String },
    #[error("already allocated")]
    Allocated,
    #[error("range is full")]
    Full,
    #[error("corrupt range allocation: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(StorageError),
}

/// Both pools of one apiserver.
pub struct ServiceAllocators {
    pub ips: IpAllocator,
    pub ports: PortAllocator,
}

impl ServiceAllocators {
    pub fn new(storage: DynStorage, etcd_prefix: &str, ips: IpRange, ports: PortRange) -> Arc<Self> {
        Arc::new(ServiceAllocators {
            ips: IpAllocator::new(storage.clone(), etcd_prefix, ips),
            ports: PortAllocator::new(storage, etcd_prefix, ports),
        })
    }
}
