//! The kinds served without a controller of their own (issue 11's first step): each is
//! created, defaulted, printed and refused on bad input as upstream does, never with a 5xx.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::Harness;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn assert_invalid(r: &support::Reply, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let st = r.json();
    assert_eq!(st["reason"], "Invalid");
    let causes = st["details"]["causes"].as_array().cloned().unwrap_or_default();
    assert!(causes.iter().any(|c| c["field"] == field), "no cause on {field}: {st}");
}

async fn columns(h: &Harness, path: &str) -> (Vec<String>, Vec<Value>) {
    let t = h.get_accept(path, TABLE).await.json();
    let cols = t["columnDefinitions"].as_array().cloned().unwrap_or_default().iter().map(|c| c["name"].as_str().unwrap_or("").to_string()).collect();
    (cols, t["rows"][0]["cells"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn storage_networking_node_and_template_kinds() {
    let h = Harness::start().await;
    storage_class_defaults_printing_and_immutability(&h).await;
    ingress_validation_and_printing(&h).await;
    network_policy_defaults(&h).await;
    runtime_class_and_ingress_class_and_csi(&h).await;
    pod_template(&h).await;
    discovery_lists_every_new_kind(&h).await;
}

async fn storage_class_defaults_printing_and_immutability(h: &Harness) {
    const SCS: &str = "/apis/storage.k8s.io/v1/storageclasses";
    let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "ferrokube.io/local-path"});
    let r = h.post(SCS, &sc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["reclaimPolicy"], "Delete");
    assert_eq!(r.json()["volumeBindingMode"], "Immediate");
    let (cols, cells) = columns(h, &format!("{SCS}/local")).await;
    assert_eq!(cols, ["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"]);
    assert_eq!(cells[0], "local (default)");
    let r = h.patch(&format!("{SCS}/local"), "application/merge-patch+json", &json!({"provisioner": "other"})).await;
    assert_invalid(&r, "provisioner");
    assert_invalid(&h.post(SCS, &json!({"metadata": {"name": "none"}})).await, "provisioner");
    assert_invalid(&h.post(SCS, &json!({"metadata": {"name": "bad"}, "provisioner": "p", "reclaimPolicy": "Recycle"})).await, "reclaimPolicy");
    let r = h.delete(&format!("{SCS}/local"), None).await;
    assert_eq!(r.json()["kind"], "StorageClass", "ReturnDeletedObject");
}

async fn ingress_validation_and_printing(h: &Harness) {
    const INGS: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    let r = h.post(INGS, &ing).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"], json!({"loadBalancer": {}}));
    assert_eq!(r.json()["metadata"]["generation"], 1);
    let (cols, cells) = columns(h, &format!("{INGS}/web")).await;
    assert_eq!(cols, ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
    assert_eq!(&cells[1..5], [json!("nginx"), json!("web.example"), json!(""), json!("80")]);
    let mut bad = ing.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = json!("Glob");
    assert_invalid(&h.post(INGS, &bad).await, "spec.rules[0].http.paths[0].pathType");
    bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = json!("Prefix");
    bad["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = json!({"number": 70000});
    assert_invalid(&h.post(INGS, &bad).await, "spec.rules[0].http.paths[0].backend.service.port.number");
    assert_invalid(&h.post(INGS, &json!({"metadata": {"name": "empty"}, "spec": {}})).await, "spec");
}

async fn network_policy_defaults(h: &Harness) {
    const NPS: &str = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"ports": [{"port": 53}]}]}});
    let r = h.post(NPS, &np).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(r.json()["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let (_, cells) = columns(h, &format!("{NPS}/deny")).await;
    assert_eq!(cells[1], "app=web");
    assert_invalid(&h.post(NPS, &json!({"metadata": {"name": "odd"}, "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}})).await, "spec.policyTypes[0]");
}

async fn runtime_class_and_ingress_class_and_csi(h: &Harness) {
    let rc = h.post("/apis/node.k8s.io/v1/runtimeclasses", &json!({"metadata": {"name": "runc"}, "handler": "runc"})).await;
    assert_eq!(rc.status, StatusCode::CREATED, "{}", rc.text());
    assert_invalid(&h.post("/apis/node.k8s.io/v1/runtimeclasses", &json!({"metadata": {"name": "x"}, "handler": "Not_A_Label"})).await, "handler");
    let ic = h.post("/apis/networking.k8s.io/v1/ingressclasses", &json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})).await;
    assert_eq!(ic.status, StatusCode::CREATED, "{}", ic.text());
    let r = h.patch("/apis/networking.k8s.io/v1/ingressclasses/nginx", "application/merge-patch+json", &json!({"spec": {"controller": "other"}})).await;
    assert_invalid(&r, "spec.controller");
    let d = h.post("/apis/storage.k8s.io/v1/csidrivers", &json!({"metadata": {"name": "local.csi"}, "spec": {}})).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.text());
    assert_eq!(d.json()["spec"]["attachRequired"], true);
    assert_eq!(d.json()["spec"]["volumeLifecycleModes"], json!(["Persistent"]));
}

async fn pod_template(h: &Harness) {
    const PTS: &str = "/api/v1/namespaces/default/podtemplates";
    let pt = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}});
    let r = h.post(PTS, &pt).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["template"]["spec"]["restartPolicy"], "Always");
    let (cols, cells) = columns(h, &format!("{PTS}/t")).await;
    assert_eq!(cols, ["Template", "Containers", "Images", "Pod Labels"]);
    assert_eq!(cells, [json!("t"), json!("c"), json!("busybox"), json!("a=b")]);
    let bad = json!({"metadata": {"name": "u"}, "template": {"spec": {"containers": [{"name": "c"}]}}});
    assert_invalid(&h.post(PTS, &bad).await, "template.spec.containers[0].image");
}

