use super::*;
use crate::state::{Endpoint, Protocol, ServicePort, ServicePortName, ServiceState};
use std::net::Ipv4Addr;

fn ep(ip: &str, node: &str, ready: bool) -> Endpoint {
    Endpoint { ip: ip.parse().unwrap(), port: 8080, node: Some(node.into()), ready, serving: ready, terminating: false }
}

fn port(name: &str, ip: &str, eps: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        name: ServicePortName { namespace: "ns".into(), name: name.into(), port: "http".into(), protocol: Protocol::Tcp },
        cluster_ip: ip.parse().unwrap(),
        port: 80,
        node_port: None,
        affinity_seconds: None,
        internal_local: false,
        external_local: false,
        endpoints: eps,
    }
}

fn state(ports: Vec<ServicePort>) -> ServiceState {
    ServiceState {
        node: "node-0".into(),
        cluster_cidr: Some((Ipv4Addr::new(10, 88, 0, 0), 16)),
        ports: ports.into_iter().map(|p| (p.name.clone(), p)).collect(),
    }
}

fn text(v: &[String]) -> String {
    v.join(",")
}

#[test]
fn a_service_chain_picks_ready_endpoints_at_random() {
    let sp = port("web", "10.96.0.5", vec![ep("10.88.0.2", "node-0", true), ep("10.88.0.3", "node-0", true), ep("10.88.0.4", "node-0", false)]);
    let rs = ruleset(&state(vec![sp.clone()]));
    let chain = &rs.chains[&service_chain(&sp)];
    let rules = text(&chain.rules);
    assert!(rules.contains(r#""numgen":{"mode":"random","mod":2,"offset":0}"#), "{rules}");
    assert!(!rules.contains("10.88.0.4"), "an unready endpoint gets no traffic");
    assert!(rs.chains.keys().filter(|k| k.starts_with("endpoint-")).count() == 2);
    let elems = &rs.maps["service-ips"];
    assert_eq!(elems.len(), 1);
    assert!(elems.values().next().unwrap().contains(&service_chain(&sp)));
    // Off-cluster sources are masqueraded; the endpoint chain masquerades hairpin traffic.
    assert!(rules.contains("mark-for-masquerade") && rules.contains(r#""len":16"#));
    let ep_chain = &rs.chains[&endpoint_chain(&sp, &sp.endpoints[0])];
    let ep_rules = text(&ep_chain.rules);
    assert!(ep_rules.contains(r#""right":"10.88.0.2"}},{"jump""#) && ep_rules.contains(r#""dnat":{"addr":"10.88.0.2","port":8080}"#), "{ep_rules}");
}

#[test]
fn a_service_without_endpoints_is_rejected() {
    let sp = port("empty", "10.96.0.6", vec![ep("10.88.0.4", "node-0", false)]);
    let rs = ruleset(&state(vec![sp.clone()]));
    assert!(!rs.chains.contains_key(&service_chain(&sp)));
    assert!(rs.maps["service-ips"].is_empty());
    assert_eq!(rs.maps["no-endpoint-services"].len(), 1);
}

#[test]
fn client_ip_affinity_uses_a_timeout_set_per_endpoint() {
    let mut sp = port("sticky", "10.96.0.7", vec![ep("10.88.0.2", "node-0", true), ep("10.88.0.3", "node-0", true)]);
    sp.affinity_seconds = Some(600);
    let rs = ruleset(&state(vec![sp.clone()]));
    assert_eq!(rs.sets.len(), 2);
    assert!(rs.sets.values().all(|t| *t == 600));
    let rules = text(&rs.chains[&service_chain(&sp)].rules);
    assert!(rules.contains("@affinity-"), "affinity is checked before the random choice");
    let ep_rules = text(&rs.chains[&endpoint_chain(&sp, &sp.endpoints[0])].rules);
    assert!(ep_rules.contains(r#""op":"update""#));
}

#[test]
fn node_ports_and_local_policies() {
    let mut sp = port("np", "10.96.0.8", vec![ep("10.88.0.2", "node-0", true), ep("10.88.1.2", "node-1", true)]);
    sp.node_port = Some(30080);
    sp.external_local = true;
    sp.internal_local = true;
    let rs = ruleset(&state(vec![sp.clone()]));
    assert_eq!(rs.maps["service-nodeports"].len(), 1);
    let local = text(&rs.chains[&local_chain(&sp)].rules);
    assert!(local.contains("10.88.0.2") && !local.contains("10.88.1.2"), "{local}");
    let cluster = text(&rs.chains[&service_chain(&sp)].rules);
    assert!(!cluster.contains("numgen") && cluster.contains(&endpoint_chain(&sp, &sp.endpoints[0])) && !cluster.contains(&endpoint_chain(&sp, &sp.endpoints[1])), "internalTrafficPolicy Local: only node-0's endpoint: {cluster}");
    // Both endpoints have chains: external traffic from the node itself may use either.
    assert_eq!(rs.chains.keys().filter(|k| k.starts_with("endpoint-")).count(), 2);
}

#[derive(Default)]
struct FakeNft {
    applied: Vec<Vec<String>>,
    existing: Existing,
}

impl Nft for FakeNft {
    fn apply(&mut self, cmds: &[String]) -> Result<(), SyncError> {
        self.applied.push(cmds.to_vec());
        Ok(())
    }
    fn existing(&mut self, _: &str) -> Result<Existing, SyncError> {
        Ok(self.existing.clone())
    }
}

#[test]
fn the_first_sync_replaces_without_flushing_the_table_and_later_ones_touch_only_changes() {
    let mut fake = FakeNft::default();
    fake.existing.chains.insert("service-old-gone".into());
    let mut b = NftBackend::with_nft("t", fake);
    let a = port("a", "10.96.0.5", vec![ep("10.88.0.2", "node-0", true)]);
    let c = port("c", "10.96.0.9", vec![ep("10.88.0.7", "node-0", true)]);
    let st = state(vec![a.clone(), c.clone()]);
    let first = b.sync(&st).unwrap();
    assert!(first.full);
    let cmds = b.nft().applied[0].clone();
    let all = cmds.join(",");
    assert!(!all.contains(r#""flush":{"table""#) && !all.contains(r#""delete":{"table""#), "the table is never flushed");
    assert!(all.contains(r#""delete":{"chain":{"family":"ip","table":"t","name":"service-old-gone""#), "a leftover chain goes in the same transaction");
    // One endpoint of one Service changes: only that Service's chains and endpoints move.
    let mut a2 = a.clone();
    a2.endpoints.push(ep("10.88.0.3", "node-0", true));
    let st2 = state(vec![a2.clone(), c.clone()]);
    let second = b.sync(&st2).unwrap();
    assert!(!second.full);
    assert_eq!(second.chains_written, 2, "the service chain and the new endpoint chain");
    let cmds = b.nft().applied[1].join(",");
    assert!(!cmds.contains(&service_chain(&c)), "an unchanged service is not rewritten");
    assert!(!cmds.contains(r#""flush":{"map""#));
    // Nothing changed: only the table add.
    b.sync(&st2).unwrap();
    assert_eq!(b.nft().applied[2].len(), 1);
    // The Service goes: its chains are deleted, its map element removed.
    let third = b.sync(&state(vec![c.clone()])).unwrap();
    assert_eq!(third.chains_deleted, 3);
    let cmds = b.nft().applied[3].join(",");
    assert!(cmds.contains(r#""delete":{"element""#));
}
