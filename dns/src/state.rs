//! What the DNS server knows of the cluster: Services and EndpointSlices,
//! each cut down to the fields DNS answers need, so that a large cluster
//! costs little memory. One writer (the watchers, or a static zone file)
//! and many readers (queries) share it behind a lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// (namespace, name).
pub type Key = (String, String);

/// How a Service's own name resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A or AAAA with the cluster IPs (none while no IP is allocated yet).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints' addresses.
    Headless,
    /// A CNAME to `spec.externalName`.
    ExternalName(String),
}

/// A named port, for SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// Lowercase, as it appears in `_port._proto` labels.
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
    /// `publishNotReadyAddresses`: not-ready endpoints are published too.
    pub publish_not_ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    pub ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The Service it belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    pub ports: Vec<Port>,
    pub endpoints: Vec<Endpoint>,
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn port(name: Option<&String>, protocol: Option<&String>, port: Option<i32>) -> Option<Port> {
    Some(Port {
        name: name.filter(|n| !n.is_empty())?.clone(),
        protocol: protocol.map_or("tcp".into(), |p| p.to_ascii_lowercase()),
        port: u16::try_from(port?).ok()?,
    })
}

impl Service {
    /// The DNS view of a Service.
    pub fn from_k8s(s: &K8sService) -> Service {
        let spec = s.spec.clone().unwrap_or_default();
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(spec.external_name.unwrap_or_default())
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            let mut ips: Vec<String> = spec.cluster_ips.unwrap_or_default();
            if ips.is_empty() {
                ips.extend(spec.cluster_ip);
            }
            ServiceKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port(p.name.as_ref(), p.protocol.as_ref(), Some(p.port)))
            .collect();
        Service {
            kind,
            ports,
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        }
    }
}

impl Slice {
    /// The DNS view of an EndpointSlice; `None` for one without a Service label.
    pub fn from_k8s(s: &K8sSlice) -> Option<Slice> {
        let service = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
        let ports = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port(p.name.as_ref(), p.protocol.as_ref(), p.port))
            .collect();
        let endpoints = s
            .endpoints
            .iter()
            .map(|e| Endpoint {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                // An unknown readiness is ready, as the EndpointSlice API says.
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            })
            .collect();
        Some(Slice {
            service,
            ports,
            endpoints,
        })
    }
}

/// The cluster's Services and EndpointSlices.
#[derive(Debug, Default)]
pub struct ClusterState {
    services: HashMap<Key, Service>,
    slices: HashMap<Key, Slice>,
    /// Service key -> names of its slices.
    slices_of: HashMap<Key, BTreeSet<String>>,
    /// Services per namespace, so `<ns>.svc.<zone>` exists while one does.
    namespaces: BTreeMap<String, usize>,
    /// Bumped on every change: the SOA serial.
    serial: u32,
}

