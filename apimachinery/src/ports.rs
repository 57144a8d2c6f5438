//! Named ports: a probe's or lifecycle hook's port, and a Service port's
//! targetPort, resolved against container ports.

use k8s_openapi::api::core::v1::{Container, Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("no container port named {0:?}")]
    NoSuchPort(String),
    #[error("invalid port number: {0}")]
    OutOfRange(i64),
    #[error("no suitable port for manifest: {pod}")]
    NoSuitablePort { pod: String },
}

/// Upstream's probe ResolveContainerPort: a number is used as is, a name is
/// looked up among the container's own ports, then tried as a number.
pub fn container_port(container: &Container, port: &IntOrString) -> Result<u16, PortError> {
    let n = match port {
        IntOrString::Int(i) => *i as i64,
        IntOrString::String(name) => match container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name)) {
            Some(p) => p.container_port as i64,
            None => name.parse::<i64>().map_err(|_| PortError::NoSuchPort(name.clone()))?,
        },
    };
    u16::try_from(n).ok().filter(|p| *p > 0).ok_or(PortError::OutOfRange(n))
}

/// Upstream's FindPort for a Service port's targetPort: a number is used as
/// is; a name must match a container port of the same protocol, in the
/// containers or the sidecar (restartPolicy Always) init containers. An
/// unset targetPort is the Service port, as defaulting sets it.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Result<i32, PortError> {
    let name = match &service_port.target_port {
        None => return Ok(service_port.port),
        Some(IntOrString::Int(i)) => return Ok(*i),
        Some(IntOrString::String(name)) => name,
    };
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.into_iter()
        .flat_map(|s| s.containers.iter())
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
        .map(|p| p.container_port)
        .ok_or_else(|| PortError::NoSuitablePort { pod: pod.metadata.uid.clone().unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1"},
            "spec": {
                "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"}
                ]}],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                    {"name": "init", "ports": [{"name": "setup", "containerPort": 7070}]}
                ]
            }
        }))
        .unwrap()
    }

    fn svc_port(target: Option<IntOrString>, protocol: Option<&str>) -> ServicePort {
        ServicePort { port: 80, target_port: target, protocol: protocol.map(Into::into), ..Default::default() }
    }

    #[test]
    fn probe_ports() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(container_port(c, &IntOrString::String("http".into())), Ok(8080));
        assert_eq!(container_port(c, &IntOrString::Int(9000)), Ok(9000));
        assert_eq!(container_port(c, &IntOrString::String("9001".into())), Ok(9001), "a number stored as a string");
        assert_eq!(container_port(c, &IntOrString::String("nope".into())), Err(PortError::NoSuchPort("nope".into())));
        assert_eq!(container_port(c, &IntOrString::Int(0)), Err(PortError::OutOfRange(0)));
        assert_eq!(container_port(c, &IntOrString::Int(65536)), Err(PortError::OutOfRange(65536)));
    }

    /// The kubelet's old copy searched every container of the pod; upstream
    /// looks only in the probed container.
    #[test]
    fn probe_ports_do_not_come_from_other_containers() {
        let other = Container { name: "other".into(), ..Default::default() };
        assert!(container_port(&other, &IntOrString::String("http".into())).is_err());
    }

    #[test]
    fn service_target_ports() {
        let p = pod();
        assert_eq!(find_port(&p, &svc_port(None, None)), Ok(80));
        assert_eq!(find_port(&p, &svc_port(Some(IntOrString::Int(8443)), None)), Ok(8443));
        assert_eq!(find_port(&p, &svc_port(Some(IntOrString::String("http".into())), None)), Ok(8080));
        assert_eq!(find_port(&p, &svc_port(Some(IntOrString::String("dns".into())), Some("UDP"))), Ok(53));
        assert!(find_port(&p, &svc_port(Some(IntOrString::String("dns".into())), Some("TCP"))).is_err(), "protocol must match");
        assert_eq!(find_port(&p, &svc_port(Some(IntOrString::String("metrics".into())), None)), Ok(9090), "sidecars count");
        assert!(find_port(&p, &svc_port(Some(IntOrString::String("setup".into())), None)).is_err(), "plain init containers do not");
        assert!(find_port(&p, &svc_port(Some(IntOrString::String("nope".into())), None)).is_err());
    }
}
