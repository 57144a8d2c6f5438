//! The resource quota controller against a real apiserver and etcd: each
//! quota's status.hard and status.used follow the namespace's objects.
//! Named after the upstream conformance tests they prove.

mod common;

use std::collections::BTreeMap;

use common::{set_pod_status, Env, TIMEOUT};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

async fn namespace(env: &Env, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(env.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    // Pods need the namespace's default ServiceAccount.
    let sas: Api<ServiceAccount> = env.api(name);
    testkit::wait_for_or(TIMEOUT, "the default ServiceAccount", || async { sas.get_opt("default").await.ok().flatten() })
        .await
        .unwrap();
}

fn quota(name: &str, hard: serde_json::Value, scopes: &[&str]) -> ResourceQuota {
    let mut spec = json!({"hard": hard});
    if !scopes.is_empty() {
        spec["scopes"] = json!(scopes);
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": spec})).unwrap()
}

fn as_map(list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>) -> BTreeMap<String, String> {
    list.into_iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Wait until the quota's status.used is `want` and status.hard its spec.hard.
async fn wait_used(env: &Env, ns: &str, name: &str, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let api: Api<ResourceQuota> = env.api(ns);
    let r = testkit::wait_for_or(TIMEOUT, &format!("{ns}/{name} used {want:?}"), || async {
        let q = api.get(name).await.ok()?;
        let st = q.status.as_ref()?;
        let hard_ok = st.hard.as_ref()?.len() == q.spec.as_ref()?.hard.as_ref()?.len();
        (hard_ok && as_map(st.used.as_ref()) == want).then_some(())
    })
    .await;
    if let Err(e) = r {
        let last = api.get(name).await.ok().and_then(|q| q.status);
        panic!("{e}; last status {last:?}\ncontroller-manager log:\n{}", env.cm.log_tail(4000));
    }
}

fn pod(name: &str, cpu: Option<&str>, memory: Option<&str>) -> Pod {
    let mut resources = json!({});
    if let (Some(c), Some(m)) = (cpu, memory) {
        resources = json!({"requests": {"cpu": c, "memory": m}, "limits": {"cpu": c, "memory": m}});
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}
    }))
    .unwrap()
}

