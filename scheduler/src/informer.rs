//! Watches on pods and nodes feeding the scheduler's event handlers. Both
//! go through plain watchers: the scheduler cache is their store, and a
//! second full copy of every object (a reflector Store) would double the
//! scheduler's memory. What the scheduler never reads (managedFields, the
//! last-applied annotation) is dropped on arrival.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Node, NodeStatus, Pod, PodSpec, PodStatus, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::scheduler::Scheduler;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Strips the bookkeeping no plugin reads: on a 5,000-node cluster with
/// server-side apply, managedFields alone can outweigh the rest.
pub fn strip_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Keeps only what scheduling reads from a pod. A bound pod stays in the
/// cache for its whole life, so its env, probes, volumes and container
/// statuses would otherwise make up most of the scheduler's memory.
pub fn slim_pod(pod: &mut Pod) {
    strip_metadata(&mut pod.metadata);
    let meta = &mut pod.metadata;
    meta.annotations = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            node_selector: spec.node_selector,
            affinity: spec.affinity,
            tolerations: spec.tolerations,
            topology_spread_constraints: spec.topology_spread_constraints,
            priority: spec.priority,
            preemption_policy: spec.preemption_policy,
            scheduler_name: spec.scheduler_name,
            overhead: spec.overhead,
            host_network: spec.host_network,
            // VolumeBinding reads the pod's claims.
            volumes: spec
                .volumes
                .map(|vs| {
                    vs.into_iter()
                        .filter(|v| v.persistent_volume_claim.is_some())
                        .map(|v| Volume {
                            name: v.name,
                            persistent_volume_claim: v.persistent_volume_claim,
                            ..Default::default()
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|vs| !vs.is_empty()),
            containers: spec.containers.into_iter().map(slim_container).collect(),
            init_containers: spec.init_containers.map(|c| c.into_iter().map(slim_container).collect()),
            ..Default::default()
        });
    }
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            phase: status.phase,
            nominated_node_name: status.nominated_node_name,
            // A pending pod's PodScheduled condition spares rewriting the same outcome.
            conditions: if bound { None } else { status.conditions },
            ..Default::default()
        });
    }
}

/// What the fit, ports and image plugins read from a container.
fn slim_container(c: Container) -> Container {
    Container {
        name: c.name,
        image: c.image,
        ports: c.ports,
        resources: c.resources,
        restart_policy: c.restart_policy,
        ..Default::default()
    }
}

/// Keeps what scheduling reads from a node: labels, spec, allocatable,
/// conditions and images; addresses, nodeInfo and volumes go.
pub fn slim_node(node: &mut Node) {
    strip_metadata(&mut node.metadata);
    node.metadata.annotations = None;
    if let Some(status) = node.status.take() {
        node.status = Some(NodeStatus {
            // Capacity stands in only where allocatable is absent.
            capacity: if status.allocatable.is_some() { None } else { status.capacity },
            allocatable: status.allocatable,
            conditions: status.conditions,
            images: status.images,
            ..Default::default()
        });
    }
}

