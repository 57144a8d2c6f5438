//! Integration tests of the CronJob and ReplicationController loops against
//! a real apiserver and etcd (no scheduler, no kubelets: the tests finish
//! pods themselves). The CronJobs run every minute, so each test waits for
//! up to two scheduled times; they wait on what the controller wrote, never
//! on the clock.

mod common;

use std::time::Duration;

use common::{Env, TIMEOUT};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::ResourceExt;
use serde_json::json;

/// Two scheduled minutes and the controllers' work after them.
const TWO_TICKS: Duration = Duration::from_secs(180);

fn cronjob(name: &str, policy: &str, extra: serde_json::Value) -> CronJob {
    let mut v = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": policy,
            "jobTemplate": {"metadata": {"labels": {"cron": name}}, "spec": {"template": {
                "metadata": {"labels": {"cron": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]}}}}}
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(v).unwrap()
}

async fn jobs_of(env: &Env, name: &str) -> Vec<Job> {
    let api: Api<Job> = env.api("default");
    api.list(&ListParams::default().labels(&format!("cron={name}")))
        .await
        .map(|l| l.items.into_iter().filter(|j| j.metadata.deletion_timestamp.is_none()).collect())
        .unwrap_or_default()
}

async fn reasons_for(env: &Env, name: &str) -> Vec<String> {
    let api: Api<Event> = env.api("default");
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.involved_object.kind.as_deref() == Some("CronJob") && e.involved_object.name.as_deref() == Some(name))
                .filter_map(|e| e.reason)
                .collect()
        })
        .unwrap_or_default()
}

fn active(cj: &CronJob) -> usize {
    cj.status.as_ref().and_then(|s| s.active.as_ref()).map_or(0, Vec::len)
}

async fn wait<T, F, Fut>(env: &Env, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    testkit::wait_for_or(TWO_TICKS, what, f)
        .await
        .unwrap_or_else(|e| panic!("{e}\ncontroller-manager log:\n{}", env.cm.log_tail(6000)))
}

/// Conformance: "CronJob AllowConcurrent", "CronJob ForbidConcurrent" and
/// "CronJob ReplaceConcurrent", side by side: the jobs never finish, so
/// each policy meets a running job at the second scheduled time.
#[tokio::test]
async fn cronjob_concurrency_policies() {
    let env = Env::start(&[]).await;
    let api: Api<CronJob> = env.api("default");
    for (name, policy) in [("allow", "Allow"), ("forbid", "Forbid"), ("replace", "Replace")] {
        api.create(&PostParams::default(), &cronjob(name, policy, json!({}))).await.unwrap();
    }
    let first = wait(&env, "a first job under Replace", || async {
        let cj = api.get("replace").await.ok()?;
        cj.status?.active?.first()?.name.clone()
    })
    .await;
    // Allow: two jobs run at once, both in status.active.
    let allow = wait(&env, "two active jobs under Allow", || async {
        let cj = api.get("allow").await.ok()?;
        (active(&cj) == 2).then_some(cj)
    })
    .await;
    let s = allow.status.unwrap();
    assert!(s.last_schedule_time.is_some());
    let jobs = jobs_of(&env, "allow").await;
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        let o = &j.owner_references()[0];
        assert_eq!((o.kind.as_str(), o.controller, o.block_owner_deletion), ("CronJob", Some(true), Some(true)));
        assert!(j.annotations().contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp"));
        assert!(j.name_any().strip_prefix("allow-").is_some_and(|m| m.parse::<i64>().is_ok()), "{}", j.name_any());
    }
    assert!(reasons_for(&env, "allow").await.iter().filter(|r| *r == "SuccessfulCreate").count() >= 2);

    // Forbid: the second time is skipped while the first job runs.
    wait(&env, "JobAlreadyActive under Forbid", || async {
        reasons_for(&env, "forbid").await.iter().any(|r| r == "JobAlreadyActive").then_some(())
    })
    .await;
    assert_eq!(jobs_of(&env, "forbid").await.len(), 1);
    assert_eq!(active(&api.get("forbid").await.unwrap()), 1);

    // Replace: the running job is deleted and a new one takes its place.
    wait(&env, "the first job replaced", || async {
        let cj = api.get("replace").await.ok()?;
        let now = cj.status?.active?;
        (now.len() == 1 && now[0].name.as_deref() != Some(first.as_str())).then_some(())
    })
    .await;
    assert!(reasons_for(&env, "replace").await.iter().any(|r| r == "SuccessfulDelete"));
    assert!(jobs_of(&env, "replace").await.iter().all(|j| j.name_any() != first));
}

