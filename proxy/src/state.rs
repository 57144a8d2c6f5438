//! What the proxy programs: every Service port with a cluster IP, and the endpoints that
//! may receive its traffic, built from Services and EndpointSlices by a pure function.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
    /// nft's name.
    pub fn nft(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// `namespace/name:port-name/protocol`, upstream's ServicePortName.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.namespace, self.name, self.protocol.nft(), self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: ServicePortName,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// sessionAffinity ClientIP's timeout in seconds.
    pub affinity_seconds: Option<u32>,
    pub internal_local: bool,
    pub external_local: bool,
    /// Every endpoint the slices list, sorted; see [`usable`].
    pub endpoints: Vec<Endpoint>,
}

/// Everything one sync programs, keyed by service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub node: String,
    /// Pod traffic's source range; other sources reaching a cluster IP are masqueraded.
    pub cluster_cidr: Option<(Ipv4Addr, u8)>,
    pub ports: BTreeMap<ServicePortName, ServicePort>,
}

/// Upstream's endpoint selection (CategorizeEndpoints): ready endpoints; when none is ready,
/// the serving terminating ones so connections drain; for a Local policy only this node's.
pub fn usable<'a>(endpoints: &'a [Endpoint], local_only: bool, node: &str) -> Vec<&'a Endpoint> {
    let here = |e: &&Endpoint| !local_only || e.node.as_deref() == Some(node);
    let ready: Vec<&Endpoint> = endpoints.iter().filter(here).filter(|e| e.ready && !e.terminating).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.iter().filter(here).filter(|e| e.serving && e.terminating).collect()
}

pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, p) = s.split_once('/')?;
    let p: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    Some((ip.parse().ok()?, p))
}

/// Builds the state from the API's objects; Services without a cluster IP (headless,
/// ExternalName) and slices of other address types are left out.
pub fn build(node: &str, cluster_cidr: Option<(Ipv4Addr, u8)>, services: &[Service], slices: &[EndpointSlice]) -> ServiceState {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let labels = s.metadata.labels.as_ref();
        let Some(svc) = labels.and_then(|l| l.get("kubernetes.io/service-name")) else { continue };
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(s);
    }
    let mut ports = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            continue;
        }
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else { continue };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800) as u32
        });
        let slices = by_service.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP")) else { continue };
            let port_name = p.name.clone().unwrap_or_default();
            let mut endpoints = Vec::new();
            for s in &slices {
                let Some(sp) = s.ports.iter().flatten().find(|sp| sp.name.clone().unwrap_or_default() == port_name && Protocol::parse(sp.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)) else { continue };
                let Some(target) = sp.port.and_then(|p| u16::try_from(p).ok()) else { continue };
                for e in &s.endpoints {
                    let c = e.conditions.as_ref();
                    let ready = c.and_then(|c| c.ready).unwrap_or(true);
                    let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                    let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                    for a in &e.addresses {
                        if let Ok(ip) = a.parse() {
                            endpoints.push(Endpoint { ip, port: target, node: e.node_name.clone(), ready, serving, terminating });
                        }
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            let key = ServicePortName { namespace: ns.clone(), name: name.clone(), port: port_name, protocol };
            let node_port = match ty {
                "NodePort" | "LoadBalancer" => p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0),
                _ => None,
            };
            ports.insert(
                key.clone(),
                ServicePort {
                    name: key,
                    cluster_ip,
                    port: u16::try_from(p.port).unwrap_or(0),
                    node_port,
                    affinity_seconds,
                    internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    external_local: matches!(spec.external_traffic_policy.as_deref(), Some("Local")),
                    endpoints,
                },
            );
        }
    }
    ServiceState { node: node.to_string(), cluster_cidr, ports }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(ip: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), port: 80, node: Some(node.into()), ready, serving, terminating }
    }

    #[test]
    fn only_ready_endpoints_unless_all_are_terminating() {
        let eps = vec![ep("10.0.0.1", "a", true, true, false), ep("10.0.0.2", "a", false, false, false), ep("10.0.0.3", "b", false, true, true)];
        let got: Vec<_> = usable(&eps, false, "a").iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(got, vec!["10.0.0.1"]);
        let draining = vec![ep("10.0.0.3", "b", false, true, true), ep("10.0.0.4", "b", false, false, true)];
        let got: Vec<_> = usable(&draining, false, "a").iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(got, vec!["10.0.0.3"], "serving terminating endpoints drain when nothing is ready");
    }

    #[test]
    fn local_policy_keeps_this_nodes_endpoints() {
        let eps = vec![ep("10.0.0.1", "a", true, true, false), ep("10.0.0.2", "b", true, true, false)];
        let got: Vec<_> = usable(&eps, true, "b").iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(got, vec!["10.0.0.2"]);
        assert!(usable(&eps, true, "c").is_empty());
    }

    #[test]
    fn state_joins_services_and_slices_by_port_name() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({"metadata": {"name": "h", "namespace": "ns"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}})).unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.88.0.9"], "conditions": {"ready": true}, "nodeName": "node-0"}]
        }))
        .unwrap();
        let st = build("node-0", parse_cidr("10.88.0.0/16"), &[svc, headless], &[slice]);
        assert_eq!(st.ports.len(), 2);
        let http = st.ports.values().find(|p| p.name.port == "http").unwrap();
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity_seconds, Some(10800));
        assert_eq!(http.endpoints.len(), 1);
        assert_eq!(http.endpoints[0].port, 8080);
        let dns = st.ports.values().find(|p| p.name.port == "dns").unwrap();
        assert!(dns.endpoints.is_empty());
        assert_eq!(dns.name.protocol, Protocol::Udp);
    }
}
