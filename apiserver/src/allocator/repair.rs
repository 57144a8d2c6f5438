//! Upstream's repair controllers for service IPs and node ports
//! (pkg/registry/core/service/{ipallocator,portallocator}/controller/repair.go): rebuild each
//! bitmap from the Services in storage and swap it in with a compare on the revision read
//! before the list. A value taken by no Service is freed only after it was seen leaked
//! `leak_runs` times in a row, so a create between its allocation and its write keeps it;
//! two Services holding one value are reported.

use super::bitmap::Bitmap;
use super::range::RangeStore;
use super::{AllocError, ServiceAllocators};
use crate::storage::{paging, DynStorage};
use serde_json::Value;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// Upstream's numRepairsBeforeLeakCleanup.
pub const LEAK_RUNS: u32 = 3;

/// What one run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Offsets freed this run.
    pub freed: Vec<usize>,
    /// Offsets seen leaked but not yet freed.
    pub pending_leaks: Vec<usize>,
    /// `namespace/name` of Services whose value another Service holds too.
    pub duplicates: Vec<String>,
    /// `namespace/name` of Services whose value is outside the range.
    pub out_of_range: Vec<String>,
    /// False when the bitmap changed under the run; it is tried again next time.
    pub written: bool,
}

/// One pool's repair state across runs (the leak counters).
pub struct Repair {
    leaks: HashMap<usize, u32>,
    leak_runs: u32,
}

/// A Service's values in one pool, as offsets (None: outside the range).
pub type Extract<'a> = &'a (dyn Fn(&Value) -> Vec<Option<usize>> + Sync);

impl Repair {
    pub fn new(leak_runs: u32) -> Self {
        Repair { leaks: HashMap::new(), leak_runs: leak_runs.max(1) }
    }

    /// The pure part: from the stored bitmap and the Services, the bitmap to write.
    pub fn plan(&mut self, stored: &Bitmap, services: &[Value], extract: Extract<'_>) -> (Bitmap, Report) {
        let mut fresh = Bitmap::new(stored.size());
        let mut report = Report::default();
        for svc in services {
            let id = format!("{}/{}", s(svc, "/metadata/namespace"), s(svc, "/metadata/name"));
            let mut mine = Vec::new();
            for off in extract(svc) {
                match off {
                    None => report.out_of_range.push(id.clone()),
                    Some(o) if mine.contains(&o) => {}
                    Some(o) => {
                        mine.push(o);
                        if !fresh.set(o) {
                            report.duplicates.push(id.clone());
                        }
                    }
                }
            }
        }
        let mut leaks = HashMap::new();
        for o in stored.taken() {
            if fresh.has(o) {
                continue;
            }
            let seen = self.leaks.get(&o).copied().unwrap_or(0) + 1;
            if seen >= self.leak_runs {
                report.freed.push(o);
            } else {
                // Still held: maybe a create that has allocated and not yet written.
                fresh.set(o);
                leaks.insert(o, seen);
                report.pending_leaks.push(o);
            }
        }
        self.leaks = leaks;
        (fresh, report)
    }

    /// One run over `store` with the Services listed from storage.
    pub async fn run(&mut self, store: &RangeStore, storage: &DynStorage, services_prefix: &str, extract: Extract<'_>) -> Result<Report, AllocError> {
        let (stored, rev) = store.snapshot_at().await?;
        let services = list(storage, services_prefix).await?;
        let (fresh, mut report) = self.plan(&stored, &services, extract);
        report.written = fresh == stored || store.replace(&fresh, rev).await?;
        if !report.written {
            // The counts were for a bitmap that is gone.
            self.leaks.clear();
        }
        for id in &report.duplicates {
            tracing::warn!(service = %id, range = %store.size(), "the service's value is allocated to another service; please recreate");
        }
        for id in &report.out_of_range {
            tracing::warn!(service = %id, "the service's value is not within the service range; please recreate");
        }
        Ok(report)
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

async fn list(storage: &DynStorage, prefix: &str) -> Result<Vec<Value>, AllocError> {
    let mut out = Vec::new();
    paging::for_each_page(&**storage, prefix, 0, |kvs| {
        out.extend(kvs.iter().filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok()));
    })
    .await?;
    Ok(out)
}

/// The cluster IPs a Service holds in `alloc`'s range.
pub fn service_ips(allocs: &ServiceAllocators) -> impl Fn(&Value) -> Vec<Option<usize>> + Sync + '_ {
    move |svc| {
        let ips: Vec<&str> = match svc.pointer("/spec/clusterIPs").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![s(svc, "/spec/clusterIP")],
        };
        ips.into_iter()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
            .map(|ip| allocs.ips.range.offset(ip))
            .collect()
    }
}

