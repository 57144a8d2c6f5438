//! ferrokube's apiserver: the Kubernetes REST API kept in etcd.

pub mod types;
// Wire formats and object semantics (owned together; see docs/CONTRACTS.md).
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod validation;
pub mod allocator;
pub mod kinds;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod storage;
pub mod compaction;
pub mod controlplane;
pub mod watch_cache;
pub mod admission;
pub mod registry;
pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod discovery;
pub mod handlers;
pub mod metrics;
pub mod proxy;
pub mod table;
pub mod server;

pub use app::app;
