//! The local-path provisioner (`ferrokube.io/local-path`), as k3s and kind
//! ship rancher's: for a claim the PV controller handed to it and the node
//! the scheduler chose, a hostPath volume (DirectoryOrCreate, so the kubelet
//! makes the directory when it mounts it) at
//! `<node's ferrokube.io/local-path-root>/<pv name>`, pinned to that node by
//! a required nodeAffinity. A Released volume with reclaim policy Delete is
//! removed by a helper pod on its node (`rm -rf` of the directory, as
//! rancher's teardown script) and then deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::volume::{
    self, ANN_DYNAMICALLY_PROVISIONED, ANN_LOCAL_PATH_ROOT, ANN_SELECTED_NODE, LOCAL_PATH_PROVISIONER,
};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod, PodSpec, Toleration, Volume, VolumeMount,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::persistentvolume::{binder, reclaim};
use crate::controllers::{is_already_exists, is_not_found, timed, Ctx, Result, SyncError};
use crate::events::{EventType, Recorder};
use crate::runtime::{run_workers, Informers, Key, WorkQueue};

pub const NAME: &str = "local-path-provisioner-controller";
/// Where the helper pods run.
pub const HELPER_NAMESPACE: &str = "kube-system";
/// On a helper pod: the volume it cleans up.
pub const HELPER_LABEL: &str = "ferrokube.io/local-path-volume";
pub const HELPER_IMAGE: &str = "busybox";

/// The volume provisioned for a claim: `pvc-<claim uid>`, as upstream's
/// external provisioners name them.
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default())
}

/// Why a claim handed to us cannot be provisioned (the ProvisioningFailed message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProvisionError {
    #[error("configuration error, no node was specified")]
    NoNode,
    #[error("node \"{0}\" not found")]
    NodeNotFound(String),
    #[error("node \"{0}\" has no {ANN_LOCAL_PATH_ROOT} annotation: its kubelet does not serve local-path volumes")]
    NoRoot(String),
}

/// The volume for `claim` of `class` on `node`: the claim's size and modes,
/// a claimRef to it (so the PV controller binds the two), the class's
/// reclaim policy, and the node pinned by hostname.
pub fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: Option<&Node>,
) -> Result<PersistentVolume, ProvisionError> {
    let node_name = claim.annotations().get(ANN_SELECTED_NODE).cloned().ok_or(ProvisionError::NoNode)?;
    let node = node.ok_or_else(|| ProvisionError::NodeNotFound(node_name.clone()))?;
    let root = node
        .annotations()
        .get(ANN_LOCAL_PATH_ROOT)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ProvisionError::NoRoot(node_name.clone()))?;
    let hostname = node.labels().get("kubernetes.io/hostname").cloned().unwrap_or(node_name);
    let name = volume_name(claim);
    let spec = claim.spec.clone().unwrap_or_default();
    let storage = spec.resources.as_ref().and_then(|r| r.requests.clone()).and_then(|mut r| r.remove("storage"));
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some([(ANN_DYNAMICALLY_PROVISIONED.to_string(), LOCAL_PATH_PROVISIONER.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: storage.map(|q| BTreeMap::from([("storage".to_string(), q)])),
            access_modes: spec.access_modes,
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            }),
            persistent_volume_reclaim_policy: Some(class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into())),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: spec.volume_mode,
            mount_options: class.mount_options.clone(),
            host_path: Some(HostPathVolumeSource {
                path: format!("{}/{name}", root.trim_end_matches('/')),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![hostname]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            ..Default::default()
        }),
        status: None,
    })
}

pub fn helper_pod_name(pv: &str) -> String {
    format!("helper-pod-delete-{pv}")
}