async fn discovery_lists_every_new_kind(h: &Harness) {
    for (gv, plural) in [
        ("/api/v1", "podtemplates"), ("/apis/networking.k8s.io/v1", "ingresses"), ("/apis/networking.k8s.io/v1", "ingressclasses"),
        ("/apis/networking.k8s.io/v1", "networkpolicies"), ("/apis/node.k8s.io/v1", "runtimeclasses"),
        ("/apis/storage.k8s.io/v1", "storageclasses"), ("/apis/storage.k8s.io/v1", "csidrivers"), ("/apis/storage.k8s.io/v1", "csinodes"),
    ] {
        let l = h.get(gv).await.json();
        assert!(l["resources"].as_array().unwrap().iter().any(|r| r["name"] == plural), "{gv} lacks {plural}");
    }
    let doc = h.get("/openapi/v3/apis/storage.k8s.io/v1").await;
    assert_eq!(doc.status, StatusCode::OK);
}

/// CronJob, ReplicationController, PersistentVolume(Claim), ResourceQuota, LimitRange and
/// HorizontalPodAutoscaler: served, defaulted, printed, refused on bad input, and the
/// LimitRanger, ResourceQuota and DefaultStorageClass admission plugins at work.
#[tokio::test]
async fn workload_storage_quota_and_autoscaling_kinds() {
    let h = Harness::start().await;
    cron_jobs(&h).await;
    replication_controllers(&h).await;
    volumes_and_claims(&h).await;
    limit_ranges_default_and_bound_pods(&h).await;
    resource_quota_refuses_the_pod_that_would_exceed_it(&h).await;
    horizontal_pod_autoscalers(&h).await;
}

fn busybox_pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

