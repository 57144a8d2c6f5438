//! Service environment variables (`FOO_SERVICE_HOST`, `FOO_PORT_80_TCP`, ...)
//! that upstream's kubelet gives every container: the services of the pod's
//! namespace when enableServiceLinks allows, and always `kubernetes`.

use k8s_openapi::api::core::v1::{Pod, Service};

/// The services whose variables a pod gets, by upstream's rule: its
/// namespace's (unless enableServiceLinks is false), and the master service
/// `kubernetes` of `default`; only those with a cluster IP.
pub fn select(pod: &Pod, in_namespace: Vec<Service>, kubernetes: Option<Service>) -> Vec<Service> {
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut out: Vec<Service> = if links { in_namespace } else { Vec::new() };
    if let Some(k) = kubernetes {
        if !out.iter().any(|s| s.metadata.name == k.metadata.name) {
            out.push(k);
        }
    }
    out.retain(|s| cluster_ip(s).is_some());
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

fn cluster_ip(s: &Service) -> Option<&str> {
    s.spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

fn var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables of `services`, as upstream's envvars.FromServices.
pub fn from_services(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in services {
        let Some(ip) = cluster_ip(s) else { continue };
        let ports = s
            .spec
            .as_ref()
            .and_then(|sp| sp.ports.clone())
            .unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = var_name(s.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", var_name(n)),
                    p.port.to_string(),
                ));
            }
        }
        // Docker-link variables.
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let url = format!("{}://{host}:{}", proto.to_lowercase(), p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    /// [sig-node] Pods should contain environment variables for services.
    #[test]
    fn variables_follow_upstream_names() {
        let s = svc(
            "default",
            "fooservice",
            "10.0.0.11",
            serde_json::json!([{"port": 8765, "name": "http"}, {"port": 53, "protocol": "UDP"}]),
        );
        let env: std::collections::HashMap<String, String> =
            from_services(&[s]).into_iter().collect();
        let want = [
            ("FOOSERVICE_SERVICE_HOST", "10.0.0.11"),
            ("FOOSERVICE_SERVICE_PORT", "8765"),
            ("FOOSERVICE_SERVICE_PORT_HTTP", "8765"),
            ("FOOSERVICE_PORT", "tcp://10.0.0.11:8765"),
            ("FOOSERVICE_PORT_8765_TCP", "tcp://10.0.0.11:8765"),
            ("FOOSERVICE_PORT_8765_TCP_PROTO", "tcp"),
            ("FOOSERVICE_PORT_8765_TCP_PORT", "8765"),
            ("FOOSERVICE_PORT_8765_TCP_ADDR", "10.0.0.11"),
            ("FOOSERVICE_PORT_53_UDP", "udp://10.0.0.11:53"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn headless_services_and_disabled_links_are_left_out() {
        let mut pod = Pod::default();
        let ns = vec![
            svc(
                "shop",
                "my-db",
                "10.0.0.2",
                serde_json::json!([{"port": 5432}]),
            ),
            svc("shop", "headless", "None", serde_json::json!([{"port": 1}])),
        ];
        let k8s = svc(
            "default",
            "kubernetes",
            "10.0.0.1",
            serde_json::json!([{"port": 443, "name": "https"}]),
        );
        let names = |v: Vec<Service>| -> Vec<String> {
            v.into_iter().map(|s| s.metadata.name.unwrap()).collect()
        };
        assert_eq!(
            names(select(&pod, ns.clone(), Some(k8s.clone()))),
            vec!["kubernetes", "my-db"]
        );
        assert!(from_services(&ns[..1]).contains(&("MY_DB_SERVICE_HOST".into(), "10.0.0.2".into())));
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            enable_service_links: Some(false),
            ..Default::default()
        });
        assert_eq!(names(select(&pod, ns, Some(k8s))), vec!["kubernetes"]);
    }
}
