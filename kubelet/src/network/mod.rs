//! The pod sandbox without a pause container: network, UTS and IPC
//! namespaces held open by bind mounts, wired up by CNI plugins.

pub mod cni;
pub mod namespaces;

pub use cni::{Cni, CniConfig, PortMapping};
pub use namespaces::PodNamespaces;