async fn cron_jobs(h: &Harness) {
    const CJS: &str = "/apis/batch/v1/namespaces/default/cronjobs";
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "timeZone": "Europe/Berlin", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    let r = h.post(CJS, &cj).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
    let (cols, cells) = columns(h, &format!("{CJS}/nightly")).await;
    assert_eq!(&cols[..7], ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]);
    assert_eq!(&cells[1..6], [json!("@daily"), json!("Europe/Berlin"), json!(false), json!(0), json!("<none>")]);
    for (field, patch) in [
        ("spec.schedule", json!({"schedule": "61 * * * *"})),
        ("spec.schedule", json!({"schedule": "TZ=UTC 0 * * * *"})),
        ("spec.timeZone", json!({"timeZone": "Mars/Olympus"})),
        ("spec.concurrencyPolicy", json!({"concurrencyPolicy": "Sometimes"})),
        ("spec.startingDeadlineSeconds", json!({"startingDeadlineSeconds": -1})),
    ] {
        let mut bad = cj.clone();
        bad["metadata"]["name"] = json!("bad");
        json_patch::merge(&mut bad["spec"], &patch);
        assert_invalid(&h.post(CJS, &bad).await, field);
    }
    let mut long = cj.clone();
    long["metadata"]["name"] = json!("x".repeat(53));
    assert_invalid(&h.post(CJS, &long).await, "metadata.name");
}

