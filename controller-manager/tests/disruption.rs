//! The disruption controller against a real apiserver and etcd (no
//! kubelets: the tests set pod readiness themselves), with the apiserver's
//! pods/eviction spending what the controller allows. Named after the
//! upstream conformance tests they prove.

mod common;

use common::{Env, TIMEOUT};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    }))
    .unwrap()
}

fn budget(name: &str, app: &str, rule: serde_json::Value) -> PodDisruptionBudget {
    let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
    spec.as_object_mut().unwrap().extend(rule.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Wait until the budget's status is processed for its generation and `ok`.
async fn wait_status(env: &Env, name: &str, what: &str, ok: impl Fn(&PodDisruptionBudgetStatus) -> bool) -> PodDisruptionBudgetStatus {
    let api: Api<PodDisruptionBudget> = env.api("default");
    let r = testkit::wait_for_or(TIMEOUT, what, || async {
        let b = api.get(name).await.ok()?;
        let s = b.status?;
        (s.observed_generation == b.metadata.generation && ok(&s)).then_some(s)
    })
    .await;
    match r {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}; last status {:?}\ncontroller-manager log:\n{}",
            api.get(name).await.ok().and_then(|b| b.status),
            env.cm.log_tail(4000)
        ),
    }
}

fn allowed_condition(s: &PodDisruptionBudgetStatus) -> (String, String) {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

/// A client that does not retry 429s itself: kube's default client retries
/// them for minutes, and a refused eviction is what these tests look for.
async fn no_retry_client(env: &Env) -> kube::Client {
    let mut config = apimachinery::kubeconfig::client_config(Some(&env.kubeconfig)).await.expect("kubeconfig");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// Act as the kubelet until `n` pods matching `selector` are Ready (a
/// status patch racing the pod's creation may be lost).
async fn ready_pods(env: &Env, selector: &str, n: usize) {
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    testkit::wait_for_or(TIMEOUT, &format!("{n} Ready pods {selector}"), || async {
        let live = env.live_pods("default", selector).await;
        if live.len() == n && live.iter().all(ready) {
            return Some(());
        }
        env.set_pods("default", selector, "Running", true).await;
        None
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

fn too_many_requests(r: &Result<kube::core::Status, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 429)
}

/// Conformance: "PodDisruptionBudget: Status updates": the controller
/// fills expected/desired/current and disruptionsAllowed; an eviction spends
/// the one allowed disruption, the next is refused with 429, and once the
/// replacement is Ready the budget allows one again.
#[tokio::test]
async fn pod_disruption_budget_status_updates_and_evictions_spend_the_budget() {
    let env = Env::start(&[]).await;
    let rs_api: Api<ReplicaSet> = env.api("default");
    rs_api.create(&PostParams::default(), &replicaset("web", 3)).await.unwrap();
    ready_pods(&env, "app=web", 3).await;
    let pdbs: Api<PodDisruptionBudget> = env.api("default");
    pdbs.create(&PostParams::default(), &budget("web-pdb", "web", json!({"minAvailable": 2}))).await.unwrap();
    let s = wait_status(&env, "web-pdb", "1 disruption allowed of 3 healthy", |s| s.disruptions_allowed == 1).await;
    assert_eq!((s.expected_pods, s.desired_healthy, s.current_healthy), (3, 2, 3));
    assert_eq!(allowed_condition(&s), ("True".into(), "SufficientPods".into()));
    let out = env.kubectl_ok(&["get", "pdb", "web-pdb"]).await;
    assert!(out.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(3) == Some("1")), "ALLOWED DISRUPTIONS: {out}");

    let pods: Api<Pod> = Api::namespaced(no_retry_client(&env).await, "default");
    let names: Vec<String> = env.live_pods("default", "app=web").await.iter().map(|p| p.name_any()).collect();
    pods.evict(&names[0], &EvictParams::default()).await.expect("the first eviction is allowed");
    let refused = pods.evict(&names[1], &EvictParams::default()).await;
    assert!(too_many_requests(&refused), "the budget is spent: {refused:?}");
    let s = wait_status(&env, "web-pdb", "no disruption allowed while the replacement is not ready", |s| {
        s.disruptions_allowed == 0 && s.current_healthy == 2
    })
    .await;
    assert_eq!(allowed_condition(&s), ("False".into(), "InsufficientPods".into()));

    // The ReplicaSet replaces the evicted pod; once it is Ready, one more is allowed.
    testkit::wait_for_or(TIMEOUT, "a replacement pod", || async {
        let live = env.live_pods("default", "app=web").await;
        (live.len() == 3 && !live.iter().any(|p| p.name_any() == names[0])).then_some(())
    })
    .await
    .unwrap();
    ready_pods(&env, "app=web", 3).await;
    let s = wait_status(&env, "web-pdb", "one disruption allowed again", |s| s.disruptions_allowed == 1 && s.current_healthy == 3).await;
    assert!(s.disrupted_pods.unwrap_or_default().is_empty(), "the evicted pod left disruptedPods");
    pods.evict(&names[1], &EvictParams::default()).await.expect("allowed again");
}

/// Conformance: "PodDisruptionBudget: block an eviction until the PDB is
/// updated to allow it": maxUnavailable 0 refuses, raising it to 1 allows
/// once the controller has observed the new generation.
#[tokio::test]
async fn pod_disruption_budget_blocks_an_eviction_until_updated_to_allow_it() {
    let env = Env::start(&[]).await;
    let rs_api: Api<ReplicaSet> = env.api("default");
    rs_api.create(&PostParams::default(), &replicaset("db", 2)).await.unwrap();
    ready_pods(&env, "app=db", 2).await;
    let pdbs: Api<PodDisruptionBudget> = env.api("default");
    pdbs.create(&PostParams::default(), &budget("db-pdb", "db", json!({"maxUnavailable": 0}))).await.unwrap();
    let s = wait_status(&env, "db-pdb", "processed, nothing allowed", |s| s.current_healthy == 2).await;
    assert_eq!((s.expected_pods, s.desired_healthy, s.disruptions_allowed), (2, 2, 0));
    let pods: Api<Pod> = Api::namespaced(no_retry_client(&env).await, "default");
    let victim = env.live_pods("default", "app=db").await[0].name_any();
    assert!(too_many_requests(&pods.evict(&victim, &EvictParams::default()).await));

    // 50% of the ReplicaSet's 2 rounds up to 1.
    pdbs.patch("db-pdb", &PatchParams::default(), &Patch::Merge(json!({"spec": {"maxUnavailable": "50%"}})))
        .await
        .unwrap();
    let s = wait_status(&env, "db-pdb", "1 allowed at the new generation", |s| s.disruptions_allowed == 1).await;
    assert_eq!(s.desired_healthy, 1);
    pods.evict(&victim, &EvictParams::default()).await.expect("allowed after the update");
}

/// A budget over pods whose controller has no scale subresource (a Job)
/// cannot compute a percentage: it fails safe, allowing no disruption, and
/// says why in the condition, as upstream's failSafe.
#[tokio::test]
async fn pod_disruption_budget_over_a_job_fails_safe() {
    let env = Env::start(&[]).await;
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch"},
        "spec": {"parallelism": 1, "completions": 1, "template": {"metadata": {"labels": {"app": "batch"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    env.api::<Job>("default").create(&PostParams::default(), &job).await.unwrap();
    ready_pods(&env, "app=batch", 1).await;
    let pdbs: Api<PodDisruptionBudget> = env.api("default");
    pdbs.create(&PostParams::default(), &budget("batch-pdb", "batch", json!({"maxUnavailable": 1}))).await.unwrap();
    let r = testkit::wait_for_or(TIMEOUT, "SyncFailed condition", || async {
        let s = pdbs.get("batch-pdb").await.ok()?.status?;
        let c = s.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed")?.clone();
        (c.reason == "SyncFailed").then_some((s, c))
    })
    .await;
    let (s, c) = r.unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(c.status, "False");
    assert_eq!(c.message, "jobs.batch does not implement the scale subresource");
    let events: Api<k8s_openapi::api::core::v1::Event> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "a CalculateExpectedPodCountFailed event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.involved_object.name.as_deref() == Some("batch-pdb") && e.reason.as_deref() == Some("CalculateExpectedPodCountFailed"))
            .then_some(())
    })
    .await
    .unwrap();
}
