//! /openapi/v2 (JSON and gnostic protobuf, ETag and 304), autoscaling/v1 HorizontalPodAutoscalers
//! stored as v2, and VolumeAttachment validation, against a real etcd and apiserver.

mod support;

use apiserver::openapi::v2_proto;
use prost::Message as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Harness;

const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V1: &str = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
const V2: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

#[tokio::test]
async fn openapi_v2_json_and_protobuf_cover_every_served_kind_with_etag() {
    let h = Harness::start().await;
    let json_reply = h.get_accept("/openapi/v2", "application/json").await;
    assert_eq!(json_reply.status, StatusCode::OK);
    assert_eq!(json_reply.headers["content-type"], "application/json");
    let doc = json_reply.json();
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().unwrap();
    // Every served kind has a definition that names its group, version and kind.
    for r in apiserver::resources::RESOURCES {
        let found = defs.values().any(|d| {
            d["x-kubernetes-group-version-kind"].as_array().into_iter().flatten().any(|g| g["group"] == r.info.group && g["version"] == r.info.version && g["kind"] == r.info.kind)
        });
        assert!(found, "no definition for {}/{} {}", r.info.group, r.info.version, r.info.kind);
    }
    // Refs point into definitions, and every one resolves.
    let text = doc.to_string();
    assert!(!text.contains("#/components/schemas/"));
    for piece in text.split("\"#/definitions/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(defs.contains_key(name), "dangling ref {name}");
    }
    // kubectl's query-param verifier looks for fieldValidation on the PATCH of the kind.
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query" && p["type"] == "string"));
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["in"] == "body"));

    let pb = h.get_accept("/openapi/v2", PROTOBUF).await;
    assert_eq!(pb.status, StatusCode::OK);
    // Go's mime parser (client-go reads the reply's type) refuses the `@` spelling.
    assert_eq!(pb.headers["content-type"], "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
    let decoded = v2_proto::Document::decode(pb.body.as_slice()).expect("gnostic Document");
    assert_eq!(decoded.swagger, "2.0");
    let pdefs = decoded.definitions.unwrap().additional_properties;
    assert_eq!(pdefs.len(), defs.len());
    let deployment = pdefs.iter().find(|d| d.name == "io.k8s.api.apps.v1.Deployment").unwrap().value.as_ref().unwrap();
    let gvk = deployment.vendor_extension.iter().find(|e| e.name == "x-kubernetes-group-version-kind").unwrap();
    let gvk: Value = serde_yaml::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(gvk[0], json!({"group": "apps", "version": "v1", "kind": "Deployment"}));
    let spec = deployment.properties.as_ref().unwrap().additional_properties.iter().find(|p| p.name == "spec").unwrap();
    assert_eq!(spec.value.as_ref().unwrap()._ref, "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
    assert!(!decoded.paths.unwrap().path.is_empty());

    // One ETag for both encodings of the same document; a matching If-None-Match is a 304.
    let etag = json_reply.headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(pb.headers["etag"], etag.as_str());
    let req = h.http.get(format!("{}/openapi/v2", h.api.url)).bearer_auth(support::TOKEN).header("Accept", PROTOBUF).header("If-None-Match", &etag);
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());
    let req = h.http.get(format!("{}/openapi/v2", h.api.url)).bearer_auth(support::TOKEN).header("If-None-Match", "\"stale\"");
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
}

fn hpa_v1(name: &str, min: i64, max: i64, cpu: i64) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": min, "maxReplicas": max, "targetCPUUtilizationPercentage": cpu}})
}

fn cause_fields(r: &support::Reply) -> Vec<String> {
    r.json()["details"]["causes"].as_array().into_iter().flatten().filter_map(|c| c["field"].as_str().map(String::from)).collect()
}

