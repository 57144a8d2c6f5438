//! The PV controller and the local-path provisioner against a real apiserver
//! and etcd (no scheduler, no kubelet: the test writes the selected node as
//! the scheduler would, and the helper pod's phase as a kubelet would).

mod common;

use common::{set_pod_status, Env, TIMEOUT};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn event(env: &Env, name: &str, reason: &'static str) -> Event {
    let api: Api<Event> = env.api("default");
    testkit::wait_for_or(TIMEOUT, &format!("{reason} about {name}"), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller-manager log:\n{}", env.cm.log_tail(4000)))
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> Option<&str> {
    c.status.as_ref()?.phase.as_deref()
}

#[tokio::test]
async fn local_path_claims_wait_for_a_node_then_bind_and_their_released_volumes_are_cleaned_and_deleted() {
    let env = Env::start(&["--controllers", "persistentvolume-binder,local-path-provisioner"]).await;
    let pp = PostParams::default();
    let class: StorageClass = serde_json::from_value(json!({"metadata": {"name": "local"},
        "provisioner": "ferrokube.io/local-path", "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}))
    .unwrap();
    Api::<StorageClass>::all(env.client.clone()).create(&pp, &class).await.unwrap();
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-a",
        "labels": {"kubernetes.io/hostname": "node-a"},
        "annotations": {"ferrokube.io/local-path-root": "/var/lib/fk/local-path"}}}))
    .unwrap();
    Api::<Node>::all(env.client.clone()).create(&pp, &node).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = env.api("default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local", "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    let uid = claims.create(&pp, &claim).await.unwrap().metadata.uid.unwrap();
    let ev = event(&env, "data", "WaitForFirstConsumer").await;
    assert_eq!(ev.message.as_deref(), Some("waiting for first consumer to be created before binding"));

    // The scheduler's choice.
    let patch = json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node-a"}}});
    claims.patch("data", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let bound = testkit::wait_for_or(TIMEOUT, "claim Bound", || async {
        claims.get("data").await.ok().filter(|c| phase_of_claim(c) == Some("Bound"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let pv_name = format!("pvc-{uid}");
    assert_eq!(bound.spec.as_ref().unwrap().volume_name.as_deref(), Some(pv_name.as_str()));
    let ann = bound.metadata.annotations.unwrap();
    assert_eq!(ann["volume.kubernetes.io/storage-provisioner"], "ferrokube.io/local-path");
    assert_eq!(ann["volume.beta.kubernetes.io/storage-provisioner"], "ferrokube.io/local-path");
    assert_eq!(ann["pv.kubernetes.io/bind-completed"], "yes");
    event(&env, "data", "ProvisioningSucceeded").await;
    let volumes: Api<PersistentVolume> = Api::all(env.client.clone());
    let pv = volumes.get(&pv_name).await.unwrap();
    assert_eq!(pv.status.as_ref().unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path, format!("/var/lib/fk/local-path/{pv_name}"));

    // Reclaim Delete: Released, a helper pod on the node, then the volume goes.
    claims.delete("data", &DeleteParams::default()).await.unwrap();
    let helpers: Api<Pod> = env.api("kube-system");
    let helper = format!("helper-pod-delete-{pv_name}");
    let pod = testkit::wait_for_or(TIMEOUT, "the helper pod", || async { helpers.get_opt(&helper).await.ok().flatten() })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    assert_eq!(spec.containers[0].command.as_ref().unwrap().join(" "), format!("rm -rf /data/{pv_name}"));
    assert_eq!(volumes.get(&pv_name).await.unwrap().status.unwrap().phase.as_deref(), Some("Released"));
    set_pod_status(&helpers, &helper, "Succeeded", false, "").await;
    testkit::wait_for_or(TIMEOUT, "the volume and the helper pod deleted", || async {
        let pv_gone = matches!(volumes.get_opt(&pv_name).await, Ok(None));
        let pod_gone = matches!(helpers.get_opt(&helper).await, Ok(None));
        (pv_gone && pod_gone).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

#[tokio::test]
async fn a_bound_claim_whose_volume_is_deleted_is_lost() {
    let env = Env::start(&["--controllers", "persistentvolume-binder"]).await;
    let pp = PostParams::default();
    let volumes: Api<PersistentVolume> = Api::all(env.client.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "static"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": "/tmp/static"}}}))
    .unwrap();
    volumes.create(&pp, &pv).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = env.api("default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "c"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    claims.create(&pp, &claim).await.unwrap();
    testkit::wait_for_or(TIMEOUT, "claim Bound", || async {
        claims.get("c").await.ok().filter(|c| phase_of_claim(c) == Some("Bound"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    volumes.delete("static", &DeleteParams::default()).await.unwrap();
    let ev = event(&env, "c", "ClaimLost").await;
    assert_eq!(ev.message.as_deref(), Some("Bound claim has lost its PersistentVolume. Data on the volume is lost!"));
    testkit::wait_for_or(TIMEOUT, "claim Lost", || async {
        claims.get("c").await.ok().filter(|c| phase_of_claim(c) == Some("Lost"))
    })
    .await
    .unwrap();
}