/// Conformance: "CronJob Suspend"; with the history limit and
/// lastSuccessfulTime of a CronJob whose jobs succeed: a suspended CronJob starts nothing; a
/// manually created job (`kubectl create job --from=cronjob/...`) is left
/// to run; finished jobs beyond successfulJobsHistoryLimit are deleted.
#[tokio::test]
async fn cronjob_suspend_history_and_manual_jobs() {
    let env = Env::start(&[]).await;
    let api: Api<CronJob> = env.api("default");
    api.create(&PostParams::default(), &cronjob("paused", "Allow", json!({"suspend": true}))).await.unwrap();
    api.create(&PostParams::default(), &cronjob("kept", "Forbid", json!({"successfulJobsHistoryLimit": 1})))
        .await
        .unwrap();
    env.kubectl_ok(&["create", "job", "by-hand", "--from=cronjob/paused"]).await;
    let jobs: Api<Job> = env.api("default");
    let manual = jobs.get("by-hand").await.unwrap();
    assert_eq!(manual.annotations().get("cronjob.kubernetes.io/instantiate").map(String::as_str), Some("manual"));

    // Every pod of "kept" succeeds, as a kubelet would report it.
    let done = wait(&env, "two successful runs of kept", || async {
        env.set_pods("default", "cron=kept", "Succeeded", false).await;
        let cj = api.get("kept").await.ok()?;
        let events = reasons_for(&env, "kept").await;
        let created = events.iter().filter(|r| *r == "SuccessfulCreate").count();
        let deleted = events.iter().any(|r| r == "SuccessfulDelete");
        (created >= 2 && deleted && cj.status.as_ref()?.last_successful_time.is_some()).then_some(cj)
    })
    .await;
    assert!(reasons_for(&env, "kept").await.iter().any(|r| r == "SawCompletedJob"));
    let left = wait(&env, "one successful job kept", || async {
        env.set_pods("default", "cron=kept", "Succeeded", false).await;
        let left = jobs_of(&env, "kept").await;
        let succeeded = left.iter().filter(|j| j.status.as_ref().and_then(|s| s.succeeded) == Some(1)).count();
        (succeeded == 1).then_some(left)
    })
    .await;
    assert!(left.len() <= 2, "{:?}", left.iter().map(|j| j.name_any()).collect::<Vec<_>>());
    assert!(done.status.unwrap().last_schedule_time.is_some());

    // The suspended CronJob started nothing; its manual job still runs.
    let paused = jobs_of(&env, "paused").await;
    assert_eq!(paused.iter().map(|j| j.name_any()).collect::<Vec<_>>(), vec!["by-hand"]);
    let cj = api.get("paused").await.unwrap();
    assert_eq!(active(&cj), 0);
    assert!(cj.status.and_then(|s| s.last_schedule_time).is_none());
    assert!(reasons_for(&env, "paused").await.iter().any(|r| r == "UnexpectedJob"));

    // Deleting the CronJob collects its jobs.
    api.delete("kept", &DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() })
        .await
        .unwrap();
    wait(&env, "jobs of the deleted cronjob collected", || async { jobs_of(&env, "kept").await.is_empty().then_some(()) }).await;
}

fn rc(name: &str, replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"app": name},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    }))
    .unwrap()
}

