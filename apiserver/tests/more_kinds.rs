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