impl ClusterState {
    pub fn service(&self, ns: &str, name: &str) -> Option<&Service> {
        self.services.get(&(ns.to_string(), name.to_string()))
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains_key(ns)
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Every Service, for reverse lookups.
    pub fn services(&self) -> impl Iterator<Item = (&Key, &Service)> {
        self.services.iter()
    }

    /// The endpoints a Service publishes, each with the ports of its slice:
    /// the ready ones, or all with `publishNotReadyAddresses`.
    pub fn endpoints(&self, ns: &str, name: &str) -> Vec<(&Endpoint, &[Port])> {
        let skey = (ns.to_string(), name.to_string());
        let all = self.service(ns, name).is_some_and(|s| s.publish_not_ready);
        let mut out = Vec::new();
        for slice in self.slices_of.get(&skey).into_iter().flatten() {
            let Some(s) = self.slices.get(&(ns.to_string(), slice.clone())) else {
                continue;
            };
            for e in &s.endpoints {
                if e.ready || all {
                    out.push((e, s.ports.as_slice()));
                }
            }
        }
        out
    }

    pub fn apply_service(&mut self, s: &K8sService) {
        let k = key(&s.metadata);
        let new = Service::from_k8s(s);
        if self.services.get(&k) == Some(&new) {
            return;
        }
        if self.services.insert(k.clone(), new).is_none() {
            *self.namespaces.entry(k.0).or_default() += 1;
        }
        self.bump();
    }

    pub fn delete_service(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        if self.services.remove(&k).is_some() {
            if let Some(n) = self.namespaces.get_mut(ns) {
                *n -= 1;
                if *n == 0 {
                    self.namespaces.remove(ns);
                }
            }
            self.bump();
        }
    }

    pub fn apply_slice(&mut self, s: &K8sSlice) {
        let k = key(&s.metadata);
        match Slice::from_k8s(s) {
            Some(new) => {
                if self.slices.get(&k) == Some(&new) {
                    return;
                }
                self.unlink(&k);
                self.slices_of
                    .entry((k.0.clone(), new.service.clone()))
                    .or_default()
                    .insert(k.1.clone());
                self.slices.insert(k, new);
                self.bump();
            }
            None => self.delete_slice(&k.0, &k.1),
        }
    }

    pub fn delete_slice(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        if self.unlink(&k) {
            self.slices.remove(&k);
            self.bump();
        }
    }

    /// Replaces every Service (after a relist).
    pub fn replace_services(&mut self, all: &[K8sService]) {
        let keep: BTreeSet<Key> = all.iter().map(|s| key(&s.metadata)).collect();
        let gone: Vec<Key> = self.services.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for (ns, name) in gone {
            self.delete_service(&ns, &name);
        }
        for s in all {
            self.apply_service(s);
        }
    }

    /// Replaces every EndpointSlice (after a relist).
    pub fn replace_slices(&mut self, all: &[K8sSlice]) {
        let keep: BTreeSet<Key> = all.iter().map(|s| key(&s.metadata)).collect();
        let gone: Vec<Key> = self.slices.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for (ns, name) in gone {
            self.delete_slice(&ns, &name);
        }
        for s in all {
            self.apply_slice(s);
        }
    }

    fn unlink(&mut self, k: &Key) -> bool {
        let Some(old) = self.slices.get(k) else {
            return false;
        };
        let skey = (k.0.clone(), old.service.clone());
        if let Some(set) = self.slices_of.get_mut(&skey) {
            set.remove(&k.1);
            if set.is_empty() {
                self.slices_of.remove(&skey);
            }
        }
        true
    }

    fn bump(&mut self) {
        self.serial = self.serial.wrapping_add(1);
    }
}

/// The shared state: the watchers write, queries read.
pub type SharedState = Arc<RwLock<ClusterState>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: serde_json::Value) -> K8sService {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> K8sSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn services_are_cut_down_to_their_dns_view() {
        let s = Service::from_k8s(&svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00::20"],
                     "ports": [{"name": "http", "port": 80}, {"port": 81},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        })));
        assert_eq!(
            s.kind,
            ServiceKind::ClusterIp(vec!["10.96.0.20".parse().unwrap(), "fd00::20".parse().unwrap()])
        );
        assert_eq!(s.ports.len(), 2, "an unnamed port has no SRV record");
        assert_eq!(s.ports[1].protocol, "udp");
        let h = Service::from_k8s(&svc(serde_json::json!({"spec": {"clusterIP": "None"}})));
        assert_eq!(h.kind, ServiceKind::Headless);
        let e = Service::from_k8s(&svc(serde_json::json!({
            "spec": {"type": "ExternalName", "externalName": "example.com"}})));
        assert_eq!(e.kind, ServiceKind::ExternalName("example.com".into()));
    }

    #[test]
    fn slices_join_their_service_and_only_ready_endpoints_publish() {
        let mut st = ClusterState::default();
        st.apply_service(&svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "None"}})));
        let sl = slice(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.88.0.5"], "hostname": "web-0", "conditions": {"ready": true}},
                {"addresses": ["10.88.0.6"], "conditions": {"ready": false}},
                {"addresses": ["10.88.0.7"]}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }));
        st.apply_slice(&sl);
        let eps = st.endpoints("shop", "web");
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].0.hostname.as_deref(), Some("web-0"));
        assert_eq!(eps[0].1[0].port, 8080);
        let serial = st.serial();
        st.apply_slice(&sl);
        assert_eq!(st.serial(), serial, "an unchanged slice is no change");
        st.replace_slices(&[]);
        assert!(st.endpoints("shop", "web").is_empty());
        assert!(st.namespace_exists("shop"));
        st.delete_service("shop", "web");
        assert!(!st.namespace_exists("shop"));
    }
}
