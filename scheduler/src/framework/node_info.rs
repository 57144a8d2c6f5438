//! NodeInfo: a node with the pods counted against it (bound and assumed),
//! aggregated the way the filters need them.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::resources::{self, Resources};

/// A pod with what the scheduler derives from it once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// namespace/name
    pub key: String,
    pub requests: Resources,
    /// Requests with the non-zero defaults, for scoring.
    pub non_zero: Resources,
    /// Set when a request quantity does not parse; the pod cannot fit anywhere.
    pub request_error: Option<String>,
    pub priority: i32,
    pub has_affinity: bool,
    pub has_required_anti_affinity: bool,
    /// Host ports its containers take, counted against the node it lands on.
    pub host_ports: Vec<HostPort>,
}

impl PodInfo {
    /// A pod already on a node. Plugins read such pods only for their labels,
    /// affinity, priority and deletion; requests and host ports are derived
    /// here once, and the containers and tolerations are dropped: on a cluster
    /// of 10,000 pods they would be most of the scheduler's memory.
    pub fn bound(pod: Pod) -> PodInfo {
        let mut info = PodInfo::new(Arc::new(pod));
        if let Some(pod) = Arc::get_mut(&mut info.pod) {
            if let Some(spec) = pod.spec.take() {
                pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
                    node_name: spec.node_name,
                    affinity: spec.affinity,
                    priority: spec.priority,
                    scheduler_name: spec.scheduler_name,
                    ..Default::default()
                });
            }
        }
        info
    }

    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let key = pod_key(&pod);
        let (requests, request_error) = match resources::pod_requests(&pod) {
            Ok(r) => (r, None),
            Err(e) => (Resources::default(), Some(e.to_string())),
        };
        let non_zero = resources::pod_non_zero_requests(&pod, &requests);
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let has_affinity = affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let has_required_anti_affinity = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .is_some_and(|t| !t.is_empty());
        PodInfo {
            key,
            requests,
            non_zero,
            request_error,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            has_affinity,
            has_required_anti_affinity,
            host_ports: host_ports(&pod),
            pod,
        }
    }

    /// This pod as assumed on `node`: the pod with spec.nodeName set, and
    /// everything derived from it kept (requests do not change on binding,
    /// so they are not parsed again).
    pub fn assumed_on(&self, node: &str) -> PodInfo {
        let mut pod = (*self.pod).clone();
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        PodInfo {
            pod: Arc::new(pod),
            ..self.clone()
        }
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A host port in use: (protocol, hostIP, port).
pub type HostPort = (String, String, i32);

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    /// spec.unschedulable, and whether the node has taints at all: read on
    /// every filter pass, kept here to spare the walk into the Node.
    pub unschedulable: bool,
    pub has_taints: bool,
    pub has_prefer_no_schedule_taints: bool,
    pub allocatable: Resources,
    /// Set when allocatable does not parse; nothing fits such a node.
    pub allocatable_error: Option<String>,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// Image name (every tag/digest alias) to size in bytes.
    pub images: HashMap<String, i64>,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node: node.clone(),
            unschedulable: false,
            has_taints: false,
            has_prefer_no_schedule_taints: false,
            allocatable: Resources::default(),
            allocatable_error: None,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        info.set_node(node);
        info
    }

    /// Replaces the Node object, keeping the pods counted against it.
    pub fn set_node(&mut self, node: Arc<Node>) {
        match resources::node_allocatable(&node) {
            Ok(a) => {
                self.allocatable = a;
                self.allocatable_error = None;
            }
            Err(e) => {
                self.allocatable = Resources::default();
                self.allocatable_error = Some(e.to_string());
            }
        }
        self.images.clear();
        for image in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
            let size = image.size_bytes.unwrap_or(0);
            for name in image.names.iter().flatten() {
                self.images.insert(normalize_image(name), size);
            }
        }
        self.name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
        self.has_taints = !taints.is_empty();
        self.has_prefer_no_schedule_taints = taints.iter().any(|t| t.effect == "PreferNoSchedule");
        self.node = node;
    }

    pub fn labels(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.requested.allowed_pods += 1;
        self.non_zero_requested.add(&pod.non_zero);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity {
            self.pods_with_affinity += 1;
        }
        if pod.has_required_anti_affinity {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod by key; true if it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.requested.allowed_pods -= 1;
        self.non_zero_requested.sub(&pod.non_zero);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity {
            self.pods_with_affinity -= 1;
        }
        if pod.has_required_anti_affinity {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|hp| *hp > 0)?;
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let ip = p
                .host_ip
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            Some((proto, ip, port))
        })
        .collect()
}

/// "busybox" -> "docker.io/library/busybox:latest", as the image names a
/// kubelet reports in node.status.images.
pub fn normalize_image(name: &str) -> String {
    let has_tag_or_digest = name.contains('@') || name.rsplit('/').next().is_some_and(|last| last.contains(':'));
    let mut s = name.to_string();
    if !has_tag_or_digest {
        s.push_str(":latest");
    }
    let first = s.split('/').next().unwrap_or("");
    let has_registry = s.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry {
        if s.contains('/') {
            s = format!("docker.io/{s}");
        } else {
            s = format!("docker.io/library/{s}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_normalize_like_the_kubelet() {
        assert_eq!(normalize_image("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize_image("nginx:1.0"), "docker.io/library/nginx:1.0");
        assert_eq!(normalize_image("quay.io/x/y"), "quay.io/x/y:latest");
        assert_eq!(normalize_image("127.0.0.1:5000/a:b"), "127.0.0.1:5000/a:b");
    }
}
