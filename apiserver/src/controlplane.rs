//! Service networking owned by the apiserver itself (upstream pkg/controlplane): the
//! cluster-IP and node-port pools behind Services, their repair loop, the `default/kubernetes`
//! Service on the first address of the range, and the lease endpoint reconciler that keeps
//! its Endpoints and EndpointSlice naming every live apiserver.

use crate::allocator::{repair, IpRange, PortRange, ServiceAllocators};
use crate::kinds::ServiceAllocations;
use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;
use crate::storage::{DynStorage, StorageError};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// `--service-cluster-ip-range`, `--service-node-port-range`, `--advertise-address`.
#[derive(Clone, Debug)]
pub struct ServiceNetworkOptions {
    pub cluster_ip_range: IpRange,
    pub node_port_range: PortRange,
    /// Where pods reach this apiserver: the kubernetes Service's endpoint (and a second
    /// listener); the bind address when None.
    pub advertise_address: Option<Ipv4Addr>,
    /// How often the allocations are repaired (upstream: 3 minutes).
    pub repair_interval: Duration,
}

impl Default for ServiceNetworkOptions {
    fn default() -> Self {
        ServiceNetworkOptions {
            cluster_ip_range: IpRange::parse("10.96.0.0/16").expect("the default range parses"),
            node_port_range: PortRange { base: 30000, size: 2768 },
            advertise_address: None,
            repair_interval: Duration::from_secs(180),
        }
    }
}

/// Upstream's DefaultEndpointReconcilerInterval and master lease TTL.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
const LEASE_TTL: Duration = Duration::from_secs(15);

/// The first address of the range: the kubernetes Service's, and a SAN of the serving cert.
pub fn kubernetes_service_ip(range: &IpRange) -> Ipv4Addr {
    range.nth(1)
}

/// Puts the pools behind the Service store and starts repair, the kubernetes Service and
/// the endpoint reconciler. `endpoint_ip`/`port`: where this apiserver serves.
pub fn start(registry: &Arc<Registry>, storage: DynStorage, opts: &ServiceNetworkOptions, endpoint_ip: Ipv4Addr, port: u16) -> Arc<ServiceAllocators> {
    let prefix = registry.etcd_prefix.clone();
    let allocs = ServiceAllocators::new(storage.clone(), &prefix, opts.cluster_ip_range, opts.node_port_range);
    if let Some(store) = registry.store("", "v1", "services") {
        let _ = store.hooks.set(Arc::new(ServiceAllocations { allocs: allocs.clone() }));
    }
    repair::start(allocs.clone(), storage.clone(), format!("{prefix}/services/"), opts.repair_interval);
    let reg = registry.clone();
    let service_ip = kubernetes_service_ip(&opts.cluster_ip_range);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match reconcile(&reg, &storage, service_ip, endpoint_ip, port).await {
                Ok(()) => delay = RECONCILE_INTERVAL,
                Err(e) => {
                    tracing::info!(error = %e, "kubernetes service endpoints not reconciled yet; retrying");
                    delay = (delay * 2).min(RECONCILE_INTERVAL);
                }
            }
            tokio::time::sleep(delay).await;
        }
    });
    allocs
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The kubernetes Service as upstream's controlplane creates it.
pub fn kubernetes_service(ip: Ipv4Addr, port: u16) -> Value {
    json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP", "clusterIP": ip.to_string(), "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    })
}

fn endpoints(ips: &[String], port: u16) -> Value {
    json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(), "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
}

fn endpoint_slice(ips: &[String], port: u16) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
}

/// Create `obj`, or replace it when what it says differs (`same` compares the payload).
async fn ensure(reg: &Registry, plural: (&str, &str, &str), obj: Value, payload: &[&str]) -> Result<(), ApiError> {
    let store = reg.store(plural.0, plural.1, plural.2).ok_or_else(|| ApiError::Internal(format!("no {}", plural.2)))?;
    let opts = WriteOptions::default();
    match store.get(Some("default"), "kubernetes", false).await {
        Ok(cur) => {
            if payload.iter().all(|k| cur.get(*k) == obj.get(*k)) {
                return Ok(());
            }
            let mut next = cur.clone();
            for k in payload {
                if let Some(v) = obj.get(*k) {
                    next[*k] = v.clone();
                }
            }
            store.update(Some("default"), "kubernetes", next, crate::registry::strategy::Part::Main, &opts).await.map(|_| ())
        }
        Err(ApiError::NotFound(_)) => match store.create(Some("default"), obj, &opts).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// One pass of upstream's lease endpoint reconciler: renew this apiserver's lease, read
/// every live lease, and point the kubernetes Service's endpoints at them.
async fn reconcile(reg: &Registry, storage: &DynStorage, service_ip: Ipv4Addr, ip: Ipv4Addr, port: u16) -> Result<(), ReconcileError> {
    let svcs = reg.store("", "v1", "services").ok_or_else(|| ApiError::Internal("no services".into()))?;
    match svcs.get(Some("default"), "kubernetes", false).await {
        Ok(_) => {}
        Err(ApiError::NotFound(_)) => match svcs.create(Some("default"), kubernetes_service(service_ip, port), &WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    let leases = format!("{}/masterleases/", reg.etcd_prefix);
    let key = format!("{leases}{ip}");
    let value = bytes::Bytes::from(serde_json::to_vec(&json!({"kind": "Endpoints", "apiVersion": "v1", "metadata": {"name": ip.to_string()}, "subsets": [{"addresses": [{"ip": ip.to_string()}]}]})).unwrap_or_default());
    match storage.get(&key).await? {
        Some(kv) => match storage.update_with_ttl(&key, value, kv.mod_revision, LEASE_TTL).await {
            Ok(_) | Err(StorageError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        },
        None => match storage.create_with_ttl(&key, value, LEASE_TTL).await {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        },
    }
    let live = storage.list(&leases, Default::default()).await?;
    let mut ips: Vec<String> = live.items.iter().filter_map(|kv| kv.key.strip_prefix(&leases).map(String::from)).collect();
    if !ips.contains(&ip.to_string()) {
        ips.push(ip.to_string());
    }
    ips.sort();
    ensure(reg, ("", "v1", "endpoints"), endpoints(&ips, port), &["subsets"]).await?;
    ensure(reg, ("discovery.k8s.io", "v1", "endpointslices"), endpoint_slice(&ips, port), &["endpoints", "ports", "addressType"]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_takes_the_first_address() {
        let r = IpRange::parse("10.96.0.0/16").unwrap();
        let svc = kubernetes_service(kubernetes_service_ip(&r), 6443);
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        let slice = endpoint_slice(&["10.87.0.1".into(), "10.87.1.1".into()], 6443);
        assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    }
}
