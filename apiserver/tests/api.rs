//! The REST API against a real etcd and apiserver: object semantics, watch, lists, errors.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::{configmap, pod, Harness};

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn etcd_backend_passes_the_storage_suite() {
    let etcd = testkit::Etcd::start().await;
    let s = apiserver::storage::etcd::EtcdStorage::connect(std::slice::from_ref(&etcd.endpoint)).await.unwrap();
    apiserver::storage::tests::run_all(Arc::new(s)).await;
}

#[tokio::test]
async fn rest_semantics() {
    let mut h = Harness::start().await;
    authentication(&h).await;
    discovery_endpoint_accept_headers(&h).await;
    pod_lifecycle_binding_status_and_graceful_delete(&h).await;
    namespace_existence_and_termination(&h).await;
    update_conflicts_generation_and_scale(&h).await;
    server_side_field_validation_typed_object(&h).await;
    errors_are_status_objects(&h).await;
    api_chunking_server_should_return_chunks_of_results_for_list_calls(&h).await;
    selectors(&h).await;
    watch_configmaps_from_resource_version(&h).await;
    watch_configmaps_label_changed(&h).await;
    watch_bookmarks_only_when_asked_and_timeout_ends_stream(&h).await;
    finalizers_hold_deletion(&h).await;
    priority_class_admission(&h).await;
    scheduler_preemption_priority_class_endpoints_with_different_http_methods(&h).await;
    metrics_count_requests(&h).await;
    watch_from_before_the_cache_window_is_expired(&mut h).await;
}

async fn authentication(h: &Harness) {
    // system:anonymous reaches only health and version, as under upstream's default policy.
    assert_eq!(h.anonymous("/api/v1/namespaces").await, StatusCode::FORBIDDEN);
    assert_eq!(h.anonymous("/version").await, StatusCode::OK);
    assert_eq!(h.get("/api/v1/namespaces").await.status, StatusCode::OK);
}

/// Conformance: "Aggregated Discovery Endpoint Accept Headers".
async fn discovery_endpoint_accept_headers(h: &Harness) {
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for path in ["/api", "/apis"] {
        let r = h.get_accept(path, accept).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
        assert_eq!(r.json()["kind"], "APIGroupDiscoveryList");
    }
    let legacy = h.get_accept("/api", "application/json").await.json();
    assert_eq!(legacy["kind"], "APIVersions");
    assert_eq!(legacy["versions"][0], "v1");
    let apps = h.get("/apis/apps/v1").await.json();
    assert!(apps["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments/scale"));
    assert_eq!(h.get("/version").await.json()["minor"], "33");
}