/// Conformance: "Replication Controller, adopt matching pods", "Replication
/// Controller, release pods", the controller's half of "Replication
/// Controller, get and update ReplicationController scale" and "Garbage
/// Collector, delete replication controller, propagation policy
/// background": pods, their ownership and the RC's status, with kubelets
/// played by the test.
#[tokio::test]
async fn replicationcontroller_lifecycle_adoption_and_release() {
    let env = Env::start(&[]).await;
    let pods: Api<Pod> = env.api("default");
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "rc1"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let api: Api<ReplicationController> = env.api("default");
    let created = api.create(&PostParams::default(), &rc("rc1", 3)).await.unwrap();
    let live = env.wait_pods("default", "app=rc1", 3).await;
    assert!(live.iter().any(|p| p.name_any() == "orphan"), "the matching orphan was adopted");
    for p in &live {
        let o = &p.owner_references()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str(), o.controller), ("ReplicationController", created.uid().unwrap().as_str(), Some(true)));
    }
    env.set_pods("default", "app=rc1", "Running", true).await;
    let st = testkit::wait_for_or(TIMEOUT, "rc status counts ready pods", || async {
        let s = api.get("rc1").await.ok()?.status?;
        (s.ready_replicas == Some(3) && s.available_replicas == Some(3) && s.fully_labeled_replicas == Some(3)).then_some(s)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    assert_eq!(st.replicas, 3);
    assert_eq!(st.observed_generation, created.metadata.generation);

    env.kubectl_ok(&["scale", "rc/rc1", "--replicas=1"]).await;
    env.wait_pods("default", "app=rc1", 1).await;

    let kept = env.live_pods("default", "app=rc1").await.remove(0);
    env.kubectl_ok(&["label", "pod", &kept.name_any(), "app=gone", "--overwrite"]).await;
    env.wait_pods("default", "app=rc1", 1).await;
    testkit::wait_for_or(TIMEOUT, "released pod loses its owner reference", || async {
        let p = pods.get(&kept.name_any()).await.ok()?;
        p.owner_references().is_empty().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));

    // The garbage collector deletes the pods of a deleted RC.
    let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    api.delete("rc1", &background).await.unwrap();
    env.wait_pods("default", "app=rc1", 0).await;
}

fn failure(rc: &ReplicationController) -> Option<String> {
    rc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .and_then(|c| c.reason.clone())
}

/// Conformance: "Replication Controller, check for issues like exceeding
/// allocated quota": pods beyond a quota of two are refused, the RC shows
/// ReplicaFailure, and the condition goes once it is scaled to fit.
#[tokio::test]
async fn replicationcontroller_surfaces_exceeded_quota() {
    let env = Env::start(&[]).await;
    let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "condition-test"},
        "spec": {"hard": {"pods": "2"}}
    }))
    .unwrap();
    env.api("default").create(&PostParams::default(), &quota).await.unwrap();
    let api: Api<ReplicationController> = env.api("default");
    // Two first, then a third: the apiserver's quota counts usage from its
    // caches, so creates racing in one batch could all pass.
    api.create(&PostParams::default(), &rc("condition-test", 2)).await.unwrap();
    env.wait_pods("default", "app=condition-test", 2).await;
    env.kubectl_ok(&["scale", "rc/condition-test", "--replicas=3"]).await;
    testkit::wait_for_or(TIMEOUT, "ReplicaFailure FailedCreate", || async {
        let rc = api.get("condition-test").await.ok()?;
        (failure(&rc).as_deref() == Some("FailedCreate")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}
{}", env.cm.log_tail(4000)));
    env.kubectl_ok(&["scale", "rc/condition-test", "--replicas=2"]).await;
    testkit::wait_for_or(TIMEOUT, "ReplicaFailure cleared", || async {
        let rc = api.get("condition-test").await.ok()?;
        (failure(&rc).is_none() && rc.status?.replicas == 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}
{}", env.cm.log_tail(4000)));
}
