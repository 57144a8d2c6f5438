//! Pod and node fixtures built from k8s-openapi types, for unit tests and
//! benches. Nothing here is used by the scheduler itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::framework::{NodeInfo, PodInfo};

pub fn container(name: &str, cpu: &str, memory: &str) -> Container {
    let mut requests = BTreeMap::new();
    if cpu != "0" {
        requests.insert("cpu".to_string(), Quantity(cpu.to_string()));
    }
    if memory != "0" {
        requests.insert("memory".to_string(), Quantity(memory.to_string()));
    }
    Container {
        name: name.to_string(),
        image: Some("busybox".into()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn pod_with(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            uid: Some("uid-p".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            scheduler_name: Some("default-scheduler".into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// A pod named `name` with one container requesting cpu/memory.
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let mut p = pod_with(vec![container("c", cpu, memory)]);
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p
}

pub fn with_labels(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
    p.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    p
}

pub fn on_node(mut p: Pod, node: &str) -> Pod {
    p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
    p
}

pub fn with_priority(mut p: Pod, priority: i32) -> Pod {
    p.spec.get_or_insert_with(Default::default).priority = Some(priority);
    p
}

/// A Ready node with the hostname label and the given allocatable.
pub fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Node {
    let alloc: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
        ("pods".to_string(), Quantity(pods.into())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(alloc.clone()),
            capacity: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn with_node_labels(mut n: Node, labels: &[(&str, &str)]) -> Node {
    let l = n.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    n
}

pub fn with_taint(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
    let spec = n.spec.get_or_insert_with(Default::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: effect.into(),
        ..Default::default()
    });
    n
}

pub fn pod_info(p: Pod) -> PodInfo {
    PodInfo::new(Arc::new(p))
}

/// A NodeInfo with the given pods already counted.
pub fn node_info(n: Node, pods: Vec<Pod>) -> NodeInfo {
    let mut info = NodeInfo::new(Arc::new(n));
    for p in pods {
        info.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
    }
    info
}
