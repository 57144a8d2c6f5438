//! Requests that upstream refuses and that were once accepted here (issue 17's "lenient
//! paths"), and patches without a precondition that must not conflict under contention.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use support::{configmap, Harness};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn lenient_paths_get_upstreams_answers() {
    let h = Harness::start().await;
    a_create_without_a_namespace_is_refused(&h).await;
    an_apply_naming_another_object_is_refused(&h).await;
    an_apply_that_is_not_yaml_is_refused(&h).await;
    a_numeric_resource_version_in_a_put_is_refused(&h).await;
    bad_list_parameters_are_refused(&h).await;
    a_continue_token_from_the_future_is_a_400(&h).await;
    strict_applies_to_duplicate_keys_in_patches(&h).await;
    concurrent_patches_without_preconditions_never_conflict(Arc::new(h)).await;
}

async fn a_create_without_a_namespace_is_refused(h: &Harness) {
    let r = h.post("/api/v1/configmaps", &configmap("nowhere", json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text());
    assert_eq!(h.get(&format!("{CMS}/nowhere")).await.status, StatusCode::NOT_FOUND);
}

async fn an_apply_naming_another_object_is_refused(h: &Harness) {
    let r = h.patch(&format!("{CMS}/url-name?fieldManager=t"), "application/apply-patch+yaml", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "body-name"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(h.get(&format!("{CMS}/url-name")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get(&format!("{CMS}/body-name")).await.status, StatusCode::NOT_FOUND);
}

async fn an_apply_that_is_not_yaml_is_refused(h: &Harness) {
    let r = h.request(Method::PATCH, &format!("{CMS}/garbage?fieldManager=t"), Some("application/apply-patch+yaml"), None, Some(b"::: not yaml [".to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(h.get(&format!("{CMS}/garbage")).await.status, StatusCode::NOT_FOUND);
}

async fn a_numeric_resource_version_in_a_put_is_refused(h: &Harness) {
    assert_eq!(h.post(CMS, &configmap("rv", json!({}))).await.status, StatusCode::CREATED);
    let mut cm = h.get(&format!("{CMS}/rv")).await.json();
    cm["metadata"]["resourceVersion"] = json!(1);
    let r = h.put(&format!("{CMS}/rv"), &cm).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a number is not a precondition to ignore: {}", r.text());
}

async fn bad_list_parameters_are_refused(h: &Harness) {
    let r = h.get(&format!("{CMS}?resourceVersionMatch=Bogus&resourceVersion=1")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("resourceVersionMatch: Unsupported value: \"Bogus\""), "{}", r.text());
    assert_eq!(h.get(&format!("{CMS}?resourceVersionMatch=Exact")).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.get(&format!("{CMS}?resourceVersionMatch=NotOlderThan&resourceVersion=0")).await.status, StatusCode::OK);
    let r = h.get(&format!("{CMS}?labelSelector=a%20in%20()")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

async fn a_continue_token_from_the_future_is_a_400(h: &Harness) {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(br#"{"v":"meta.k8s.io/v1","rv":99999999,"start":"default/a\u0000"}"#);
    let r = h.get(&format!("{CMS}?limit=1&continue={token}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

/// Upstream's GuaranteedUpdate retries a conflict until the request's deadline, so patches
/// without a resourceVersion all land: 100 at once on one object, 0 conflicts.
async fn concurrent_patches_without_preconditions_never_conflict(h: Arc<Harness>) {
    assert_eq!(h.post(CMS, &configmap("hot", json!({}))).await.status, StatusCode::CREATED);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.patch(&format!("{CMS}/hot"), "application/merge-patch+json", &json!({"data": {format!("k{i}"): "v"}})).await.status
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert!(codes.iter().all(|c| *c == StatusCode::OK), "{codes:?}");
    let data = h.get(&format!("{CMS}/hot")).await.json()["data"].as_object().unwrap().len();
    assert_eq!(data, 101, "every patch landed");
}

async fn strict_applies_to_duplicate_keys_in_patches(h: &Harness) {
    assert_eq!(h.post(CMS, &configmap("dup-patch", json!({}))).await.status, StatusCode::CREATED);
    let body = br#"{"data": {"a": "1"}, "data": {"b": "2"}}"#.to_vec();
    for ct in ["application/merge-patch+json", "application/strategic-merge-patch+json"] {
        let r = h.request(Method::PATCH, &format!("{CMS}/dup-patch?fieldValidation=Strict"), Some(ct), None, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{ct}: {}", r.text());
        assert_eq!(r.json()["message"], "strict decoding error: duplicate field \"data\"");
    }
    let r = h.request(Method::PATCH, &format!("{CMS}/dup-patch"), Some("application/merge-patch+json"), None, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.headers.get("warning").is_some_and(|w| w.to_str().unwrap().contains("duplicate field")), "Warn is the default");
}
