//! The generated transactions against the real `nft` (root): a full sync, an incremental
//! one, a restart's first sync over a populated table, and removal.

use proxy::backend::ProxyBackend;
use proxy::nftables::{delete_table, NftBackend};
use proxy::state::{Endpoint, Protocol, ServicePort, ServicePortName, ServiceState};
use std::process::Command;

fn nft_list(table: &str) -> String {
    let out = Command::new("nft").args(["list", "table", "ip", table]).output().expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn port(name: &str, ip: &str, proto: Protocol, eps: &[&str], node_port: Option<u16>, affinity: bool) -> ServicePort {
    ServicePort {
        name: ServicePortName { namespace: "ns".into(), name: name.into(), port: "p".into(), protocol: proto },
        cluster_ip: ip.parse().unwrap(),
        port: 80,
        node_port,
        affinity_seconds: affinity.then_some(60),
        internal_local: false,
        external_local: name.contains("local"),
        endpoints: eps.iter().map(|e| Endpoint { ip: e.parse().unwrap(), port: 8080, node: Some("node-0".into()), ready: true, serving: true, terminating: false }).collect(),
    }
}

struct Table(String);
impl Drop for Table {
    fn drop(&mut self) {
        let _ = delete_table(&self.0);
    }
}

#[test]
fn rulesets_apply_to_the_kernel_incrementally_and_across_restarts() {
    if Command::new("nft").arg("--version").output().is_err() || !nix_is_root() {
        eprintln!("skipped: needs nft and root");
        return;
    }
    let table = Table(format!("ferrokube-unit-{}", std::process::id()));
    let ports = [
        port("web", "10.199.0.5", Protocol::Tcp, &["10.199.1.2", "10.199.1.3"], Some(31999), true),
        port("dns", "10.199.0.10", Protocol::Udp, &["10.199.1.4"], None, false),
        port("none", "10.199.0.11", Protocol::Tcp, &[], Some(31998), false),
        port("local", "10.199.0.12", Protocol::Tcp, &["10.199.1.5"], Some(31997), false),
    ];
    let st = ServiceState { node: "node-0".into(), cluster_cidr: Some(("10.199.0.0".parse().unwrap(), 16)), ports: ports.iter().map(|p| (p.name.clone(), p.clone())).collect() };
    let mut b = NftBackend::new(&table.0);
    b.sync(&st).expect("full sync");
    let listed = nft_list(&table.0);
    assert!(listed.contains("numgen random mod 2 0 goto"), "{listed}");
    assert!(listed.contains("dnat to 10.199.1.2:8080"), "{listed}");
    assert!(listed.contains("10.199.0.11 . tcp . 80 : goto reject-chain"), "{listed}");
    // Incremental: one endpoint more.
    let mut st2 = st.clone();
    st2.ports.values_mut().next().unwrap().endpoints.push(Endpoint { ip: "10.199.1.9".parse().unwrap(), port: 8080, node: None, ready: true, serving: true, terminating: false });
    let stats = b.sync(&st2).expect("incremental sync");
    assert!(!stats.full);
    assert!(nft_list(&table.0).contains("dnat to 10.199.1.9:8080"));
    // A restarted proxy: a fresh backend over the populated table, with one Service gone.
    let mut st3 = st2.clone();
    let first = st3.ports.keys().next().unwrap().clone();
    st3.ports.remove(&first);
    let mut again = NftBackend::new(&table.0);
    again.sync(&st3).expect("first sync over an existing table");
    let listed = nft_list(&table.0);
    assert!(!listed.contains("10.199.1.9"), "the removed Service's chains are gone: {listed}");
    assert!(listed.contains("dnat to 10.199.1.2:8080") && !listed.contains("10.199.1.4"));
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))).unwrap_or(false)
}
