//! ferrokube's apiserver: the Kubernetes REST API kept in etcd.

pub mod types;
// Wire formats and object semantics (owned together; see docs/CONTRACTS.md).
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod validation;