#[tokio::test]
async fn horizontal_pod_autoscaler_v1_and_v2_convert_both_ways() {
    let h = Harness::start().await;
    // Written as v1, stored and read as v2.
    let created = h.post(V1, &hpa_v1("cpu", 1, 3, 50)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["apiVersion"], "autoscaling/v1");
    assert_eq!(created.json()["spec"]["targetCPUUtilizationPercentage"], 50);
    let v2 = h.get(&format!("{V2}/cpu")).await.json();
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["metrics"], json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]));

    // Written as v2 with more than v1 can say: v1 keeps the rest in annotations, and writing
    // the v1 object back loses nothing.
    let mut rich = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "rich"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]}});
    assert_eq!(h.post(V2, &rich).await.status, StatusCode::CREATED);
    let as_v1 = h.get(&format!("{V1}/rich")).await.json();
    assert_eq!(as_v1["spec"]["targetCPUUtilizationPercentage"], 70);
    let extra: Value = serde_json::from_str(as_v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"].as_str().unwrap()).unwrap();
    assert_eq!(extra, json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}]));
    let mut back = as_v1.clone();
    back["spec"]["maxReplicas"] = json!(8);
    let put = h.put(&format!("{V1}/rich"), &back).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let stored = h.get(&format!("{V2}/rich")).await.json();
    rich["spec"]["maxReplicas"] = json!(8);
    assert_eq!(stored["spec"]["metrics"], rich["spec"]["metrics"]);
    assert_eq!(stored["spec"]["maxReplicas"], 8);
    assert!(stored.pointer("/metadata/annotations").is_none(), "{stored}");

    // A merge patch in v1 terms.
    let patched = h.patch(&format!("{V1}/cpu"), "application/merge-patch+json", &json!({"spec": {"targetCPUUtilizationPercentage": 65}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(h.get(&format!("{V2}/cpu")).await.json()["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 65);

    // Lists and watch events come in the version asked for.
    let list = h.get(V1).await.json();
    assert_eq!(list["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["items"].as_array().unwrap().iter().all(|i| i["spec"]["targetCPUUtilizationPercentage"].is_i64()));
    let events = h.get(&format!("{V1}?watch=true&timeoutSeconds=1")).await.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["type"] == "ADDED" && e["object"]["apiVersion"] == "autoscaling/v1"), "{events:?}");

    // Bad input: upstream's 422 with field paths, whichever version it came in.
    let r = h.post(V1, &hpa_v1("zero", 0, 3, 50)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["reason"], "Invalid");
    assert_eq!(cause_fields(&r), vec!["spec.minReplicas"]);
    let r = h.post(V1, &hpa_v1("inverted", 4, 2, 50)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause_fields(&r), vec!["spec.maxReplicas"]);
    let r = h.post(V1, &hpa_v1("nocpu", 1, 2, 0)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause_fields(&r), vec!["spec.metrics[0].resource.target.averageUtilization"]);
    let mut wrong = hpa_v1("wrong", 1, 2, 50);
    wrong["apiVersion"] = json!("autoscaling/v2");
    assert_eq!(h.post(V1, &wrong).await.status, StatusCode::BAD_REQUEST);
    let r = h.request(Method::POST, V1, Some("application/json"), None, Some(b"{not json".to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get(&format!("{V1}/nope")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.delete(&format!("{V1}/cpu"), None).await.status, StatusCode::OK);
    assert_eq!(h.get(&format!("{V2}/cpu")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn volume_attachments_are_validated_as_upstream() {
    let h = Harness::start().await;
    const VA: &str = "/apis/storage.k8s.io/v1/volumeattachments";
    let ok = json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "csi-1"},
        "spec": {"attacher": "hostpath.csi.k8s.io", "nodeName": "node-0", "source": {"persistentVolumeName": "pv-1"}}});
    assert_eq!(h.post(VA, &ok).await.status, StatusCode::CREATED);
    let bad = json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "csi-2"}, "spec": {"nodeName": "node-0", "source": {}}});
    let r = h.post(VA, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause_fields(&r), vec!["spec.attacher", "spec.source"]);
    let r = h.patch(&format!("{VA}/csi-1"), "application/merge-patch+json", &json!({"spec": {"nodeName": "node-1"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause_fields(&r), vec!["spec"]);
    // Status is written through its subresource.
    let r = h.patch(&format!("{VA}/csi-1/status"), "application/merge-patch+json", &json!({"status": {"attached": true}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.get(&format!("{VA}/csi-1")).await.json()["status"]["attached"], true);
}
