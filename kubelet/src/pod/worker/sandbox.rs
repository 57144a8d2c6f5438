//! The pod sandbox: namespaces, host ports and the pod network, through
//! [`PodNetwork`](crate::network::PodNetwork) so that tests need no CNI.

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;

use crate::context::{Kubelet, SandboxState};
use crate::network::PortMapping;

pub(super) fn load_sandbox(k: &Kubelet, uid: &str) -> Option<SandboxState> {
    if !k.network.namespaces_exist(&k.namespaces(uid)) {
        return None;
    }
    let b = std::fs::read(k.sandbox_file(uid)).ok()?;
    serde_json::from_slice(&b).ok()
}

pub(super) fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|h| *h > 0) {
                out.push(PortMapping {
                    host_port: hp,
                    container_port: p.container_port,
                    protocol: p
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into())
                        .to_lowercase(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                });
            }
        }
    }
    out
}

pub(super) async fn create_sandbox(k: &Kubelet, pod: &Pod) -> Result<SandboxState, String> {
    let ports = prepare_sandbox(k, pod).await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    wire_network(k, &uid, pod, ports).await
}

/// The pod's namespaces and host ports: everything a container needs to be created.
pub(super) async fn prepare_sandbox(k: &Kubelet, pod: &Pod) -> Result<Vec<PortMapping>, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = k.namespaces(&uid);
    k.network.remove_namespaces(&ns);
    k.network
        .create_namespaces(&ns, pod.metadata.name.as_deref().unwrap_or("pod"))
        .await
        .map_err(|e| e.to_string())?;
    // resolv.conf is the sandbox's, written once as the runtime does.
    if let Err(e) = crate::network::dns::write_pod_resolv_conf(k, pod) {
        k.network.remove_namespaces(&ns);
        return Err(e);
    }
    let ports = host_ports(pod);
    let mut held = Vec::new();
    for p in ports.iter().filter(|p| p.protocol == "tcp") {
        let ip = if p.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            p.host_ip.as_str()
        };
        match std::net::TcpListener::bind((ip, p.host_port as u16)) {
            Ok(l) => held.push(l),
            Err(e) => {
                k.network.remove_namespaces(&ns);
                return Err(format!(
                    "cannot open hostport {} for pod {}: {e}",
                    p.host_port,
                    pod.metadata.name.clone().unwrap_or_default()
                ));
            }
        }
    }
    if let Ok(mut hp) = k.host_ports.lock() {
        hp.insert(uid.clone(), held);
    }
    Ok(ports)
}

/// CNI ADD in the pod's net namespace, then the sandbox record; a failure undoes both.
pub(super) async fn wire_network(
    k: &Kubelet,
    uid: &str,
    pod: &Pod,
    ports: Vec<PortMapping>,
) -> Result<SandboxState, String> {
    let t = std::time::Instant::now();
    let ns = k.namespaces(uid);
    let ip = match k.network.setup(uid, &ns, &ports).await {
        Ok(ip) => ip,
        Err(e) => {
            let _ = k.network.teardown(uid, &ns, &ports).await;
            k.network.remove_namespaces(&ns);
            return Err(e.to_string());
        }
    };
    tracing::debug!(pod = ?pod.metadata.name, cni_ms = t.elapsed().as_millis(), "pod network ready");
    let st = SandboxState {
        pod_ip: ip,
        ports,
        created_at: Utc::now().to_rfc3339(),
    };
    std::fs::write(
        k.sandbox_file(uid),
        serde_json::to_vec(&st).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(st)
}

/// CNI DEL and the namespaces, once: a pod whose sandbox is already gone
/// (released when it finished, or never created) has nothing left to release.
pub(super) async fn release_network(k: &Kubelet, uid: &str) {
    if let Ok(mut hp) = k.host_ports.lock() {
        hp.remove(uid);
    }
    let ns = k.namespaces(uid);
    let record = k.sandbox_file(uid);
    if !k.network.namespaces_exist(&ns) && !record.exists() {
        return;
    }
    // The record, not load_sandbox: after a reboot the namespaces are gone but
    // the IP and host ports are still held.
    let ports = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<SandboxState>(&b).ok())
        .map(|s| s.ports)
        .unwrap_or_default();
    if let Err(e) = k.network.teardown(uid, &ns, &ports).await {
        tracing::warn!(uid, error = %e, "CNI DEL");
    }
    k.network.remove_namespaces(&ns);
    let _ = std::fs::remove_file(record);
}
