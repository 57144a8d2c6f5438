//! ferrokube's kubelet: runs the pods bound to its node as containerd containers.
//!
//! Start at [`pod::worker`], which drives one pod through the states of
//! [`pod::worker::state`] (syncing, terminating, terminated)
//! using the pure plan from [`pod::actions`] and the
//! [`runtime::Runtime`] boundary.
//!
//! The layers, each depending only on those listed before it:
//! - [`ktime`], [`backoff`], [`events`], [`status_manager`]: small shared pieces;
//! - [`runtime`]: the container runtime (containerd, or the fake for tests);
//! - [`network`]: the pod sandbox's namespaces and its CNI network;
//! - [`context`]: the kubelet's shared state, handed to everything above;
//! - [`node`]: the Node object, its capacity and heartbeats;
//! - [`container`]: one container, from its spec to its OCI config, start, logs and exec;
//! - [`prober`]: liveness, readiness and startup probes;
//! - [`volume`]: a pod's volumes on the node;
//! - [`pod`]: the pod source, the per-pod worker, its plan and the pod's status;
//! - [`config`], [`server`]: the kubelet's flags and its HTTPS API.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod container;
pub mod context;
pub mod events;
pub mod ktime;
pub mod network;
pub mod node;
pub mod pod;
pub mod prober;
pub mod runtime;
pub mod server;
pub mod status_manager;
pub mod volume;
