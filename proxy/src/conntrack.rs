//! Stale UDP conntrack entries (upstream pkg/proxy/conntrack): UDP has no connection to
//! close, so a flow DNATed to an endpoint that went away keeps going there until its entry
//! is deleted. Uses `conntrack` from Debian's conntrack package.

use crate::state::{usable, Protocol, ServiceState};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// One deletion: flows to `service` (cluster IP or NodePort) that were NATed to `endpoint`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    ClusterIp { service: Ipv4Addr, endpoint: Ipv4Addr },
    NodePort { port: u16, endpoint: Ipv4Addr },
    /// A Service that had no endpoints got some: its rejected flows are forgotten.
    Service { service: Ipv4Addr },
}

/// What changed for UDP between two states (pure).
pub fn stale(prev: &ServiceState, next: &ServiceState) -> Vec<Stale> {
    let mut out = Vec::new();
    for (name, old) in &prev.ports {
        if name.protocol != Protocol::Udp {
            continue;
        }
        let now: Vec<Ipv4Addr> = next.ports.get(name).map(|p| usable(&p.endpoints, false, &next.node).iter().map(|e| e.ip).collect()).unwrap_or_default();
        for e in usable(&old.endpoints, false, &prev.node) {
            if !now.contains(&e.ip) {
                out.push(Stale::ClusterIp { service: old.cluster_ip, endpoint: e.ip });
                if let Some(port) = old.node_port {
                    out.push(Stale::NodePort { port, endpoint: e.ip });
                }
            }
        }
    }
    for (name, new) in &next.ports {
        if name.protocol != Protocol::Udp {
            continue;
        }
        let had = prev.ports.get(name).is_some_and(|p| !usable(&p.endpoints, false, &prev.node).is_empty());
        if !had && !usable(&new.endpoints, false, &next.node).is_empty() {
            out.push(Stale::Service { service: new.cluster_ip });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `conntrack -D ...` for each; "0 flow entries" is no error.
pub fn flush(entries: &[Stale]) {
    for e in entries {
        let args: Vec<String> = match e {
            Stale::ClusterIp { service, endpoint } => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-dst".into(), service.to_string(), "--dst-nat".into(), endpoint.to_string()],
            Stale::NodePort { port, endpoint } => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-port-dst".into(), port.to_string(), "--dst-nat".into(), endpoint.to_string()],
            Stale::Service { service } => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-dst".into(), service.to_string()],
        };
        if let Err(err) = Command::new("conntrack").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status() {
            tracing::warn!(error = %err, "conntrack not run; stale UDP flows may linger");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Endpoint, ServicePort, ServicePortName};

    fn st(eps: &[&str]) -> ServiceState {
        let name = ServicePortName { namespace: "ns".into(), name: "dns".into(), port: "".into(), protocol: Protocol::Udp };
        let endpoints = eps.iter().map(|ip| Endpoint { ip: ip.parse().unwrap(), port: 53, node: None, ready: true, serving: true, terminating: false }).collect();
        let sp = ServicePort { name: name.clone(), cluster_ip: "10.96.0.10".parse().unwrap(), port: 53, node_port: Some(30053), affinity_seconds: None, internal_local: false, external_local: false, endpoints };
        ServiceState { node: "n".into(), cluster_cidr: None, ports: [(name, sp)].into() }
    }

    #[test]
    fn a_udp_endpoint_that_goes_away_is_flushed() {
        let got = stale(&st(&["10.88.0.2", "10.88.0.3"]), &st(&["10.88.0.3"]));
        let ep: Ipv4Addr = "10.88.0.2".parse().unwrap();
        assert_eq!(got, vec![Stale::ClusterIp { service: "10.96.0.10".parse().unwrap(), endpoint: ep }, Stale::NodePort { port: 30053, endpoint: ep }]);
        assert!(stale(&st(&["10.88.0.3"]), &st(&["10.88.0.3"])).is_empty());
        assert_eq!(stale(&st(&[]), &st(&["10.88.0.3"])), vec![Stale::Service { service: "10.96.0.10".parse().unwrap() }]);
    }
}
