//! Persistent storage end to end: the default StorageClass and its local-path
//! provisioner behind a StatefulSet's claims, static volumes bound by the PV
//! controller, and the answers to bad storage input.

use super::*;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

const BIND: Duration = Duration::from_secs(90);

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn volume_phase(v: &PersistentVolume) -> &str {
    v.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

async fn wait_claim(api: &Api<PersistentVolumeClaim>, name: &str, phase: &'static str) -> PersistentVolumeClaim {
    wait_for_or(BIND, &format!("claim {name} {phase}"), || async move {
        api.get_opt(name).await.ok().flatten().filter(|c| claim_phase(c) == phase)
    })
    .await
    .unwrap()
}

async fn wait_volume(api: &Api<PersistentVolume>, name: &str, phase: &'static str) -> PersistentVolume {
    wait_for_or(BIND, &format!("volume {name} {phase}"), || async move {
        api.get_opt(name).await.ok().flatten().filter(|v| volume_phase(v) == phase)
    })
    .await
    .unwrap()
}

/// The first event about `name` with `reason`, waited for.
async fn wait_event(ns: &TestNs<'_>, name: &str, reason: &'static str) -> Event {
    let api: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    wait_for_or(BIND, &format!("a {reason} event about {name}"), || {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
            })
        }
    })
    .await
    .unwrap()
}

const STATEFUL_SET: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 2
  serviceName: web
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
        volumeMounts:
        - name: www
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 10Mi
"#;

/// Issue 11's storage scenario: a StatefulSet of 2 with a claim template gets
/// claims www-web-0 and www-web-1 of the default class `standard`, each
/// provisioned on its pod's node under that kubelet's root dir; a file
/// written through the claim is read back by the pod recreated after a
/// delete; deleting a claim of the Delete class removes its volume and the
/// directory.
#[tokio::test]
async fn statefulset_with_claim_templates_keeps_data_across_pod_deletion_on_default_class_volumes() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "stsdata").await;
    let pods = ns.pods();
    ns.apply_yaml(STATEFUL_SET).await;
    let running = |p: &Pod| is_active_running(p);
    for i in 0..2 {
        let name = format!("web-{i}");
        wait_pod(&pods, &name, POD_START + BIND, "Running with its claim", running).await;
        ns.kubectl_ok(&["exec", &name, "--", "sh", "-c", &format!("echo hello from {name} > /data/f")]).await;
    }
    let out = ns.kubectl_ok(&["get", "pvc"]).await;
    let rows = table::parse(&out);
    let names: BTreeSet<&str> = rows.iter().map(|r| table::cell(r, "NAME")).collect();
    assert_eq!(names, BTreeSet::from(["www-web-0", "www-web-1"]), "{out}");
    for r in &rows {
        assert_eq!(table::cell(r, "STATUS"), "Bound", "{out}");
        assert_eq!(table::cell(r, "STORAGECLASS"), "standard", "{out}");
        assert_eq!(table::cell(r, "CAPACITY"), "10Mi", "{out}");
    }

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    let volumes: Api<PersistentVolume> = Api::all(ns.client.clone());
    let first = pods.get("web-0").await.unwrap();
    let node = node_name(&first).to_string();
    let claim = claims.get("www-web-0").await.unwrap();
    let ann = claim.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get("volume.kubernetes.io/selected-node"), Some(&node), "the scheduler chose the node");
    assert_eq!(ann.get("pv.kubernetes.io/bind-completed").map(String::as_str), Some("yes"));
    let pv_name = claim.spec.as_ref().unwrap().volume_name.clone().unwrap();
    let pv = volumes.get(&pv_name).await.unwrap();
    let term = &pv.spec.as_ref().unwrap().node_affinity.as_ref().unwrap().required.as_ref().unwrap().node_selector_terms[0];
    let expr = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!((expr.key.as_str(), expr.values.clone()), ("kubernetes.io/hostname", Some(vec![node.clone()])), "pinned to its node");
    let dir = std::path::PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path);
    let root = &cluster.node(&node).unwrap().root_dir;
    assert_eq!(dir, root.canonicalize().unwrap().join("local-path").join(&pv_name), "under the kubelet's root dir");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "hello from web-0\n");

    ns.kubectl_ok(&["delete", "pod", "web-0", "--wait=true", "--timeout=120s"]).await;
    let old_uid = uid(&first);
    let again = wait_pod(&pods, "web-0", POD_START, "recreated and Running", |p| {
        is_active_running(p) && uid(p) != old_uid
    })
    .await;
    assert_eq!(node_name(&again), node, "the claim's volume keeps the pod on its node");
    let data = ns.kubectl_ok(&["exec", "web-0", "--", "cat", "/data/f"]).await;
    assert_eq!(data, "hello from web-0\n");

    // Reclaim policy Delete: the claim goes, then its volume and its directory.
    ns.kubectl_ok(&["delete", "statefulset", "web", "--wait=true"]).await;
    wait_for_or(POD_START, "the set's pods gone", || async {
        pods.list(&ListParams::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await
    .unwrap();
    ns.kubectl_ok(&["delete", "pvc", "www-web-0", "--wait=true"]).await;
    wait_for_or(POD_START + BIND, "the released volume deleted", || async {
        matches!(volumes.get_opt(&pv_name).await, Ok(None)).then_some(())
    })
    .await
    .unwrap();
    assert!(!dir.exists(), "{} was removed by the helper pod", dir.display());
    let claim = claims.get("www-web-1").await.unwrap();
    assert_eq!(claim_phase(&claim), "Bound", "the other ordinal's claim is kept");
}

fn host_path_volume(name: &str, ns: &str, size: &str, claim_ref: Option<&str>) -> PersistentVolume {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"e2e-ns": ns}},
        "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
            "hostPath": {"path": format!("/tmp/{name}")},
            "claimRef": claim_ref.map(|c| serde_json::json!({"namespace": ns, "name": c})),
        }
    }))
    .unwrap()
}