/// Conformance: "ResourceQuota, object count quota, resourcequotas" (status
/// promptly calculated) and "object count quota, configmap" (a ConfigMap's
/// creation is captured in status.used and its deletion released).
#[tokio::test]
async fn resource_quota_captures_the_life_of_a_configmap() {
    let env = Env::start(&[]).await;
    namespace(&env, "rq-cm").await;
    // Every namespace holds kube-root-ca.crt (the root CA publisher), which the quota counts
    // as upstream's conformance test expects: wait for it, so usage starts at 1.
    let cms: Api<ConfigMap> = env.api("rq-cm");
    testkit::wait_for_or(TIMEOUT, "kube-root-ca.crt published in rq-cm", || async { cms.get("kube-root-ca.crt").await.ok().map(|_| ()) })
        .await
        .unwrap();
    let quotas: Api<ResourceQuota> = env.api("rq-cm");
    quotas
        .create(&PostParams::default(), &quota("test-quota", json!({"configmaps": "3", "resourcequotas": "1", "count/configmaps": "3"}), &[]))
        .await
        .unwrap();
    wait_used(&env, "rq-cm", "test-quota", &[("configmaps", "1"), ("count/configmaps", "1"), ("resourcequotas", "1")]).await;
    let q = quotas.get("test-quota").await.unwrap();
    assert_eq!(as_map(q.status.as_ref().unwrap().hard.as_ref()), as_map(q.spec.as_ref().unwrap().hard.as_ref()));

    let cm: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "b"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    wait_used(&env, "rq-cm", "test-quota", &[("configmaps", "2"), ("count/configmaps", "2"), ("resourcequotas", "1")]).await;
    cms.delete("c1", &DeleteParams::default()).await.unwrap();
    wait_used(&env, "rq-cm", "test-quota", &[("configmaps", "1"), ("count/configmaps", "1"), ("resourcequotas", "1")]).await;

    // Patching spec.hard is reflected in status.hard.
    env.kubectl_ok(&["-n", "rq-cm", "patch", "quota", "test-quota", "--type=merge", "-p", r#"{"spec":{"hard":{"configmaps":"5"}}}"#])
        .await;
    testkit::wait_for_or(TIMEOUT, "status.hard follows the patched spec", || async {
        let st = quotas.get("test-quota").await.ok()?.status?;
        (st.hard?.get("configmaps")?.0 == "5").then_some(())
    })
    .await
    .unwrap();
}

/// Conformance: "ResourceQuota, object count quota, pod": a pod's requests
/// are captured, a terminal pod stops charging (but still counts under
/// count/pods), and deleting it releases everything.
#[tokio::test]
async fn resource_quota_captures_the_life_of_a_pod() {
    let env = Env::start(&[]).await;
    namespace(&env, "rq-pod").await;
    let quotas: Api<ResourceQuota> = env.api("rq-pod");
    let hard = json!({"pods": "2", "count/pods": "5", "requests.cpu": "1", "requests.memory": "1Gi", "limits.memory": "2Gi"});
    quotas.create(&PostParams::default(), &quota("compute", hard, &[])).await.unwrap();
    let zero = [("count/pods", "0"), ("limits.memory", "0"), ("pods", "0"), ("requests.cpu", "0"), ("requests.memory", "0")];
    wait_used(&env, "rq-pod", "compute", &zero).await;

    let pods: Api<Pod> = env.api("rq-pod");
    pods.create(&PostParams::default(), &pod("p1", Some("500m"), Some("256Mi"))).await.unwrap();
    wait_used(
        &env,
        "rq-pod",
        "compute",
        &[("count/pods", "1"), ("limits.memory", "256Mi"), ("pods", "1"), ("requests.cpu", "500m"), ("requests.memory", "256Mi")],
    )
    .await;
    // A pod that would exceed requests.cpu is refused by admission.
    let refused = pods.create(&PostParams::default(), &pod("too-big", Some("600m"), Some("1Mi"))).await;
    assert!(matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota: compute")), "{refused:?}");

    set_pod_status(&pods, "p1", "Succeeded", false, "10.0.0.9").await;
    wait_used(
        &env,
        "rq-pod",
        "compute",
        &[("count/pods", "1"), ("limits.memory", "0"), ("pods", "0"), ("requests.cpu", "0"), ("requests.memory", "0")],
    )
    .await;
    pods.delete("p1", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_used(&env, "rq-pod", "compute", &zero).await;
}

/// Conformance: "ResourceQuota, quota scope, BestEffort and NotBestEffort
/// scope" and "Terminating and NotTerminating scope": each scoped quota
/// counts only the pods in its scope.
#[tokio::test]
async fn resource_quota_scopes_count_only_their_pods() {
    let env = Env::start(&[]).await;
    namespace(&env, "rq-scope").await;
    let quotas: Api<ResourceQuota> = env.api("rq-scope");
    for (name, scope) in [("best", "BestEffort"), ("not-best", "NotBestEffort"), ("terminating", "Terminating"), ("not-terminating", "NotTerminating")] {
        quotas.create(&PostParams::default(), &quota(name, json!({"pods": "5"}), &[scope])).await.unwrap();
    }
    let pods: Api<Pod> = env.api("rq-scope");
    pods.create(&PostParams::default(), &pod("best-effort", None, None)).await.unwrap();
    let mut deadline = pod("burstable-deadline", Some("100m"), Some("64Mi"));
    deadline.spec.as_mut().unwrap().active_deadline_seconds = Some(3600);
    pods.create(&PostParams::default(), &deadline).await.unwrap();
    wait_used(&env, "rq-scope", "best", &[("pods", "1")]).await;
    wait_used(&env, "rq-scope", "not-best", &[("pods", "1")]).await;
    wait_used(&env, "rq-scope", "terminating", &[("pods", "1")]).await;
    wait_used(&env, "rq-scope", "not-terminating", &[("pods", "1")]).await;
    pods.delete("best-effort", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_used(&env, "rq-scope", "best", &[("pods", "0")]).await;
    wait_used(&env, "rq-scope", "not-terminating", &[("pods", "0")]).await;
    wait_used(&env, "rq-scope", "terminating", &[("pods", "1")]).await;
}

/// Conformance: "ResourceQuota, object count quota, service" plus node
/// ports, and counts of kinds the controller does not cache (listed from
/// the API) or that the API does not serve (nothing counted).
#[tokio::test]
async fn resource_quota_counts_services_node_ports_and_any_served_kind() {
    let env = Env::start(&[]).await;
    namespace(&env, "rq-svc").await;
    let sas: Api<ServiceAccount> = env.api("rq-svc");
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "extra"}})).unwrap())
        .await
        .unwrap();
    let quotas: Api<ResourceQuota> = env.api("rq-svc");
    let hard = json!({
        "services": "3", "services.nodeports": "2", "services.loadbalancers": "1",
        "count/serviceaccounts": "10", "count/widgets.example.com": "1"
    });
    quotas.create(&PostParams::default(), &quota("objects", hard, &[])).await.unwrap();
    wait_used(
        &env,
        "rq-svc",
        "objects",
        &[("count/serviceaccounts", "2"), ("services", "0"), ("services.loadbalancers", "0"), ("services.nodeports", "0")],
    )
    .await;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    env.api::<Service>("rq-svc").create(&PostParams::default(), &svc).await.unwrap();
    wait_used(
        &env,
        "rq-svc",
        "objects",
        &[("count/serviceaccounts", "2"), ("services", "1"), ("services.loadbalancers", "0"), ("services.nodeports", "1")],
    )
    .await;
    let described = env.kubectl_ok(&["-n", "rq-svc", "describe", "quota", "objects"]).await;
    assert!(described.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["services", "1", "3"]), "{described}");
}