/// The node ports (and health-check node port) a Service holds.
pub fn service_ports(allocs: &ServiceAllocators) -> impl Fn(&Value) -> Vec<Option<usize>> + Sync + '_ {
    move |svc| {
        let mut ports: Vec<i64> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).collect())
            .unwrap_or_default();
        if let Some(h) = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64) {
            ports.push(h);
        }
        let r = allocs.ports.range;
        ports
            .into_iter()
            .filter(|p| *p != 0)
            .map(|p| u16::try_from(p).ok().filter(|p| r.contains(*p)).map(|p| (p - r.base) as usize))
            .collect()
    }
}

/// Runs both repairs now and then every `interval` (upstream: 3 minutes).
pub async fn run_once(allocs: &ServiceAllocators, ips: &mut Repair, ports: &mut Repair, storage: &DynStorage, services_prefix: &str) -> Result<(Report, Report), AllocError> {
    let ip_report = ips.run(allocs.ips.store(), storage, services_prefix, &service_ips(allocs)).await?;
    let port_report = ports.run(allocs.ports.store(), storage, services_prefix, &service_ports(allocs)).await?;
    Ok((ip_report, port_report))
}

pub fn start(allocs: Arc<ServiceAllocators>, storage: DynStorage, services_prefix: String, interval: Duration) {
    tokio::spawn(async move {
        let (mut ips, mut ports) = (Repair::new(LEAK_RUNS), Repair::new(LEAK_RUNS));
        loop {
            match run_once(&allocs, &mut ips, &mut ports, &storage, &services_prefix).await {
                Ok((i, p)) => {
                    if !i.freed.is_empty() || !p.freed.is_empty() {
                        tracing::info!(ips = i.freed.len(), ports = p.freed.len(), "repair freed leaked service allocations");
                    }
                }
                Err(e) => tracing::info!(error = %e, "service allocation repair failed; retrying"),
            }
            tokio::time::sleep(interval).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, offs: &[usize]) -> Value {
        json!({"metadata": {"namespace": "ns", "name": name}, "offs": offs})
    }

    fn extract(v: &Value) -> Vec<Option<usize>> {
        v["offs"].as_array().unwrap().iter().map(|o| o.as_u64().map(|o| o as usize).filter(|o| *o < 10)).collect()
    }

    #[test]
    fn a_leak_is_freed_after_three_runs_and_a_held_value_never() {
        let mut r = Repair::new(3);
        let mut stored = Bitmap::new(10);
        stored.set(1);
        stored.set(7); // leaked: no Service holds it
        let services = vec![svc("a", &[1])];
        for run in 1..=3 {
            let (fresh, report) = r.plan(&stored, &services, &extract);
            assert!(fresh.has(1));
            if run < 3 {
                assert!(fresh.has(7), "run {run} keeps a possible in-flight create");
                assert_eq!(report.pending_leaks, vec![7]);
            } else {
                assert!(!fresh.has(7));
                assert_eq!(report.freed, vec![7]);
            }
            stored = fresh;
        }
    }

    #[test]
    fn a_leak_that_comes_back_into_use_starts_over() {
        let mut r = Repair::new(2);
        let mut stored = Bitmap::new(10);
        stored.set(4);
        let (fresh, _) = r.plan(&stored, &[], &extract);
        stored = fresh;
        let (fresh, report) = r.plan(&stored, &[svc("b", &[4])], &extract);
        assert!(report.freed.is_empty() && fresh.has(4));
        let (_, report) = r.plan(&fresh, &[], &extract);
        assert_eq!(report.pending_leaks, vec![4], "the count started over");
    }

    #[test]
    fn missing_values_are_added_and_duplicates_and_strays_reported() {
        let mut r = Repair::new(3);
        let stored = Bitmap::new(10);
        let services = vec![svc("a", &[2]), svc("b", &[2]), svc("c", &[12]), svc("d", &[5, 5])];
        let (fresh, report) = r.plan(&stored, &services, &extract);
        assert!(fresh.has(2) && fresh.has(5));
        assert_eq!(fresh.count(), 2);
        assert_eq!(report.duplicates, vec!["ns/b".to_string()]);
        assert_eq!(report.out_of_range, vec!["ns/c".to_string()]);
    }
}
