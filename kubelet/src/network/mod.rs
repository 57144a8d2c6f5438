//! The pod sandbox without a pause container: network, UTS and IPC
//! namespaces held open by bind mounts, wired up by CNI plugins.
//!
//! Pod workers reach it through [`PodNetwork`]: [`Cni`] on a node, and
//! [`fake::FakeNetwork`] in unit tests, which need neither root nor plugins.

pub mod cni;
pub mod dns;
pub mod fake;
pub mod namespaces;

pub use cni::{Cni, CniConfig, CniError, PortMapping};
pub use namespaces::{NamespaceError, PodNamespaces};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Cni(#[from] CniError),
}

/// A pod's sandbox: its namespaces, and the network attached to them.
#[async_trait::async_trait]
pub trait PodNetwork: Send + Sync + 'static {
    /// Creates the pod's net, UTS and IPC namespaces, with `hostname` in the UTS one.
    async fn create_namespaces(
        &self,
        ns: &PodNamespaces,
        hostname: &str,
    ) -> Result<(), NetworkError>;
    /// Whether the namespaces are live (they outlive a kubelet restart).
    fn namespaces_exist(&self, ns: &PodNamespaces) -> bool;
    /// Removes the namespaces; missing ones are fine.
    fn remove_namespaces(&self, ns: &PodNamespaces);
    /// Attaches the pod's net namespace to the node's network (CNI ADD) and
    /// returns the pod's IP.
    async fn setup(
        &self,
        uid: &str,
        ns: &PodNamespaces,
        ports: &[PortMapping],
    ) -> Result<String, NetworkError>;
    /// Releases the pod's IP and host ports (CNI DEL).
    async fn teardown(
        &self,
        uid: &str,
        ns: &PodNamespaces,
        ports: &[PortMapping],
    ) -> Result<(), NetworkError>;
}

#[async_trait::async_trait]
impl PodNetwork for Cni {
    async fn create_namespaces(
        &self,
        ns: &PodNamespaces,
        hostname: &str,
    ) -> Result<(), NetworkError> {
        Ok(ns.create(hostname).await?)
    }
    fn namespaces_exist(&self, ns: &PodNamespaces) -> bool {
        ns.exists()
    }
    fn remove_namespaces(&self, ns: &PodNamespaces) {
        ns.remove()
    }
    async fn setup(
        &self,
        uid: &str,
        ns: &PodNamespaces,
        ports: &[PortMapping],
    ) -> Result<String, NetworkError> {
        Ok(self.add(uid, &ns.net(), ports).await?)
    }
    async fn teardown(
        &self,
        uid: &str,
        ns: &PodNamespaces,
        ports: &[PortMapping],
    ) -> Result<(), NetworkError> {
        Ok(self.del(uid, &ns.net(), ports).await?)
    }
}