fn manual_claim(name: &str, size: &str) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
            "resources": {"requests": {"storage": size}}}
    }))
    .unwrap()
}

/// "PersistentVolumes(Claims), lifecycle" ([sig-storage] PersistentVolumes
/// CSI Conformance should run through the lifecycle of a PV and a PVC): PVs
/// and PVCs are created, listed by label, patched and deleted; the PV
/// controller binds a claim to the volume pre-bound to it by claimRef and
/// another to the smallest matching volume, and a Retain volume whose claim
/// is deleted is Released.
#[tokio::test]
async fn conformance_persistent_volumes_lifecycle_static_binding_and_retain_leaves_released() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "pvlife").await;
    let volumes: Api<PersistentVolume> = Api::all(ns.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    let pp = PostParams::default();
    let (pre, small, big) = (format!("{}-pre", ns.name), format!("{}-small", ns.name), format!("{}-big", ns.name));
    volumes.create(&pp, &host_path_volume(&pre, &ns.name, "1Gi", Some("pinned"))).await.unwrap();
    volumes.create(&pp, &host_path_volume(&small, &ns.name, "1Gi", None)).await.unwrap();
    volumes.create(&pp, &host_path_volume(&big, &ns.name, "5Gi", None)).await.unwrap();
    let listed = volumes.list(&ListParams::default().labels(&format!("e2e-ns={}", ns.name))).await.unwrap();
    assert_eq!(listed.items.len(), 3);
    claims.create(&pp, &manual_claim("pinned", "100Mi")).await.unwrap();
    claims.create(&pp, &manual_claim("matched", "500Mi")).await.unwrap();

    let pinned = wait_claim(&claims, "pinned", "Bound").await;
    assert_eq!(pinned.spec.as_ref().unwrap().volume_name.as_deref(), Some(pre.as_str()), "the claimRef pre-binding wins");
    let matched = wait_claim(&claims, "matched", "Bound").await;
    assert_eq!(matched.spec.as_ref().unwrap().volume_name.as_deref(), Some(small.as_str()), "the smallest volume that fits");
    let ann = matched.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get("pv.kubernetes.io/bind-completed").map(String::as_str), Some("yes"));
    assert_eq!(ann.get("pv.kubernetes.io/bound-by-controller").map(String::as_str), Some("yes"));
    assert_eq!(matched.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"], Quantity("1Gi".into()));
    wait_volume(&volumes, &small, "Bound").await;
    let pv = wait_volume(&volumes, &pre, "Bound").await;
    assert_eq!(pv.spec.unwrap().claim_ref.unwrap().uid, pinned.metadata.uid, "the controller completed the claimRef");
    wait_volume(&volumes, &big, "Available").await;

    let out = ns.kubectl_ok(&["get", "pv", &small]).await;
    let row = &table::parse(&out)[0];
    assert_eq!(table::cell(row, "STATUS"), "Bound", "{out}");
    assert_eq!(table::cell(row, "CLAIM"), format!("{}/matched", ns.name), "{out}");
    assert_eq!(table::cell(row, "RECLAIM POLICY"), "Retain", "{out}");

    // Patching labels on both, as the conformance test does.
    let patch = serde_json::json!({"metadata": {"labels": {"patched": "yes"}}});
    volumes.patch(&small, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    claims.patch("matched", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let listed = volumes.list(&ListParams::default().labels("patched=yes")).await.unwrap();
    assert!(listed.items.iter().any(|v| v.metadata.name.as_deref() == Some(small.as_str())));

    // Retain: the claim goes, the volume stays Released with its data and claimRef.
    claims.delete("matched", &DeleteParams::default()).await.unwrap();
    let released = wait_volume(&volumes, &small, "Released").await;
    assert_eq!(released.spec.unwrap().claim_ref.unwrap().name.as_deref(), Some("matched"));
    let out = ns.kubectl_ok(&["get", "pv", &small]).await;
    assert_eq!(table::cell(&table::parse(&out)[0], "STATUS"), "Released", "{out}");

    claims.delete("pinned", &DeleteParams::default()).await.unwrap();
    for v in [&pre, &small, &big] {
        volumes.delete(v, &DeleteParams::default()).await.unwrap();
    }
}

/// Bad storage input, as upstream answers it: a claim for a class that does
/// not exist stays Pending with ProvisioningFailed, a claim with no class
/// and no volume with FailedBinding, a pod of a missing claim is
/// unschedulable, and invalid volumes, claims and claim-template mounts get
/// 422 with their field paths.
#[tokio::test]
async fn claims_for_missing_classes_stay_pending_and_bad_volumes_and_claims_get_422_with_field_paths() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "pvbad").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    let pp = PostParams::default();
    let mut nope = manual_claim("nope", "1Gi");
    nope.spec.as_mut().unwrap().storage_class_name = Some("does-not-exist".into());
    claims.create(&pp, &nope).await.unwrap();
    let ev = wait_event(&ns, "nope", "ProvisioningFailed").await;
    assert_eq!(ev.message.as_deref(), Some("storageclass.storage.k8s.io \"does-not-exist\" not found"));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let mut none = manual_claim("no-class", "1Gi");
    none.spec.as_mut().unwrap().storage_class_name = Some(String::new());
    claims.create(&pp, &none).await.unwrap();
    let ev = wait_event(&ns, "no-class", "FailedBinding").await;
    assert_eq!(
        ev.message.as_deref(),
        Some("no persistent volumes available for this claim and no storage class is set")
    );
    for name in ["nope", "no-class"] {
        assert_eq!(claim_phase(&claims.get(name).await.unwrap()), "Pending");
    }
    let described = ns.kubectl_ok(&["describe", "pvc", "nope"]).await;
    assert!(described.contains("ProvisioningFailed"), "{described}");

    // A pod whose claim does not exist is unschedulable, in upstream's words.
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\nspec:\n  containers:\n  - name: c\n    image: busybox\n    volumeMounts:\n    - name: d\n      mountPath: /d\n  volumes:\n  - name: d\n    persistentVolumeClaim:\n      claimName: ghost\n").await;
    let ev = wait_event(&ns, "orphan", "FailedScheduling").await;
    assert!(
        ev.message.as_deref().unwrap_or("").contains("persistentvolumeclaim \"ghost\" not found"),
        "{ev:?}"
    );

    // 422s with field paths.
    let volumes: Api<PersistentVolume> = Api::all(ns.client.clone());
    let mut bad = host_path_volume(&format!("{}-bad", ns.name), &ns.name, "1Gi", None);
    bad.spec.as_mut().unwrap().capacity = Some(BTreeMap::from([("storage".to_string(), Quantity("lots".into()))]));
    // A quantity that does not parse fails decoding (400), as upstream's
    // typed decoding; one that parses but is not positive fails validation (422).
    match volumes.create(&pp, &bad).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}"),
        other => panic!("an unparsable capacity must be refused: {other:?}"),
    }
    bad.spec.as_mut().unwrap().capacity = Some(BTreeMap::from([("storage".to_string(), Quantity("0".into()))]));
    match volumes.create(&pp, &bad).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}"),
        other => panic!("a zero capacity must be refused: {other:?}"),
    }
    let refused = |out: std::process::Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, yaml: String| {
        let f = dir.path().join(name);
        std::fs::write(&f, yaml).unwrap();
        f.display().to_string()
    };
    let pv = write("pv.yaml", format!("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {}-bad\nspec:\n  capacity:\n    storage: \"0\"\n  accessModes: [ReadWriteOnce]\n  hostPath:\n    path: /tmp/x\n", ns.name));
    let err = refused(ns.kubectl(&["create", "-f", &pv]).await);
    assert!(err.contains("is invalid") && err.contains("spec.capacity[storage]: Invalid value: \"0\": must be greater than zero"), "{err}");
    let pvc = write("pvc.yaml", "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: modes\nspec:\n  accessModes: [ReadWriteSometimes]\n  resources:\n    requests:\n      storage: 1Gi\n".into());
    let err = refused(ns.kubectl(&["create", "-f", &pvc]).await);
    assert!(err.contains("spec.accessModes: Unsupported value: \"ReadWriteSometimes\""), "{err}");
    // A mount that names neither a volume nor a claim template is still refused.
    let sts = write("sts.yaml", STATEFUL_SET.replace("- name: www\n          mountPath", "- name: wwx\n          mountPath"));
    let err = refused(ns.kubectl(&["create", "-f", &sts]).await);
    assert!(err.contains("spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"wwx\""), "{err}");
}
