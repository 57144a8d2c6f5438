//! The kubelet's shared state, handed to every pod worker and the server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Mutex, RwLock};

use crate::backoff::Backoff;
use crate::events::Recorder;
use crate::network::{PodNamespaces, PodNetwork};
use crate::runtime::Runtime;
use crate::status_manager::StatusManager;

pub struct Kubelet {
    pub node_name: String,
    pub node_ip: String,
    pub root_dir: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    /// The pod sandboxes' namespaces and network (CNI on a node).
    pub network: Arc<dyn PodNetwork>,
    pub client: Option<kube::Client>,
    pub status: StatusManager,
    pub events: Recorder,
    pub backoff: Mutex<Backoff>,
    /// The latest desired pods by UID, for /pods and the server.
    pub pods: RwLock<HashMap<String, Pod>>,
    /// Host ports held open per pod UID so that a taken port fails the pod, as upstream's hostport manager.
    pub host_ports: std::sync::Mutex<HashMap<String, Vec<std::net::TcpListener>>>,
    /// `--cluster-dns`, `--cluster-domain` and the host's resolv.conf, for pods' resolv.conf.
    pub dns: crate::network::dns::DnsConfigurer,
}

impl Kubelet {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }
    pub fn namespaces(&self, uid: &str) -> PodNamespaces {
        PodNamespaces::new(self.pod_dir(uid).join("ns"))
    }
    pub fn log_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("logs")
    }
    pub fn fifo_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("fifo")
    }
    pub fn sandbox_file(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("sandbox.json")
    }

    /// A kubelet without an apiserver, on `root`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(
        root: &std::path::Path,
        runtime: Arc<dyn Runtime>,
        network: Arc<dyn PodNetwork>,
    ) -> Kubelet {
        Kubelet {
            node_name: "n".into(),
            node_ip: "127.0.0.1".into(),
            root_dir: root.to_path_buf(),
            runtime,
            network,
            client: None,
            status: StatusManager::new(Box::new(crate::status_manager::Discard)),
            events: Recorder::new(None, "n"),
            backoff: Default::default(),
            pods: Default::default(),
            host_ports: Default::default(),
            dns: Default::default(),
        }
    }
}

/// What the kubelet remembers about a pod's sandbox across restarts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    pub pod_ip: String,
    pub ports: Vec<crate::network::PortMapping>,
    pub created_at: String,
}
