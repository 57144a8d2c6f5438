//! NodePorts: a hostPort may be used once per node, protocol and address
//! (0.0.0.0 conflicts with every address).

use crate::framework::{
    host_ports, CycleState, Filter, HostPort, NodeInfo, Plugin, PodInfo, PreFilter, Snapshot, Status,
};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

struct WantedPorts(Vec<HostPort>);

impl PreFilter for NodePorts {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Status {
        let ports = host_ports(&pod.pod);
        if ports.is_empty() {
            return Status::skip();
        }
        state.write(NAME, WantedPorts(ports));
        Status::success()
    }
}

fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

impl Filter for NodePorts {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let owned;
        let wanted = match state.read::<WantedPorts>(NAME) {
            Some(w) => &w.0,
            None => {
                owned = host_ports(&pod.pod);
                &owned
            }
        };
        if wanted.iter().any(|w| node.used_ports.iter().any(|u| conflicts(w, u))) {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn with_host_port(
        mut p: k8s_openapi::api::core::v1::Pod,
        port: i32,
        ip: Option<&str>,
    ) -> k8s_openapi::api::core::v1::Pod {
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(port),
            host_ip: ip.map(String::from),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn host_port_conflicts() {
        let used = with_host_port(on_node(pod("a", "0", "0"), "n1"), 8080, None);
        let info = node_info(node("n1", "1", "1Gi", "10"), vec![used]);
        let mut st = CycleState::default();
        let same = pod_info(with_host_port(pod("b", "0", "0"), 8080, Some("127.0.0.1")));
        NodePorts.pre_filter(&mut st, &same, &Snapshot::default());
        assert_eq!(NodePorts.filter(&st, &same, &info), Status::unschedulable(REASON));
        let other = pod_info(with_host_port(pod("c", "0", "0"), 8081, None));
        let mut st = CycleState::default();
        NodePorts.pre_filter(&mut st, &other, &Snapshot::default());
        assert!(NodePorts.filter(&st, &other, &info).is_success());
    }
}