/// Starts the pod and node watches, and the claim, volume and class watches
/// VolumeBinding reads; they run until the returned tasks are aborted.
pub fn start(client: kube::Client, scheduler: Arc<Scheduler>) -> Vec<tokio::task::JoinHandle<()>> {
    let s = scheduler.clone();
    let mut tasks = crate::plugins::volume_binding::start(client.clone(), move || s.on_storage_change());
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);

    let s = scheduler.clone();
    let pod_task = tokio::spawn(async move {
        let stream = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .modify(slim_pod);
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => s.pods_relist_started(),
                Ok(Event::InitApply(p)) | Ok(Event::Apply(p)) => s.on_pod_apply(p),
                Ok(Event::InitDone) => s.pods_relist_done(),
                Ok(Event::Delete(p)) => s.on_pod_delete(&p),
                Err(e) => tracing::warn!(error = %e, "pod watch"),
            }
        }
    });
    let s = scheduler;
    let node_task = tokio::spawn(async move {
        let stream = watcher::watcher(nodes, watcher::Config::default())
            .default_backoff()
            .modify(slim_node);
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => s.nodes_relist_started(),
                Ok(Event::InitApply(n)) | Ok(Event::Apply(n)) => s.on_node_apply(n),
                Ok(Event::InitDone) => s.nodes_relist_done(),
                Ok(Event::Delete(n)) => s.on_node_delete(&n),
                Err(e) => tracing::warn!(error = %e, "node watch"),
            }
        }
    });
    tasks.extend([pod_task, node_task]);
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_is_stripped_and_the_rest_kept() {
        let mut meta = ObjectMeta {
            name: Some("p".into()),
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{}".to_string()),
                    ("keep".to_string(), "me".to_string()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![Default::default()]),
            ..Default::default()
        };
        strip_metadata(&mut meta);
        assert!(meta.managed_fields.is_none());
        assert_eq!(meta.annotations.unwrap().keys().collect::<Vec<_>>(), vec!["keep"]);
    }

    /// A bound pod drops its containers but keeps what was derived from them.
    #[test]
    fn bound_pod_info_keeps_requests_and_host_ports() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "priority": 3,
                     "tolerations": [{"key": "k", "operator": "Exists"}],
                     "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                                     "resources": {"requests": {"cpu": "250m"}}}]}
        }))
        .unwrap();
        let full = crate::framework::PodInfo::new(Arc::new(pod.clone()));
        let bound = crate::framework::PodInfo::bound(pod);
        assert_eq!(format!("{:?}", full.requests), format!("{:?}", bound.requests));
        assert_eq!(bound.host_ports, vec![("TCP".to_string(), "0.0.0.0".to_string(), 8080)]);
        assert_eq!(bound.priority, 3);
        let spec = bound.pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers.is_empty() && spec.tolerations.is_none());
        assert_eq!(bound.pod.metadata.labels, full.pod.metadata.labels);
        // On a node, its ports and requests count and are released again.
        let mut node = crate::framework::NodeInfo::new(Arc::new(k8s_openapi::api::core::v1::Node::default()));
        node.add_pod(Arc::new(bound));
        assert_eq!(node.used_ports.len(), 1);
        assert_eq!(node.requested.milli_cpu, 250);
        assert!(node.remove_pod("ns/p"));
        assert!(node.used_ports.is_empty());
        assert_eq!(node.requested.milli_cpu, 0);
    }

    /// Slimming must not change anything a plugin derives from the pod.
    #[test]
    fn slim_pod_keeps_what_scheduling_reads() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"},
                         "annotations": {"x": "y"}, "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicaSet", "name": "r", "uid": "o"}]},
            "spec": {
                "nodeName": "n1", "priority": 7, "schedulerName": "binpack",
                "nodeSelector": {"zone": "a"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "overhead": {"cpu": "50m"},
                "volumes": [{"name": "v", "emptyDir": {}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "kubernetes.io/hostname"}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
                "initContainers": [
                    {"name": "side", "image": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "init", "image": "i", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep"], "env": [{"name": "A", "value": "B"}],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1", "nominatedNodeName": "n1",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        let before = crate::framework::PodInfo::new(Arc::new(pod.clone()));
        let mut slim = pod.clone();
        slim_pod(&mut slim);
        let after = crate::framework::PodInfo::new(Arc::new(slim.clone()));
        assert_eq!(format!("{:?}", before.requests), format!("{:?}", after.requests));
        assert_eq!(format!("{:?}", before.non_zero), format!("{:?}", after.non_zero));
        assert_eq!(before.priority, after.priority);
        assert_eq!(before.has_required_anti_affinity, after.has_required_anti_affinity);
        assert_eq!(crate::framework::host_ports(&pod), crate::framework::host_ports(&slim));
        let (s, full) = (slim.spec.as_ref().unwrap(), pod.spec.as_ref().unwrap());
        assert_eq!(s.tolerations, full.tolerations);
        assert_eq!(s.node_selector, full.node_selector);
        assert_eq!(s.topology_spread_constraints, full.topology_spread_constraints);
        assert_eq!(s.scheduler_name, full.scheduler_name);
        assert_eq!(slim.metadata.labels, pod.metadata.labels);
        assert_eq!(slim.metadata.uid, pod.metadata.uid);
        assert_eq!(slim.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(slim.status.as_ref().unwrap().nominated_node_name.as_deref(), Some("n1"));
        // What no plugin reads is gone (VolumeBinding reads claim volumes only).
        assert!(s.volumes.is_none() && s.containers[0].env.is_none() && s.containers[0].liveness_probe.is_none());
        assert!(slim.status.as_ref().unwrap().container_statuses.is_none());
        assert!(slim.metadata.annotations.is_none() && slim.metadata.owner_references.is_none());
    }
}
