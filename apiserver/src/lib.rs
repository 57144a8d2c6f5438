//! ferrokube's apiserver: the Kubernetes REST API kept in etcd.

pub mod types;
// Wire formats and object semantics (owned together; see docs/CONTRACTS.md).
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod validation;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod storage;
pub mod watch_cache;
pub mod admission;
pub mod registry;
