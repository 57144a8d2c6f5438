//! Test harness for ferrokube: real etcd, apiserver, containerd, registry and
//! whole clusters, each in a fresh temp dir on free loopback ports.
//!
//! Start with [`Cluster::start`] for end-to-end tests, or the single pieces
//! ([`Etcd`], [`ApiServer`], [`Containerd`], [`Registry`]) for integration
//! tests. Everything started here is killed by PID when dropped, and also when
//! the test binary exits (so a `static` shared cluster does not leak).
//!
//! Env vars:
//! - `FERROKUBE_TEST_LOGS=1` prints every process's log when it is dropped
//!   (logs are always printed when the dropping thread is panicking).
//! - `FERROKUBE_KEEP_TEST_DIRS=1` keeps the temp dirs for inspection.
//! - `FERROKUBE_BIN_DIR=/path` overrides where [`bin`] looks for binaries.

pub mod apiserver;
pub mod bin;
pub mod cluster;
pub mod containerd;
pub mod dns;
pub mod error;
pub mod etcd;
pub mod kubectl;
pub mod ports;
pub mod process;
pub mod reaper;
pub mod registry;
pub mod secure_port;
pub mod testdir;
pub mod wait;

pub use apiserver::ApiServer;
pub use bin::{bin, repo_root, try_bin};
pub use cluster::{Cluster, ClusterNode, ClusterOptions};
pub use containerd::Containerd;
pub use dns::Dns;
pub use error::Error;
pub use etcd::Etcd;
pub use kubectl::{kubectl, kubectl_async, kubectl_ok, KUBECTL};
pub use ports::free_port;
pub use process::Process;
pub use registry::Registry;
pub use testdir::TestDir;
pub use wait::{wait_for, wait_for_or};

/// Result alias for harness operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
