//! Service IP and NodePort allocation against a real etcd and apiserver: what is handed out,
//! what is refused with upstream's 422, what survives a restart, what two apiservers sharing
//! etcd agree on, and what repair frees. Plus the default/kubernetes Service and endpoints.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use support::Harness;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn svc(name: &str, spec: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}});
    json_patch::merge(&mut s["spec"], &spec);
    s
}

fn in_range(ip: &str, base: [u8; 2]) -> bool {
    ip.parse::<Ipv4Addr>().is_ok_and(|a| a.octets()[..2] == base)
}

fn cause_message(r: &support::Reply, field: &str) -> String {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let st = r.json();
    assert_eq!(st["reason"], "Invalid");
    let causes = st["details"]["causes"].as_array().cloned().unwrap_or_default();
    causes
        .iter()
        .find(|c| c["field"] == field)
        .and_then(|c| c["message"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no cause on {field}: {st}"))
}

#[tokio::test]
async fn cluster_ips_are_allocated_requested_or_refused() {
    let h = Harness::start().await;
    let r = h.post(SVCS, &svc("a", json!({}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let a = r.json();
    let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(in_range(&ip, [10, 96]), "{ip}");
    assert_ne!(ip, "10.96.0.1", "the first address is the kubernetes Service's");
    assert_eq!(a["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(a["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(a["spec"]["ipFamilyPolicy"], "SingleStack");

    // Requested, honoured.
    let r = h.post(SVCS, &svc("b", json!({"clusterIP": "10.96.7.7"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["clusterIPs"], json!(["10.96.7.7"]));
    // clusterIPs alone names it too.
    let r = h.post(SVCS, &svc("b2", json!({"clusterIPs": ["10.96.7.8"]}))).await;
    assert_eq!(r.json()["spec"]["clusterIP"], "10.96.7.8", "{}", r.text());

    // Taken, out of range, malformed.
    let msg = cause_message(&h.post(SVCS, &svc("c", json!({"clusterIP": "10.96.7.7"}))).await, "spec.clusterIPs");
    assert_eq!(msg, r#"Invalid value: []string{"10.96.7.7"}: failed to allocate IP 10.96.7.7: provided IP is already allocated"#);
    let r = h.post(SVCS, &svc("c", json!({"clusterIP": "10.0.0.1"}))).await;
    let msg = cause_message(&r, "spec.clusterIPs");
    assert_eq!(msg, r#"Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16"#);
    assert!(r.json()["message"].as_str().unwrap().starts_with("Service \"c\" is invalid: spec.clusterIPs: Invalid value"), "{}", r.text());
    cause_message(&h.post(SVCS, &svc("c", json!({"clusterIP": "not-an-ip"}))).await, "spec.clusterIPs[0]");
    // The network and broadcast addresses are not in the range either.
    cause_message(&h.post(SVCS, &svc("c", json!({"clusterIP": "10.96.255.255"}))).await, "spec.clusterIPs");
    cause_message(&h.post(SVCS, &svc("c", json!({"ipFamilies": ["IPv6"]}))).await, "spec.ipFamilies[0]");
    cause_message(&h.post(SVCS, &svc("c", json!({"ipFamilyPolicy": "RequireDualStack"}))).await, "spec.ipFamilyPolicy");
    assert_eq!(h.get(&format!("{SVCS}/c")).await.status, StatusCode::NOT_FOUND, "a refused create leaves nothing");

    // Headless takes nothing.
    let r = h.post(SVCS, &svc("headless", json!({"clusterIP": "None"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["spec"]["clusterIPs"], json!(["None"]));

    // Delete releases.
    assert_eq!(h.delete(&format!("{SVCS}/b"), None).await.status, StatusCode::OK);
    let r = h.post(SVCS, &svc("b3", json!({"clusterIP": "10.96.7.7"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "a deleted Service's IP is free again: {}", r.text());

    // An update keeps the IP even when the client omits it; changing it is refused.
    let mut cur = h.get(&format!("{SVCS}/b3")).await.json();
    cur["spec"].as_object_mut().unwrap().remove("clusterIP");
    cur["spec"].as_object_mut().unwrap().remove("clusterIPs");
    cur["metadata"]["labels"] = json!({"x": "y"});
    let r = h.put(&format!("{SVCS}/b3"), &cur).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["spec"]["clusterIP"], "10.96.7.7");
    let mut cur = r.json();
    cur["spec"]["clusterIP"] = json!("10.96.7.9");
    cur["spec"]["clusterIPs"] = json!(["10.96.7.9"]);
    assert_eq!(h.put(&format!("{SVCS}/b3"), &cur).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Type ExternalName gives the IP back.
    let r = h.patch(&format!("{SVCS}/b3"), "application/merge-patch+json", &json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["spec"].get("clusterIP").is_none(), "{}", r.text());
    let r = h.post(SVCS, &svc("b4", json!({"clusterIP": "10.96.7.7"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "ExternalName released the IP: {}", r.text());
    // And back: ExternalName -> ClusterIP allocates one.
    let r = h.patch(&format!("{SVCS}/b3"), "application/merge-patch+json", &json!({"spec": {"type": "ClusterIP", "externalName": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(in_range(r.json()["spec"]["clusterIP"].as_str().unwrap_or(""), [10, 96]), "{}", r.text());
}

#[tokio::test]
async fn node_ports_are_allocated_unique_and_in_range() {
    let h = Harness::start_with(&["--service-node-port-range", "30000-30100"]).await;
    let r = h.post(SVCS, &svc("np", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30050}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let np = r.json();
    let first = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=30100).contains(&first), "{first}");
    assert_eq!(np["spec"]["ports"][1]["nodePort"], 30050);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");

    let msg = cause_message(&h.post(SVCS, &svc("dup", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30050}]}))).await, "spec.ports[0].nodePort");
    assert_eq!(msg, "Invalid value: 30050: provided port is already allocated");
    let msg = cause_message(&h.post(SVCS, &svc("out", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}))).await, "spec.ports[0].nodePort");
    assert_eq!(msg, "Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30100");
    cause_message(&h.post(SVCS, &svc("cip", json!({"ports": [{"port": 80, "nodePort": 30060}]}))).await, "spec.ports[0].nodePort");
    cause_message(&h.post(SVCS, &svc("port", json!({"ports": [{"port": 70000}]}))).await, "spec.ports[0].port");
    // A refused NodePort create gave its cluster IP back: the same IP can be asked for now.
    let r = h.post(SVCS, &svc("dup2", json!({"clusterIP": "10.96.9.9", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30050}]}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.post(SVCS, &svc("ip", json!({"clusterIP": "10.96.9.9"}))).await.status, StatusCode::CREATED);

    // The same port number for TCP and UDP of one Service is one node port.
    let r = h.post(SVCS, &svc("dns", json!({"type": "NodePort", "ports": [{"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053}, {"name": "t", "port": 53, "protocol": "TCP", "nodePort": 30053}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // LoadBalancer: node ports, and Pending (no ingress) without a cloud provider.
    let r = h.post(SVCS, &svc("lb", json!({"type": "LoadBalancer"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let lb = r.json();
    assert!(lb["spec"]["ports"][0]["nodePort"].as_u64().is_some(), "{lb}");
    assert_eq!(lb["status"]["loadBalancer"], json!({}));

    // ClusterIP -> NodePort allocates; NodePort -> ClusterIP releases.
    let r = h.post(SVCS, &svc("flip", json!({}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h.patch(&format!("{SVCS}/flip"), "application/merge-patch+json", &json!({"spec": {"type": "NodePort"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let port = r.json()["spec"]["ports"][0]["nodePort"].as_u64().expect("a node port after the type change");
    let r = h.patch(&format!("{SVCS}/flip"), "application/merge-patch+json", &json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["spec"]["ports"][0].get("nodePort").is_none(), "{}", r.text());
    let r = h.post(SVCS, &svc("reuse", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "the released port is free: {}", r.text());
    // An update asking for a taken port is refused and changes nothing.
    let r = h.patch(&format!("{SVCS}/reuse"), "application/merge-patch+json", &json!({"spec": {"ports": [{"port": 80, "nodePort": 30050}]}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(h.get(&format!("{SVCS}/reuse")).await.json()["spec"]["ports"][0]["nodePort"], port);
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_apiserver() {
    let h = Harness::start().await;
    let port = h.api.port;
    let svc = testkit::wait_for(Duration::from_secs(30), || async {
        let r = h.get(&format!("{SVCS}/kubernetes")).await;
        (r.status == StatusCode::OK).then(|| r.json())
    })
    .await
    .expect("default/kubernetes");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port);
    let slice = testkit::wait_for(Duration::from_secs(30), || async {
        let r = h.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").await;
        (r.status == StatusCode::OK).then(|| r.json())
    })
    .await
    .expect("the kubernetes EndpointSlice");
    assert_eq!(slice["endpoints"][0]["addresses"], json!(["127.0.0.1"]));
    assert_eq!(slice["ports"][0]["port"], port);
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    let eps = h.get("/api/v1/namespaces/default/endpoints/kubernetes").await.json();
    assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "127.0.0.1", "{eps}");
    // Nobody else may take its address.
    cause_message(&h.post(SVCS, &svc_named("x", "10.96.0.1")).await, "spec.clusterIPs");
}

fn svc_named(name: &str, ip: &str) -> Value {
    svc(name, json!({"clusterIP": ip}))
}

#[tokio::test]
async fn allocations_survive_a_restart() {
    let mut h = Harness::start().await;
    assert_eq!(h.post(SVCS, &svc_named("keep", "10.96.3.3")).await.status, StatusCode::CREATED);
    let r = h.post(SVCS, &svc("np", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30333}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    h.api.restart().await.expect("restart");
    let r = h.post(SVCS, &svc_named("again", "10.96.3.3")).await;
    assert!(cause_message(&r, "spec.clusterIPs").ends_with("provided IP is already allocated"));
    let r = h.post(SVCS, &svc("np2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30333}]}))).await;
    assert!(cause_message(&r, "spec.ports[0].nodePort").ends_with("provided port is already allocated"));
}

/// A second apiserver on the same etcd, with its own CA and a token of its own.
async fn second_apiserver(h: &Harness, extra: &[&str]) -> (testkit::ApiServer, reqwest::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{},admin,admin-uid,\"system:masters\"\n", support::TOKEN)).unwrap();
    let mut args = vec!["--token-auth-file".to_string(), tokens.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let api = testkit::ApiServer::start_with_args(&h.etcd, &args).await;
    let ca = std::fs::read(api.ca_file()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    (api, http, dir)
}

#[tokio::test]
async fn two_apiservers_never_hand_out_the_same_ip() {
    let h = Harness::start().await;
    let (api2, http2, _dir) = second_apiserver(&h, &[]).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (url, http) = if i % 2 == 0 { (h.api.url.clone(), h.http.clone()) } else { (api2.url.clone(), http2.clone()) };
        tasks.push(tokio::spawn(async move {
            let r = http.post(format!("{url}{SVCS}")).bearer_auth(support::TOKEN).json(&svc(&format!("s{i}"), json!({}))).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let v: Value = r.json().await.unwrap();
            v["spec"]["clusterIP"].as_str().unwrap().to_string()
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let ip = t.await.unwrap();
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }
    // Both apiservers keep their lease; the kubernetes Service names the shared address once.
    let eps = h.get("/api/v1/namespaces/default/endpoints/kubernetes").await.json();
    assert_eq!(eps["subsets"][0]["addresses"].as_array().map(Vec::len), Some(1), "{eps}");
}

#[tokio::test]
async fn repair_frees_a_leaked_ip() {
    let h = Harness::start_with(&["--service-allocation-repair-interval", "300ms"]).await;
    assert_eq!(h.post(SVCS, &svc_named("leak", "10.96.5.5")).await.status, StatusCode::CREATED);
    // The Service vanishes behind the apiserver's back: its IP leaks.
    let etcd = apiserver::storage::etcd::EtcdStorage::connect(std::slice::from_ref(&h.etcd.endpoint)).await.unwrap();
    use apiserver::storage::Storage;
    etcd.delete("/registry/services/default/leak", None).await.unwrap();
    testkit::wait_for(Duration::from_secs(30), || async {
        (h.post(SVCS, &svc_named("leak2", "10.96.5.5")).await.status == StatusCode::CREATED).then_some(())
    })
    .await
    .expect("repair frees the leaked IP");
}
