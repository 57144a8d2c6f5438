//! A synthetic load for hack/bench-proxy.sh: N Services of M endpoints synced into a real
//! nft table, then one endpoint changed, timing both syncs; no cluster needed.

use crate::backend::ProxyBackend;
use crate::nftables::{delete_table, NftBackend};
use crate::state::{Endpoint, Protocol, ServicePort, ServicePortName, ServiceState};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub fn state(services: u32, endpoints: u32) -> ServiceState {
    let mut st = ServiceState { node: "node-0".into(), cluster_cidr: Some((Ipv4Addr::new(10, 200, 0, 0), 16)), ports: Default::default() };
    for s in 0..services {
        let name = ServicePortName { namespace: "bench".into(), name: format!("svc-{s}"), port: "http".into(), protocol: Protocol::Tcp };
        let eps = (0..endpoints)
            .map(|e| {
                let n = s * endpoints + e;
                Endpoint { ip: Ipv4Addr::new(10, 200, (n / 250) as u8, (n % 250 + 2) as u8), port: 8080, node: Some("node-0".into()), ready: true, serving: true, terminating: false }
            })
            .collect();
        let sp = ServicePort {
            name: name.clone(),
            cluster_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 201, 0, 1)) + s),
            port: 80,
            node_port: None,
            affinity_seconds: None,
            internal_local: false,
            external_local: false,
            endpoints: eps,
        };
        st.ports.insert(name, sp);
    }
    st
}

pub struct Report {
    pub full: Duration,
    pub incremental: Duration,
    pub rules: usize,
    pub rss_kib: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs the bench in `table`, removing it afterwards whatever happens.
pub fn run(table: &str, services: u32, endpoints: u32) -> Result<Report, crate::backend::SyncError> {
    struct Cleanup<'a>(&'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = delete_table(self.0);
        }
    }
    let _cleanup = Cleanup(table);
    let _ = delete_table(table);
    let mut st = state(services, endpoints);
    let mut b = NftBackend::new(table);
    let t = Instant::now();
    let stats = b.sync(&st)?;
    let full = t.elapsed();
    // One endpoint of one Service moves.
    if let Some(sp) = st.ports.values_mut().next() {
        if let Some(e) = sp.endpoints.first_mut() {
            e.ip = Ipv4Addr::new(10, 202, 0, 9);
        }
    }
    let t = Instant::now();
    b.sync(&st)?;
    let incremental = t.elapsed();
    if std::env::var_os("FERROKUBE_BENCH_DETAIL").is_some() {
        let t = Instant::now();
        let rs = crate::nftables::ruleset(&st);
        eprintln!("ruleset() {:?} ({} chains)", t.elapsed(), rs.chains.len());
        let t = Instant::now();
        let _ = std::process::Command::new("nft").args(["list", "table", "ip", table]).output();
        eprintln!("nft list table {:?}", t.elapsed());
        let t = Instant::now();
        let _ = std::process::Command::new("nft").args(["add", "table", "ip", table]).output();
        eprintln!("nft add table (cache load) {:?}", t.elapsed());
    }
    Ok(Report { full, incremental, rules: stats.rules_total, rss_kib: rss_kib() })
}