/// The pod that removes a volume's directory on its node: the parent
/// directory mounted at /data, `rm -rf /data/<dir>`.
pub fn helper_pod(pv: &PersistentVolume, node: &str) -> Option<Pod> {
    let path = std::path::Path::new(&pv.spec.as_ref()?.host_path.as_ref()?.path).to_path_buf();
    let parent = path.parent()?.display().to_string();
    let dir = path.file_name()?.to_string_lossy().into_owned();
    let name = pv.name_any();
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(helper_pod_name(&name)),
            namespace: Some(HELPER_NAMESPACE.into()),
            labels: Some([(HELPER_LABEL.to_string(), name)].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            restart_policy: Some("Never".into()),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            containers: vec![Container {
                name: "helper-pod".into(),
                image: Some(HELPER_IMAGE.into()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["rm".into(), "-rf".into(), format!("/data/{dir}")]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".into(),
                host_path: Some(HostPathVolumeSource {
                    path: parent,
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// Whether this provisioner must delete the volume now.
pub fn needs_delete(pv: &PersistentVolume) -> bool {
    pv.annotations().get(ANN_DYNAMICALLY_PROVISIONED).map(String::as_str) == Some(LOCAL_PATH_PROVISIONER)
        && reclaim::phase(pv) == "Released"
        && pv.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()) == Some("Delete")
        && pv.metadata.deletion_timestamp.is_none()
}

struct State {
    ctx: Ctx,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    recorder: Recorder,
}

pub fn register(inf: &mut Informers, ctx: &Ctx) {
    let claim_q: WorkQueue<Key> = WorkQueue::default();
    let volume_q: WorkQueue<Key> = WorkQueue::default();
    inf.get::<PersistentVolumeClaim>().enqueue_self(&claim_q);
    inf.get::<PersistentVolume>().enqueue_self(&volume_q);
    {
        let vq = volume_q.clone();
        inf.get::<Pod>().on_change(move |old, new| {
            let Some(p) = new.or(old) else { return };
            if p.metadata.namespace.as_deref() == Some(HELPER_NAMESPACE) {
                if let Some(pv) = p.labels().get(HELPER_LABEL) {
                    vq.add(Key::cluster(pv));
                }
            }
        });
    }
    let state = Arc::new(State {
        ctx: ctx.clone(),
        claims: inf.store(),
        volumes: inf.store(),
        classes: inf.store(),
        nodes: inf.store(),
        pods: inf.store(),
        recorder: Recorder::new(ctx.client.clone(), LOCAL_PATH_PROVISIONER),
    });
    let all_synced = |inf: &mut Informers| {
        vec![
            inf.synced::<PersistentVolumeClaim>(),
            inf.synced::<PersistentVolume>(),
            inf.synced::<StorageClass>(),
            inf.synced::<Node>(),
            inf.synced::<Pod>(),
        ]
    };
    let s = state.clone();
    run_workers("local-path-provisioner-claims", claim_q, 1, ctx.metrics.clone(), all_synced(inf), move |key| {
        let s = s.clone();
        async move { provision_claim(&s, &key).await }
    });
    let s = state;
    run_workers("local-path-provisioner-volumes", volume_q, 1, ctx.metrics.clone(), all_synced(inf), move |key| {
        let s = s.clone();
        async move { delete_volume(&s, &key).await }
    });
}

async fn provision_claim(st: &State, key: &Key) -> Result<Option<Duration>> {
    let Some(claim) = st.claims.get(&ObjectRef::new(&key.name).within(key.ns())) else {
        return Ok(None);
    };
    let unbound = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_none_or(str::is_empty);
    if claim.metadata.deletion_timestamp.is_some() || !unbound || binder::provisioner_of(&claim) != Some(LOCAL_PATH_PROVISIONER) {
        return Ok(None);
    }
    let Some(class) = st.classes.get(&ObjectRef::new(&volume::claim_class(&claim))) else {
        return Ok(None);
    };
    if class.provisioner != LOCAL_PATH_PROVISIONER {
        return Ok(None);
    }
    let name = volume_name(&claim);
    if st.volumes.get(&ObjectRef::new(&name)).is_some() {
        return Ok(None);
    }
    let node = claim.annotations().get(ANN_SELECTED_NODE).and_then(|n| st.nodes.get(&ObjectRef::new(n)));
    let pv = match provision(&claim, &class, node.as_deref()) {
        Ok(pv) => pv,
        Err(e) => {
            st.recorder.record(claim.as_ref(), EventType::Warning, "ProvisioningFailed", &e.to_string());
            // A node's annotation may come later; retry with back-off.
            return Err(SyncError::Invalid(e.to_string()));
        }
    };
    st.recorder.record(
        claim.as_ref(),
        EventType::Normal,
        "Provisioning",
        &format!("External provisioner is provisioning volume for claim \"{}/{}\"", key.ns(), key.name),
    );
    let api: Api<PersistentVolume> = Api::all(st.ctx.client.clone());
    match timed(api.create(&PostParams::default(), &pv)).await? {
        Ok(_) => st.recorder.record(
            claim.as_ref(),
            EventType::Normal,
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {name}"),
        ),
        Err(e) if is_already_exists(&e) => {}
        Err(e) => {
            st.recorder.record(claim.as_ref(), EventType::Warning, "ProvisioningFailed", &e.to_string());
            return Err(e.into());
        }
    }
    Ok(None)
}

async fn delete_volume(st: &State, key: &Key) -> Result<Option<Duration>> {
    let pods: Api<Pod> = Api::namespaced(st.ctx.client.clone(), HELPER_NAMESPACE);
    let helper_name = helper_pod_name(&key.name);
    let helper = st.pods.get(&ObjectRef::new(&helper_name).within(HELPER_NAMESPACE));
    let Some(pv) = st.volumes.get(&ObjectRef::new(&key.name)).filter(|pv| needs_delete(pv)) else {
        // Gone or not ours to delete: a helper left over has done its job.
        if helper.is_some() && st.volumes.get(&ObjectRef::new(&key.name)).is_none() {
            delete_ignoring_missing(&pods, &helper_name).await?;
        }
        return Ok(None);
    };
    let node = volume::pinned_node(&pv).filter(|n| st.nodes.get(&ObjectRef::new(n)).is_some());
    let done = match (&node, &helper) {
        // The node is gone, and its disk with it: nothing to clean.
        (None, _) => true,
        (Some(node), None) => {
            let Some(pod) = helper_pod(&pv, node) else { return delete_pv(st, &pv).await };
            match timed(pods.create(&PostParams::default(), &pod)).await? {
                Ok(_) => {}
                Err(e) if is_already_exists(&e) => {}
                Err(e) => return Err(e.into()),
            }
            false
        }
        (Some(_), Some(p)) => match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => true,
            Some("Failed") => {
                st.recorder.record(
                    pv.as_ref(),
                    EventType::Warning,
                    "VolumeFailedDelete",
                    &format!("failed to delete volume {}: helper pod {helper_name} failed", key.name),
                );
                delete_ignoring_missing(&pods, &helper_name).await?;
                return Err(SyncError::Invalid(format!("helper pod {helper_name} failed")));
            }
            _ => false,
        },
    };
    if done {
        delete_pv(st, &pv).await?;
        if helper.is_some() {
            delete_ignoring_missing(&pods, &helper_name).await?;
        }
    }
    Ok(None)
}

async fn delete_pv(st: &State, pv: &PersistentVolume) -> Result<Option<Duration>> {
    let api: Api<PersistentVolume> = Api::all(st.ctx.client.clone());
    delete_ignoring_missing(&api, &pv.name_any()).await?;
    Ok(None)
}

async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match timed(api.delete(name, &DeleteParams::default())).await? {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim() -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "www-web-0", "namespace": "default", "uid": "1234",
            "annotations": {ANN_SELECTED_NODE: "node-1"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "volumeMode": "Filesystem",
                "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap()
    }

    fn class() -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "standard"}, "provisioner": LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap()
    }

    fn node(root: Option<&str>) -> Node {
        let ann = root.map(|r| json!({ANN_LOCAL_PATH_ROOT: r})).unwrap_or(json!({}));
        serde_json::from_value(json!({"metadata": {"name": "node-1", "annotations": ann,
            "labels": {"kubernetes.io/hostname": "node-1"}}}))
        .unwrap()
    }

    #[test]
    fn a_volume_under_the_nodes_root_pinned_to_the_node() {
        let pv = provision(&claim(), &class(), Some(&node(Some("/var/lib/kubelet/local-path/")))).unwrap();
        assert_eq!(pv.name_any(), "pvc-1234");
        let spec = pv.spec.as_ref().unwrap();
        let hp = spec.host_path.as_ref().unwrap();
        assert_eq!(hp.path, "/var/lib/kubelet/local-path/pvc-1234");
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(volume::pinned_node(&pv).as_deref(), Some("node-1"));
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");
        let r = spec.claim_ref.as_ref().unwrap();
        assert_eq!((r.name.as_deref(), r.uid.as_deref()), (Some("www-web-0"), Some("1234")));
        assert!(apimachinery::volume::is_volume_bound_to_claim(&pv, &claim()));
        assert_eq!(pv.annotations()[ANN_DYNAMICALLY_PROVISIONED], LOCAL_PATH_PROVISIONER);
    }

    #[test]
    fn no_node_or_no_root_is_a_provisioning_failure() {
        let mut c = claim();
        c.metadata.annotations = None;
        assert_eq!(provision(&c, &class(), None), Err(ProvisionError::NoNode));
        assert_eq!(provision(&claim(), &class(), None), Err(ProvisionError::NodeNotFound("node-1".into())));
        assert_eq!(provision(&claim(), &class(), Some(&node(None))), Err(ProvisionError::NoRoot("node-1".into())));
    }

    #[test]
    fn released_volumes_are_removed_by_a_helper_pod_on_their_node() {
        let mut pv = provision(&claim(), &class(), Some(&node(Some("/r/local-path")))).unwrap();
        assert!(!needs_delete(&pv));
        pv.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        assert!(needs_delete(&pv));
        let pod = helper_pod(&pv, "node-1").unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.volumes.unwrap()[0].host_path.as_ref().unwrap().path, "/r/local-path");
        assert_eq!(spec.containers[0].command.as_ref().unwrap().join(" "), "rm -rf /data/pvc-1234");
        // Retain keeps the data.
        pv.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(!needs_delete(&pv));
    }
}