async fn replication_controllers(h: &Harness) {
    const RCS: &str = "/api/v1/namespaces/default/replicationcontrollers";
    let rc = json!({"metadata": {"name": "old"}, "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "old"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let r = h.post(RCS, &rc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["spec"]["selector"], json!({"app": "old"}), "the selector defaults to the template's labels");
    assert_eq!(v["metadata"]["labels"], json!({"app": "old"}));
    assert_eq!(v["status"], json!({"replicas": 0}));
    let scale = h.get(&format!("{RCS}/old/scale")).await.json();
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=old");
    let r = h.patch(&format!("{RCS}/old/scale"), "application/merge-patch+json", &json!({"spec": {"replicas": 4}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.get(&format!("{RCS}/old")).await.json()["spec"]["replicas"], 4);
    let mut bad = rc.clone();
    bad["metadata"]["name"] = json!("mismatch");
    bad["spec"]["selector"] = json!({"app": "other"});
    assert_invalid(&h.post(RCS, &bad).await, "spec.template.metadata.labels");
    let all = h.get("/api/v1").await.json();
    let rc_res = all["resources"].as_array().unwrap().iter().find(|r| r["name"] == "replicationcontrollers").cloned().unwrap();
    assert!(rc_res["categories"].as_array().unwrap().contains(&json!("all")));
}

async fn volumes_and_claims(h: &Harness) {
    let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "ferrokube.io/local-path"});
    assert_eq!(h.post("/apis/storage.k8s.io/v1/storageclasses", &sc).await.status, StatusCode::CREATED);
    let pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv1"}}});
    let r = h.post("/api/v1/persistentvolumes", &pv).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(r.json()["status"]["phase"], "Pending");
    let (cols, cells) = columns(h, "/api/v1/persistentvolumes/pv1").await;
    assert_eq!(&cols[..4], ["Name", "Capacity", "Access Modes", "Reclaim Policy"]);
    assert_eq!(&cells[1..3], [json!("1Gi"), json!("RWO")]);
    let no_source = json!({"metadata": {"name": "pv2"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_invalid(&h.post("/api/v1/persistentvolumes", &no_source).await, "spec");
    const PVCS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";
    let pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let r = h.post(PVCS, &pvc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["storageClassName"], "standard", "DefaultStorageClass");
    assert_eq!(r.json()["status"]["phase"], "Pending");
    let mut none = pvc.clone();
    none["metadata"]["name"] = json!("no-class");
    none["spec"]["storageClassName"] = json!("");
    assert_eq!(h.post(PVCS, &none).await.json()["spec"]["storageClassName"], "", "an explicit empty class stays");
    let r = h.patch(&format!("{PVCS}/data"), "application/merge-patch+json", &json!({"spec": {"accessModes": ["ReadWriteMany"]}})).await;
    assert_invalid(&r, "spec");
    let mut bad = pvc.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["resources"]["requests"]["storage"] = json!("0");
    assert_invalid(&h.post(PVCS, &bad).await, "spec.resources.requests[storage]");
    bad["spec"]["resources"]["requests"]["storage"] = json!("1Gi");
    bad["spec"]["accessModes"] = json!(["ReadWriteSometimes"]);
    assert_invalid(&h.post(PVCS, &bad).await, "spec.accessModes");
    let r = h.delete(&format!("{PVCS}/no-class"), None).await;
    assert_eq!(r.json()["kind"], "PersistentVolumeClaim");
}

async fn limit_ranges_default_and_bound_pods(h: &Harness) {
    assert_eq!(h.post("/api/v1/namespaces", &json!({"metadata": {"name": "limited"}})).await.status, StatusCode::CREATED);
    let lr = json!({"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container",
        "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}});
    let r = h.post("/api/v1/namespaces/limited/limitranges", &lr).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = h.post("/api/v1/namespaces/limited/pods", &busybox_pod("defaulted")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let res = &r.json()["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"], json!({"cpu": "500m", "memory": "128Mi"}));
    assert_eq!(res["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
    assert!(r.json()["metadata"]["annotations"]["kubernetes.io/limit-ranger"].as_str().unwrap().starts_with("LimitRanger plugin set:"));
    let mut big = busybox_pod("too-big");
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2"}});
    let r = h.post("/api/v1/namespaces/limited/pods", &big).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["message"], "pods \"too-big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2");
    let bad = json!({"metadata": {"name": "bad"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}});
    assert_invalid(&h.post("/api/v1/namespaces/limited/limitranges", &bad).await, "spec.limits[0].min[cpu]");
}

async fn resource_quota_refuses_the_pod_that_would_exceed_it(h: &Harness) {
    assert_eq!(h.post("/api/v1/namespaces", &json!({"metadata": {"name": "quoted"}})).await.status, StatusCode::CREATED);
    let q = json!({"metadata": {"name": "pod-quota"}, "spec": {"hard": {"pods": "2"}}});
    let r = h.post("/api/v1/namespaces/quoted/resourcequotas", &q).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for name in ["p1", "p2"] {
        assert_eq!(h.post("/api/v1/namespaces/quoted/pods", &busybox_pod(name)).await.status, StatusCode::CREATED);
    }
    // The pods' cache may trail the creates by a moment: until it holds both, p3 passes (and
    // is removed again); once it does, p3 is refused.
    let r = testkit::wait_for(std::time::Duration::from_secs(10), || async {
        let r = h.post("/api/v1/namespaces/quoted/pods", &busybox_pod("p3")).await;
        if r.status == StatusCode::FORBIDDEN {
            return Some(r);
        }
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        h.delete("/api/v1/namespaces/quoted/pods/p3", Some(&json!({"gracePeriodSeconds": 0}))).await;
        None
    })
    .await
    .expect("the third pod is refused");
    assert_eq!(r.json()["reason"], "Forbidden");
    assert_eq!(r.json()["message"], "pods \"p3\" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=2, limited: pods=2");
    let cpu = json!({"metadata": {"name": "cpu-quota"}, "spec": {"hard": {"requests.cpu": "1"}}});
    assert_eq!(h.post("/api/v1/namespaces/quoted/resourcequotas", &cpu).await.status, StatusCode::CREATED);
    let bad = json!({"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "1.5", "requests.memory": "-1"}}});
    let r = h.post("/api/v1/namespaces/quoted/resourcequotas", &bad).await;
    assert_invalid(&r, "spec.hard[pods]");
    assert_invalid(&r, "spec.hard[requests.memory]");
    // A quantity that does not parse fails decoding, before validation: 400, as upstream.
    let r = h.post("/api/v1/namespaces/quoted/resourcequotas", &json!({"metadata": {"name": "worse"}, "spec": {"hard": {"cpu": "lots"}}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

async fn horizontal_pod_autoscalers(h: &Harness) {
    const HPAS: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let hpa = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
    let r = h.post(HPAS, &hpa).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["spec"]["minReplicas"], 1);
    assert_eq!(v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
    assert_eq!(v["status"]["desiredReplicas"], 0);
    let (cols, cells) = columns(h, &format!("{HPAS}/web")).await;
    assert_eq!(cols, ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]);
    assert_eq!(&cells[1..5], [json!("Deployment/web"), json!("cpu: <unknown>/80%"), json!("1"), json!("5")]);
    let mut bad = hpa.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["minReplicas"] = json!(6);
    assert_invalid(&h.post(HPAS, &bad).await, "spec.maxReplicas");
    bad["spec"]["minReplicas"] = json!(1);
    bad["spec"]["metrics"] = json!([{"type": "Magic"}]);
    assert_invalid(&h.post(HPAS, &bad).await, "spec.metrics[0].type");
}

/// pods/eviction honours a PodDisruptionBudget: 429 while the budget is unprocessed or spent,
/// 201 and the pod gone while it allows a disruption, which the eviction spends.
#[tokio::test]
async fn eviction_honours_pod_disruption_budgets() {
    let h = Harness::start().await;
    const PODS: &str = "/api/v1/namespaces/default/pods";
    for name in ["e1", "e2"] {
        let mut p = busybox_pod(name);
        p["metadata"]["labels"] = json!({"app": "guarded"});
        assert_eq!(h.post(PODS, &p).await.status, StatusCode::CREATED);
        let mut st = h.get(&format!("{PODS}/{name}")).await.json();
        st["status"]["phase"] = json!("Running");
        assert_eq!(h.put(&format!("{PODS}/{name}/status"), &st).await.status, StatusCode::OK);
    }
    let evict = |name: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});
    const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let pdb = json!({"metadata": {"name": "guard"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}});
    assert_eq!(h.post(PDBS, &pdb).await.status, StatusCode::CREATED);
    let r = h.post(&format!("{PODS}/e1/eviction"), &evict("e1")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["details"]["causes"][0]["message"], "The disruption budget guard is still being processed by the server.");
    // What the disruption controller would write: one disruption allowed.
    let mut st = h.get(&format!("{PDBS}/guard")).await.json();
    st["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2});
    let r = h.put(&format!("{PDBS}/guard/status"), &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = h.post(&format!("{PODS}/e1/eviction"), &evict("e1")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(h.get(&format!("{PODS}/e1")).await.status, StatusCode::NOT_FOUND);
    let spent = h.get(&format!("{PDBS}/guard")).await.json();
    assert_eq!(spent["status"]["disruptionsAllowed"], 0);
    assert!(spent["status"]["disruptedPods"]["e1"].is_string(), "{spent}");
    let r = h.post(&format!("{PODS}/e2/eviction"), &evict("e2")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let st = r.json();
    assert_eq!(st["reason"], "TooManyRequests");
    assert_eq!(st["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(st["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(h.get(&format!("{PODS}/e2")).await.status, StatusCode::OK, "the pod stays");
    // Bad input: another pod's name in the body, and a body that is not an Eviction.
    assert_eq!(h.post(&format!("{PODS}/e2/eviction"), &evict("e1")).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.post(&format!("{PODS}/e2/eviction"), &json!({"deleteOptions": 5})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.post(&format!("{PODS}/nope/eviction"), &evict("nope")).await.status, StatusCode::NOT_FOUND);
}

/// Ten pods created at once against a quota of 3: exactly 3 are admitted, though the caches
/// that usage is counted from see none of them yet.
#[tokio::test]
async fn concurrent_creates_cannot_exceed_a_quota() {
    let h = std::sync::Arc::new(Harness::start().await);
    assert_eq!(h.post("/api/v1/namespaces", &json!({"metadata": {"name": "race"}})).await.status, StatusCode::CREATED);
    let q = json!({"metadata": {"name": "three"}, "spec": {"hard": {"pods": "3"}}});
    assert_eq!(h.post("/api/v1/namespaces/race/resourcequotas", &q).await.status, StatusCode::CREATED);
    // The quota itself must be visible to admission first.
    testkit::wait_for(std::time::Duration::from_secs(10), || async {
        let r = h.post("/api/v1/namespaces/race/pods?dryRun=All", &busybox_pod("probe")).await;
        (r.status == StatusCode::CREATED).then_some(())
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.post("/api/v1/namespaces/race/pods", &busybox_pod(&format!("r{i}"))).await.status })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == StatusCode::CREATED).count(), 3, "{codes:?}");
    assert!(codes.iter().all(|c| *c == StatusCode::CREATED || *c == StatusCode::FORBIDDEN), "{codes:?}");
}