async fn pod_lifecycle_binding_status_and_graceful_delete(h: &Harness) {
    let r = h.post(PODS, &pod("web")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    // Table for kubectl get.
    let t = h.get_accept(PODS, TABLE).await.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert!(t["metadata"]["resourceVersion"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(t["rows"][0]["cells"][2], "Pending");
    // Binding once; a second binding is a conflict.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}});
    assert_eq!(h.post(&format!("{PODS}/web/binding"), &binding).await.status, StatusCode::CREATED);
    assert_eq!(h.post(&format!("{PODS}/web/binding"), &binding).await.status, StatusCode::CONFLICT);
    let bound = h.get(&format!("{PODS}/web")).await.json();
    assert_eq!(bound["spec"]["nodeName"], "n1");
    assert!(bound["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "True"));
    // The kubelet's status patch with a UID precondition; the main resource ignores status.
    let sp = json!({"metadata": {"uid": uid}, "status": {"phase": "Running", "podIP": "10.88.0.5"}});
    let r = h.patch(&format!("{PODS}/web/status"), "application/strategic-merge-patch+json", &sp).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let bad = json!({"metadata": {"uid": "not-the-uid"}, "status": {"phase": "Failed"}});
    assert_eq!(h.patch(&format!("{PODS}/web/status"), "application/strategic-merge-patch+json", &bad).await.status, StatusCode::CONFLICT);
    let r = h.patch(&format!("{PODS}/web"), "application/merge-patch+json", &json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(r.json()["status"]["phase"], "Running");
    assert_eq!(r.json()["metadata"]["labels"]["x"], "y");
    // Graceful deletion of a bound pod, finished by the kubelet with grace 0 and a UID precondition.
    let r = h.delete(&format!("{PODS}/web"), Some(&json!({"propagationPolicy": "Background"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.json()["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(r.json()["metadata"]["deletionGracePeriodSeconds"], 30);
    let wrong = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "other"}});
    assert_eq!(h.delete(&format!("{PODS}/web"), Some(&wrong)).await.status, StatusCode::CONFLICT);
    let fin = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
    assert_eq!(h.delete(&format!("{PODS}/web"), Some(&fin)).await.status, StatusCode::OK);
    assert_eq!(h.get(&format!("{PODS}/web")).await.status, StatusCode::NOT_FOUND);
    // An unbound pod goes at once.
    h.post(PODS, &pod("unbound")).await;
    assert_eq!(h.delete(&format!("{PODS}/unbound"), None).await.status, StatusCode::OK);
    assert_eq!(h.get(&format!("{PODS}/unbound")).await.status, StatusCode::NOT_FOUND);
}

async fn namespace_existence_and_termination(h: &Harness) {
    let r = h.post("/api/v1/namespaces/missing/pods", &pod("p")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["details"]["kind"], "namespaces");
    assert_eq!(h.post("/api/v1/namespaces", &json!({"metadata": {"name": "doomed"}})).await.status, StatusCode::CREATED);
    let r = h.delete("/api/v1/namespaces/doomed", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"]["phase"], "Terminating");
    let r = h.post("/api/v1/namespaces/doomed/configmaps", &configmap("c", json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // The namespace controller's finalize clears spec.finalizers; then the namespace goes.
    let mut ns = h.get("/api/v1/namespaces/doomed").await.json();
    ns["spec"]["finalizers"] = json!([]);
    let r = h.put("/api/v1/namespaces/doomed/finalize", &ns).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.get("/api/v1/namespaces/doomed").await.status, StatusCode::NOT_FOUND);
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

async fn update_conflicts_generation_and_scale(h: &Harness) {
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let d = h.post(base, &deployment("gen")).await.json();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    // A stale resourceVersion is a 409 Conflict.
    let mut stale = d.clone();
    let r = h.patch(&format!("{base}/gen"), "application/merge-patch+json", &json!({"metadata": {"labels": {"a": "b"}}})).await;
    assert_eq!(r.json()["metadata"]["generation"], 1, "metadata changes keep generation");
    stale["spec"]["replicas"] = json!(2);
    let r = h.put(&format!("{base}/gen"), &stale).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["reason"], "Conflict");
    // The scale subresource moves spec.replicas and bumps generation.
    let r = h.patch(&format!("{base}/gen/scale"), "application/merge-patch+json", &json!({"spec": {"replicas": 3}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["kind"], "Scale");
    assert_eq!(r.json()["spec"]["replicas"], 3);
    let d = h.get(&format!("{base}/gen")).await.json();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    // Status writes do not touch spec or generation.
    let mut st = d.clone();
    st["status"] = json!({"replicas": 3, "observedGeneration": 2});
    st["spec"]["replicas"] = json!(9);
    let r = h.put(&format!("{base}/gen/status"), &st).await.json();
    assert_eq!(r["spec"]["replicas"], 3);
    assert_eq!(r["status"]["observedGeneration"], 2);
    assert_eq!(r["metadata"]["generation"], 2);
}

/// Conformance: "Server side field validation, typed object".
async fn server_side_field_validation_typed_object(h: &Harness) {
    let mut cm = configmap("strict", json!({}));
    cm["spec"] = json!({"nope": 1});
    let r = h.request(reqwest::Method::POST, &format!("{CMS}?fieldValidation=Strict"), Some("application/json"), None, Some(serde_json::to_vec(&cm).unwrap())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("unknown field \"spec\""), "{}", r.text());
    let r = h.request(reqwest::Method::POST, &format!("{CMS}?fieldValidation=Warn"), Some("application/json"), None, Some(serde_json::to_vec(&cm).unwrap())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("warning").is_some_and(|w| w.to_str().unwrap().contains("unknown field")));
}

async fn errors_are_status_objects(h: &Harness) {
    let r = h.get(&format!("{PODS}/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "pods \"nope\" not found", "reason": "NotFound", "details": {"name": "nope", "kind": "pods"}, "code": 404}));
    let r = h.post(PODS, &pod("dup")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h.post(PODS, &pod("dup")).await;
    assert_eq!((r.status, r.json()["reason"].clone()), (StatusCode::CONFLICT, json!("AlreadyExists")));
    let r = h.post(PODS, &pod("Bad_Name")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["reason"], "Invalid");
    let r = h.request(reqwest::Method::POST, PODS, Some("text/plain"), None, Some(b"hi".to_vec())).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = h.request(reqwest::Method::POST, PODS, Some("application/json"), None, Some(b"{not json".to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["kind"], "Status");
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let r = h.request(reqwest::Method::POST, PODS, Some("application/json"), None, Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = h.post(PODS, &json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.patch(&format!("{PODS}/dup"), "application/json-patch+json", &json!([{"op": "test", "path": "/metadata/name", "value": "other"}])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = h.patch(&format!("{PODS}/dup"), "application/xml", &json!({})).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Conformance: "API Chunking, server should return chunks of results for list calls" and
/// "... should support continue listing from the last key" (expired tokens get 410).
async fn api_chunking_server_should_return_chunks_of_results_for_list_calls(h: &Harness) {
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "chunks"}})).await;
    for i in 0..7 {
        let r = h.post("/api/v1/namespaces/chunks/configmaps", &configmap(&format!("cm-{i}"), json!({"chunk": "yes"}))).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut first_rv = String::new();
    let mut pages = 0;
    loop {
        let mut path = "/api/v1/namespaces/chunks/configmaps?limit=3".to_string();
        if let Some(t) = &token {
            path.push_str(&format!("&continue={}", urlencode(t)));
        }
        let l = h.get(&path).await.json();
        pages += 1;
        if first_rv.is_empty() {
            first_rv = l["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        }
        names.extend(l["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()));
        match l["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => token = Some(c.to_string()),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    // Compact past the token's revision: the continue token has expired.
    let l = h.get("/api/v1/namespaces/chunks/configmaps?limit=2").await.json();
    let tok = l["metadata"]["continue"].as_str().unwrap().to_string();
    for i in 0..3 {
        h.post("/api/v1/namespaces/chunks/configmaps", &configmap(&format!("late-{i}"), json!({}))).await;
    }
    let storage = apiserver::storage::etcd::EtcdStorage::connect(std::slice::from_ref(&h.etcd.endpoint)).await.unwrap();
    use apiserver::storage::Storage;
    let rev = storage.current_revision().await.unwrap();
    storage.compact(rev).await.unwrap();
    let r = h.get(&format!("/api/v1/namespaces/chunks/configmaps?limit=2&continue={}", urlencode(&tok))).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text());
    assert_eq!(r.json()["reason"], "Expired");
    let r = h.get("/api/v1/namespaces/chunks/configmaps?limit=2&continue=garbage").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn selectors(h: &Harness) {
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "sel"}})).await;
    for (n, env) in [("a", "prod"), ("b", "dev"), ("c", "test")] {
        h.post("/api/v1/namespaces/sel/configmaps", &configmap(n, json!({"env": env}))).await;
    }
    let names = |l: Value| -> Vec<String> { l["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect() };
    for (sel, want) in [
        ("env%3Dprod", vec!["a"]),
        ("env!%3Dprod", vec!["b", "c"]),
        ("env%20in%20(dev,test)", vec!["b", "c"]),
        ("env%20notin%20(dev)", vec!["a", "c"]),
        ("env", vec!["a", "b", "c"]),
        ("!env", vec![]),
    ] {
        let l = h.get(&format!("/api/v1/namespaces/sel/configmaps?labelSelector={sel}")).await.json();
        assert_eq!(names(l), want, "{sel}");
    }
    let l = h.get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Dsel,metadata.name!%3Da").await.json();
    assert_eq!(names(l), vec!["b", "c"]);
    assert_eq!(h.get("/api/v1/configmaps?fieldSelector=spec.bogus%3D1").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/api/v1/configmaps?labelSelector=a%20in%20b").await.status, StatusCode::BAD_REQUEST);
}

/// Conformance: "watch-configmaps-from-resource-version".
async fn watch_configmaps_from_resource_version(h: &Harness) {
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "w1"}})).await;
    let base = "/api/v1/namespaces/w1/configmaps";
    let c1 = h.post(base, &configmap("one", json!({}))).await.json();
    let rv1 = c1["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    h.patch(&format!("{base}/one"), "application/merge-patch+json", &json!({"data": {"k": "2"}})).await;
    h.delete(&format!("{base}/one"), None).await;
    // From rv1: the MODIFIED and DELETED that followed, nothing before.
    let r = h.get(&format!("{base}?watch=true&resourceVersion={rv1}&timeoutSeconds=2")).await;
    let types: Vec<String> = r.events().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, vec!["MODIFIED", "DELETED"]);
    // RV=0 gives the current state as synthetic ADDED events.
    h.post(base, &configmap("two", json!({}))).await;
    let r = h.get(&format!("{base}?watch=true&resourceVersion=0&timeoutSeconds=1")).await;
    let ev = r.events();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0]["type"].as_str(), ev[0]["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("two")));
}

/// After a restart the watch cache starts at the current revision: older revisions are gone
/// from its window and get 410 Expired as an ERROR event; the reflector then relists.
async fn watch_from_before_the_cache_window_is_expired(h: &mut Harness) {
    let base = "/api/v1/namespaces/default/configmaps";
    let c = h.post(base, &configmap("old", json!({}))).await.json();
    let rv = c["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    h.post(base, &configmap("newer", json!({}))).await;
    h.api.restart().await.unwrap();
    let r = h.get(&format!("{base}?watch=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = r.events();
    assert_eq!(ev[0]["type"], "ERROR", "{}", r.text());
    assert_eq!(ev[0]["object"]["code"], 410);
    assert_eq!(ev[0]["object"]["reason"], "Expired");
    // Relist and watch from the list's revision: works again.
    let l = h.get(base).await.json();
    let lrv = l["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let r = h.get(&format!("{base}?watch=true&resourceVersion={lrv}&timeoutSeconds=1")).await;
    assert!(r.events().iter().all(|e| e["type"] != "ERROR"));
}

/// Conformance: "watch-configmaps-label-changed": leaving the selector is a DELETED event.
async fn watch_configmaps_label_changed(h: &Harness) {
    h.post("/api/v1/namespaces", &json!({"metadata": {"name": "w2"}})).await;
    let base = "/api/v1/namespaces/w2/configmaps";
    let c = h.post(base, &configmap("lc", json!({"watch-this": "yes"}))).await.json();
    let rv = c["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    h.patch(&format!("{base}/lc"), "application/merge-patch+json", &json!({"metadata": {"labels": {"watch-this": "no"}}})).await;
    h.patch(&format!("{base}/lc"), "application/merge-patch+json", &json!({"data": {"k": "ignored"}})).await;
    h.patch(&format!("{base}/lc"), "application/merge-patch+json", &json!({"metadata": {"labels": {"watch-this": "yes"}}})).await;
    let r = h.get(&format!("{base}?watch=true&labelSelector=watch-this%3Dyes&resourceVersion={rv}&timeoutSeconds=2")).await;
    let types: Vec<String> = r.events().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, vec!["DELETED", "ADDED"]);
}

async fn watch_bookmarks_only_when_asked_and_timeout_ends_stream(h: &Harness) {
    let base = "/api/v1/namespaces/default/configmaps";
    let start = std::time::Instant::now();
    let r = h.get(&format!("{base}?watch=true&resourceVersion=0&timeoutSeconds=2")).await;
    assert!(start.elapsed() < Duration::from_secs(20), "timeoutSeconds must end the stream");
    assert!(r.events().iter().all(|e| e["type"] != "BOOKMARK"));
    // Writes elsewhere move the revision; a bookmark reports it when asked for.
    h.post(base, &configmap("bm", json!({}))).await;
    let list = h.get(base).await.json();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    h.post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "bump"}})).await;
    let r = h.get(&format!("{base}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=3")).await;
    let ev = r.events();
    let bm: Vec<&Value> = ev.iter().filter(|e| e["type"] == "BOOKMARK").collect();
    assert!(!bm.is_empty(), "{}", r.text());
    assert_eq!(bm[0]["object"]["kind"], "ConfigMap");
    assert!(bm[0]["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse::<i64>().unwrap() > rv.parse::<i64>().unwrap());
}

async fn finalizers_hold_deletion(h: &Harness) {
    let mut cm = configmap("held", json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    h.post(CMS, &cm).await;
    let r = h.delete(&format!("{CMS}/held"), Some(&json!({"propagationPolicy": "Foreground"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let got = h.get(&format!("{CMS}/held")).await.json();
    assert!(got["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(got["metadata"]["finalizers"], json!(["example.com/hold", "foregroundDeletion"]));
    let r = h.patch(&format!("{CMS}/held"), "application/merge-patch+json", &json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.get(&format!("{CMS}/held")).await.status, StatusCode::NOT_FOUND);
}

async fn priority_class_admission(h: &Harness) {
    let mut p = pod("critical");
    p["spec"]["priorityClassName"] = json!("system-node-critical");
    let r = h.post(PODS, &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["priority"], 2_000_001_000);
    let tols = r.json()["spec"]["tolerations"].clone();
    assert!(tols.as_array().unwrap().iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] == 300));
    let mut p = pod("nopc");
    p["spec"]["priorityClassName"] = json!("nope");
    assert_eq!(h.post(PODS, &p).await.status, StatusCode::FORBIDDEN);
}

/// [sig-scheduling] SchedulerPreemption PriorityClass endpoints: listed; mutable fields patch
/// and update; value and preemptionPolicy are immutable (422).
async fn scheduler_preemption_priority_class_endpoints_with_different_http_methods(h: &Harness) {
    const PCS: &str = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "p1"}, "value": 100});
    assert_eq!(h.post(PCS, &pc).await.status, StatusCode::CREATED);
    let names: Vec<String> = h.get(PCS).await.json()["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"p1".to_string()) && names.contains(&"system-node-critical".to_string()), "{names:?}");
    let r = h.patch(&format!("{PCS}/p1"), "application/merge-patch+json", &json!({"description": "patched"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut cur = r.json();
    cur["description"] = json!("updated");
    assert_eq!(h.put(&format!("{PCS}/p1"), &cur).await.status, StatusCode::OK);
    let r = h.patch(&format!("{PCS}/p1"), "application/merge-patch+json", &json!({"value": 101})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["details"]["causes"][0]["field"], "value");
    let mut cur = h.get(&format!("{PCS}/p1")).await.json();
    cur["preemptionPolicy"] = json!("Never");
    assert_eq!(h.put(&format!("{PCS}/p1"), &cur).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reserved = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-mine"}, "value": 1});
    assert_eq!(h.post(PCS, &reserved).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.get(&format!("{PCS}/p1")).await.json()["value"], 100);
}

async fn metrics_count_requests(h: &Harness) {
    let text = h.get("/metrics").await.text();
    assert!(text.contains("apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"201\"}"), "{text}");
    assert!(text.contains("apiserver_request_duration_seconds_bucket"));
}

/// Thousands of garbled JSON, YAML and protobuf bodies: every answer is a 4xx Status, never a
/// 5xx or a dropped connection, and the server still answers correctly afterwards.
#[tokio::test]
async fn malformed_bodies_get_upstream_answers() {
    use rand::{Rng, SeedableRng};
    let h = Harness::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let valid = serde_json::to_vec(&pod("seed")).unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        valid.clone(),
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {containers: [{name: c, image: busybox}]}\n".to_vec(),
        b"k8s\x00\x0a\x0a\x0a\x02v1\x12\x03Pod\x12\x05hello".to_vec(),
        br#"[{"op":"add","path":"/metadata/labels/a","value":"b"}]"#.to_vec(),
    ];
    let types = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
    let patch_types = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"];
    h.post(PODS, &pod("target")).await;
    let mut count = 0;
    for i in 0..2400 {
        let mut body = seeds[rng.random_range(0..seeds.len())].clone();
        let n = rng.random_range(1..8);
        for _ in 0..n {
            if body.is_empty() {
                break;
            }
            let at = rng.random_range(0..body.len());
            match rng.random_range(0..4) {
                0 => body[at] = rng.random(),
                1 => {
                    body.remove(at);
                }
                2 => {
                    let junk = b"{}[]\":,\\\x00";
                    body.insert(at, junk[rng.random_range(0..junk.len())]);
                }
                _ => body.truncate(at),
            }
        }
        let r = if i % 3 == 2 {
            let ct = patch_types[rng.random_range(0..patch_types.len())];
            h.request(reqwest::Method::PATCH, &format!("{PODS}/target"), Some(ct), None, Some(body)).await
        } else {
            let ct = types[rng.random_range(0..types.len())];
            let method = if i % 3 == 0 { reqwest::Method::POST } else { reqwest::Method::PUT };
            let path = if method == reqwest::Method::POST { PODS.to_string() } else { format!("{PODS}/target") };
            h.request(method, &path, Some(ct), None, Some(body)).await
        };
        assert!(r.status.as_u16() < 500, "5xx for a malformed body: {} {}", r.status, r.text());
        if !r.status.is_success() {
            assert_eq!(r.json()["kind"], "Status", "{}", r.text());
        }
        count += 1;
    }
    assert_eq!(count, 2400);
    // Still healthy and correct.
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);
    let r = h.post(PODS, &pod("after-fuzz")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(h.get(&format!("{PODS}/after-fuzz")).await.json()["metadata"]["name"], "after-fuzz");
}

/// With etcd stopped, requests get a 5xx Status (503/500) quickly; when etcd returns the server
/// recovers by itself, and a watcher resumes from its last resourceVersion with nothing lost or
/// duplicated.
#[tokio::test]
async fn etcd_outage_is_503_and_recovers() {
    let mut h = Harness::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let c = h.post(base, &configmap("before", json!({}))).await.json();
    let rv = c["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    h.etcd.stop();
    let r = h.post(base, &configmap("during", json!({}))).await;
    assert!(r.status == StatusCode::SERVICE_UNAVAILABLE || r.status == StatusCode::INTERNAL_SERVER_ERROR, "{} {}", r.status, r.text());
    assert_eq!(r.json()["kind"], "Status");
    if r.status == StatusCode::SERVICE_UNAVAILABLE {
        assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"), "a 503 says when to retry");
    }
    let r = h.get(&format!("{base}/before")).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    assert_eq!(h.get("/readyz").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    h.etcd.restart().await.unwrap();
    testkit::wait_for(Duration::from_secs(60), || async { (h.get("/readyz").await.status == StatusCode::OK).then_some(()) })
        .await
        .expect("readyz after etcd returns");
    let mut names = Vec::new();
    for i in 0..5 {
        let r = h.post(base, &configmap(&format!("after-{i}"), json!({}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        names.push(format!("after-{i}"));
    }
    // Resume from the RV seen before the outage: exactly the five creations, in order.
    let r = h.get(&format!("{base}?watch=true&resourceVersion={rv}&timeoutSeconds=2")).await;
    let got: Vec<String> = r.events().iter().map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["object"]["metadata"]["name"].as_str().unwrap())).collect();
    let want: Vec<String> = names.iter().map(|n| format!("ADDED {n}")).collect();
    assert_eq!(got, want);
}

/// Conformance: "watch-configmaps-with-multiple-watchers": many watchers on one cache all see
/// the same events in the same order.
#[tokio::test]
async fn watch_configmaps_with_multiple_watchers() {
    let h = Arc::new(Harness::start().await);
    let base = "/api/v1/namespaces/default/configmaps";
    let rv = h.get(base).await.json()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut watchers = Vec::new();
    for _ in 0..20 {
        let h = h.clone();
        let rv = rv.clone();
        watchers.push(tokio::spawn(async move {
            let r = h.get(&format!("{base}?watch=true&resourceVersion={rv}&timeoutSeconds=3")).await;
            r.events().iter().map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["object"]["metadata"]["name"].as_str().unwrap())).collect::<Vec<_>>()
        }));
    }
    // client-go clients configured for protobuf watch with it.
    let proto = {
        let h = h.clone();
        let rv = rv.clone();
        tokio::spawn(async move {
            let accept = "application/vnd.kubernetes.protobuf;stream=watch, application/json";
            h.get_accept(&format!("{base}?watch=true&resourceVersion={rv}&timeoutSeconds=3"), accept).await
        })
    };
    for i in 0..10 {
        h.post(base, &configmap(&format!("m{i}"), json!({}))).await;
    }
    let want: Vec<String> = (0..10).map(|i| format!("ADDED m{i}")).collect();
    for w in watchers {
        assert_eq!(w.await.unwrap(), want);
    }
    let r = proto.await.unwrap();
    assert_eq!(r.headers["content-type"], "application/vnd.kubernetes.protobuf;stream=watch");
    assert_eq!(protobuf_watch_events(&r.body), want);
}

/// Upstream's protobuf watch framing: a 4-byte big-endian length, then a meta/v1 WatchEvent
/// (1: type, 2: RawExtension with the object in the protobuf envelope). "TYPE name" each.
fn protobuf_watch_events(body: &[u8]) -> Vec<String> {
    use apiserver::protobuf::wire::Reader;
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let event = &rest[4..4 + n];
        rest = &rest[4 + n..];
        let (mut kind, mut raw) = (String::new(), Vec::new());
        let mut r = Reader::new(event);
        while !r.done() {
            let (field, wire) = r.tag().unwrap();
            match field {
                1 => kind = String::from_utf8(r.bytes().unwrap().to_vec()).unwrap(),
                2 => {
                    let mut ext = Reader::new(r.bytes().unwrap());
                    while !ext.done() {
                        let (f, w) = ext.tag().unwrap();
                        if f == 1 { raw = ext.bytes().unwrap().to_vec() } else { ext.skip(w).unwrap() }
                    }
                }
                _ => r.skip(wire).unwrap(),
            }
        }
        let obj = apiserver::protobuf::decode(&raw).unwrap();
        assert_eq!(obj["kind"], "ConfigMap");
        out.push(format!("{kind} {}", obj["metadata"]["name"].as_str().unwrap()));
    }
    assert!(rest.is_empty(), "a partial frame was left");
    out
}

/// A stand-in kubelet (HTTPS, serving the CONTRACTS.md endpoints) proves the apiserver proxies
/// pods/log as a stream and relays pods/exec WebSocket frames both ways.
#[tokio::test]
async fn pods_log_and_exec_are_proxied_to_the_kubelet() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use futures::{SinkExt, StreamExt};
    let h = Harness::start().await;
    // The kubelet trusts the cluster CA for client certificates (its --client-ca-file).
    let certs = apiserver::auth::certs::ensure_server_certs(&h.api.cert_dir, "127.0.0.1").unwrap();
    let kubelet = axum::Router::new()
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            axum::routing::get(|axum::extract::Path((ns, pod, c)): axum::extract::Path<(String, String, String)>, q: axum::extract::RawQuery| async move {
                format!("log of {ns}/{pod}/{c} {}\n", q.0.unwrap_or_default())
            }),
        )
        .route(
            "/exec/{ns}/{pod}/{container}",
            axum::routing::get(|ws: WebSocketUpgrade| async move {
                ws.protocols(["v5.channel.k8s.io"]).on_upgrade(|mut socket| async move {
                    // Echo stdin (channel 0) back on stdout (channel 1), then report success.
                    if let Some(Ok(Message::Binary(b))) = socket.recv().await {
                        let mut out = vec![1u8];
                        out.extend_from_slice(&b[1..]);
                        let _ = socket.send(Message::Binary(out.into())).await;
                    }
                    let _ = socket.send(Message::Binary([&[3u8][..], br#"{"status":"Success"}"#].concat().into())).await;
                    let _ = socket.close().await;
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = apiserver::auth::tls::server_config(&certs).unwrap();
    tokio::spawn(apiserver::auth::tls::serve(listener, tls, kubelet));
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "k1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
    assert_eq!(h.post("/api/v1/nodes", &node).await.status, StatusCode::CREATED);
    h.post(PODS, &pod("logged")).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "logged"}, "target": {"kind": "Node", "name": "k1"}});
    assert_eq!(h.post(&format!("{PODS}/logged/binding"), &binding).await.status, StatusCode::CREATED);
    let r = h.get(&format!("{PODS}/logged/log?tailLines=5&follow=true")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "log of default/logged/c tailLines=5&follow=true\n");
    assert_eq!(h.get(&format!("{PODS}/logged/log?container=nope")).await.status, StatusCode::BAD_REQUEST);
    // exec over WebSocket v5.
    let url = format!("{}{PODS}/logged/exec?command=cat&stdin=true&stdout=true", h.api.url.replacen("https", "wss", 1));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().unwrap());
    req.headers_mut().insert("Authorization", format!("Bearer {}", support::TOKEN).parse().unwrap());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(h.api.ca_file()).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut ws, resp) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(tokio_tungstenite::Connector::Rustls(Arc::new(cfg))))
        .await
        .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
    ws.send(tokio_tungstenite::tungstenite::Message::Binary([&[0u8][..], b"hello"].concat().into())).await.unwrap();
    let mut frames = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = m {
            frames.push(b.to_vec());
        }
    }
    assert_eq!(frames[0], [&[1u8][..], b"hello"].concat());
    assert_eq!(frames[1][0], 3);
    assert!(String::from_utf8_lossy(&frames[1][1..]).contains("Success"));
}

/// The watch cache over a real etcd loses no event and duplicates none while writers burst and
/// consistent reads run at the same time; and a consistent read right after a write sees it.
/// (etcd 3.4's requested progress notifications can overtake queued events: etcd-io/etcd#15220.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_cache_loses_no_event_under_a_burst_with_consistent_reads() {
    use apiserver::storage::Storage;
    use apiserver::watch_cache::{EventType, WatchCache};
    let etcd = testkit::Etcd::start().await;
    let s = Arc::new(apiserver::storage::etcd::EtcdStorage::connect(std::slice::from_ref(&etcd.endpoint)).await.unwrap());
    let cache = WatchCache::start(s.clone(), "/registry/pods/".into(), "Pod", "v1".into());
    cache.wait_fresh(Duration::from_secs(10)).await.unwrap();
    let mut sub = cache.subscribe("/registry/pods/", Some(cache.revision())).unwrap();
    const WRITERS: usize = 16;
    const EACH: usize = 150;
    let body = bytes::Bytes::from(serde_json::to_vec(&pod("p")).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Consistent readers: each asks the cache to prove it is fresh, as a list with RV="" does.
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (cache, stop) = (cache.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = cache.wait_fresh(Duration::from_secs(5)).await;
            }
        }));
    }
    // Writes under another prefix move the global revision past the pods' events.
    let other = {
        let (s, stop, body) = (s.clone(), stop.clone(), body.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = s.create(&format!("/registry/configmaps/default/c{i}"), body.clone()).await;
                i += 1;
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (s, cache, body) = (s.clone(), cache.clone(), body.clone());
        writers.push(tokio::spawn(async move {
            let mut stale = 0;
            for i in 0..EACH {
                let key = format!("/registry/pods/default/w{w}-{i}");
                s.create(&key, body.clone()).await.unwrap();
                // Read-your-writes: a consistent read after the create must contain it.
                cache.wait_fresh(Duration::from_secs(5)).await.unwrap();
                if cache.get(&key).is_none() {
                    stale += 1;
                }
            }
            stale
        }));
    }
    let mut stale = 0;
    for w in writers {
        stale += w.await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let mut last_rv = 0;
    let (mut last_seq, mut replay) = (sub.start_seq, std::collections::VecDeque::new());
    while seen.len() < WRITERS * EACH {
        let e = match replay.pop_front() {
            Some(e) => e,
            None => match tokio::time::timeout(Duration::from_secs(10), sub.live.recv()).await {
                Ok(Ok(e)) => e,
                // Behind the live ring, as a watcher that stopped reading: go on from the
                // history, as the watch handler does.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    sub = cache.resume("/registry/pods/", last_seq).expect("the history reaches back");
                    replay.extend(sub.initial.drain(..));
                    continue;
                }
                other => panic!("after {} of {} events: {other:?}", seen.len(), WRITERS * EACH),
            },
        };
        if e.seq <= last_seq {
            continue;
        }
        last_seq = e.seq;
        assert_eq!(e.kind, EventType::Added);
        assert!(e.rv > last_rv, "events out of order: {} after {last_rv}", e.rv);
        last_rv = e.rv;
        assert!(seen.insert(e.object.key.clone()), "duplicate event for {}", e.object.key);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(cache.snapshot("/registry/pods/").0.len(), WRITERS * EACH);
    assert_eq!(stale, 0, "consistent reads that missed the caller's own create");
}

/// A write whose outcome is unknown (etcd frozen after the request went out) is answered 504
/// Timeout, never 503: a 503 tells the client nothing happened, and etcd may still commit it.
#[tokio::test]
async fn a_write_that_may_have_committed_is_a_504_not_a_503() {
    let mut h = Harness::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    assert_eq!(h.post(base, &configmap("warm", json!({}))).await.status, StatusCode::CREATED);
    h.etcd.pause();
    let r = h.post(base, &configmap("frozen", json!({}))).await;
    h.etcd.resume();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.json()["reason"], "Timeout");
    // Whatever etcd did with it, the server answers again and the object is there at most once.
    testkit::wait_for(Duration::from_secs(60), || async { (h.get("/readyz").await.status == StatusCode::OK).then_some(()) })
        .await
        .expect("readyz after etcd resumes");
    let names: Vec<String> = h.get(base).await.json()["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert!(names.iter().filter(|n| *n == "frozen").count() <= 1, "{names:?}");
}
