//! Integration tests of the control loops against a real apiserver and
//! etcd (no scheduler, no kubelets). Named after the upstream conformance
//! tests they prove where one fits.

mod common;

use std::time::Duration;

use common::{Env, TIMEOUT};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::ResourceExt;
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    }))
    .unwrap()
}

/// Conformance: "ReplicaSet, completes the scaling of a ReplicaSet subresource"
/// and adoption/release of matching pods.
#[tokio::test]
async fn replicaset_scaling_adoption_and_release() {
    let env = Env::start(&[]).await;
    let pods: Api<Pod> = env.api("default");
    // An orphan that matches is adopted instead of creating a new pod.
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "rs1"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let rs_api: Api<ReplicaSet> = env.api("default");
    let rs = rs_api.create(&PostParams::default(), &replicaset("rs1", 3)).await.unwrap();
    let live = env.wait_pods("default", "app=rs1", 3).await;
    assert!(live.iter().all(|p| p
        .owner_references()
        .iter()
        .any(|o| o.uid == rs.uid().unwrap() && o.controller == Some(true))));
    assert!(live.iter().any(|p| p.name_any() == "orphan"), "the matching orphan was adopted");

    // Scale up and down through the scale subresource, as kubectl does.
    env.kubectl_ok(&["scale", "rs/rs1", "--replicas=5"]).await;
    env.wait_pods("default", "app=rs1", 5).await;
    env.kubectl_ok(&["scale", "rs/rs1", "--replicas=1"]).await;
    env.wait_pods("default", "app=rs1", 1).await;

    // Relabelling a pod releases it; the ReplicaSet replaces it.
    let kept = env.live_pods("default", "app=rs1").await.remove(0);
    env.kubectl_ok(&["label", "pod", &kept.name_any(), "app=gone", "--overwrite"]).await;
    env.wait_pods("default", "app=rs1", 1).await;
    testkit::wait_for_or(TIMEOUT, "released pod loses its owner reference", || async {
        let p = pods.get(&kept.name_any()).await.ok()?;
        p.owner_references().is_empty().then_some(())
    })
    .await
    .unwrap();

    // Status follows readiness.
    env.set_pods("default", "app=rs1", "Running", true).await;
    testkit::wait_for_or(TIMEOUT, "readyReplicas=1", || async {
        let s = rs_api.get("rs1").await.ok()?.status?;
        (s.ready_replicas == Some(1) && s.available_replicas == Some(1) && s.replicas == 1).then_some(())
    })
    .await
    .unwrap();
}

/// Conformance: "Deployment RollingUpdate" plus `kubectl rollout undo`.
#[tokio::test]
async fn deployment_rolling_update_and_undo() {
    let env = Env::start(&[]).await;
    env.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
        "--",
        "sleep",
        "3600",
    ])
    .await;
    let deploys: Api<Deployment> = env.api("default");
    env.wait_pods("default", "app=web", 3).await;
    env.set_pods("default", "app=web", "Running", true).await;
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    env.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
    ])
    .await;

    // Roll to a new image, acting as the kubelet for each new pod, and check
    // that no more than replicas+maxSurge pods ever exist and that available
    // pods never drop below replicas-maxUnavailable.
    env.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:2"]).await;
    let done = testkit::wait_for_or(TIMEOUT, "rollout to busybox:2", || async {
        let pods = env.live_pods("default", "app=web").await;
        assert!(pods.len() <= 4, "maxSurge=1 exceeded: {} pods", pods.len());
        let ready = pods
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        assert!(ready >= 3 || pods.len() < 3, "maxUnavailable=0 violated: {ready} ready");
        env.set_pods("default", "app=web", "Running", true).await;
        let d = deploys.get("web").await.ok()?;
        let s = d.status?;
        let images: Vec<String> = pods.iter().filter_map(|p| p.spec.as_ref()?.containers[0].image.clone()).collect();
        (s.updated_replicas == Some(3)
            && s.replicas == Some(3)
            && s.available_replicas == Some(3)
            && images.iter().all(|i| i == "busybox:2"))
        .then_some(())
    })
    .await;
    done.unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    let history = env.kubectl_ok(&["rollout", "history", "deployment/web"]).await;
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo goes back to the first template and makes it revision 3.
    env.kubectl_ok(&["rollout", "undo", "deployment/web"]).await;
    testkit::wait_for_or(TIMEOUT, "undo to busybox", || async {
        env.set_pods("default", "app=web", "Running", true).await;
        let d = deploys.get("web").await.ok()?;
        let pods = env.live_pods("default", "app=web").await;
        let rev = d.annotations().get("deployment.kubernetes.io/revision").cloned();
        let s = d.status?;
        (rev.as_deref() == Some("3")
            && s.updated_replicas == Some(3)
            && s.replicas == Some(3)
            && pods.len() == 3
            && pods
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox")))
        .then_some(())
    })
    .await
    .unwrap();
    let rss: Api<ReplicaSet> = env.api("default");
    assert_eq!(
        rss.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "undo reuses the first ReplicaSet"
    );
}

/// Conformance: "Garbage Collector, delete deployment, propagation policy background".
#[tokio::test]
async fn garbage_collector_background_deletes_dependents() {
    let env = Env::start(&[]).await;
    env.kubectl_ok(&["create", "deployment", "bg", "--image=busybox", "--replicas=2"])
        .await;
    env.wait_pods("default", "app=bg", 2).await;
    env.kubectl_ok(&["delete", "deployment", "bg"]).await;
    env.wait_pods("default", "app=bg", 0).await;
    let rss: Api<ReplicaSet> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "replicaset collected", || async {
        rss.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await
    .unwrap();
}

/// Conformance: "Garbage Collector, delete deployment, propagation policy orphan".
#[tokio::test]
async fn garbage_collector_orphan_keeps_dependents() {
    let env = Env::start(&[]).await;
    env.kubectl_ok(&["create", "deployment", "or", "--image=busybox", "--replicas=2"])
        .await;
    env.wait_pods("default", "app=or", 2).await;
    let rss: Api<ReplicaSet> = env.api("default");
    testkit::wait_for(TIMEOUT, || async {
        (!rss.list(&ListParams::default()).await.ok()?.items.is_empty()).then_some(())
    })
    .await
    .unwrap();
    env.kubectl_ok(&["delete", "deployment", "or", "--cascade=orphan"]).await;
    let deploys: Api<Deployment> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "deployment gone", || async {
        deploys.get_opt("or").await.ok()?.is_none().then_some(())
    })
    .await
    .unwrap();
    let rs = testkit::wait_for_or(TIMEOUT, "replicaset orphaned", || async {
        let rs = rss.list(&ListParams::default()).await.ok()?.items.pop()?;
        rs.owner_references().is_empty().then_some(rs)
    })
    .await
    .unwrap();
    assert!(rs.metadata.deletion_timestamp.is_none());
    assert_eq!(env.live_pods("default", "app=or").await.len(), 2);
}

/// Foreground: the owner stays (with the foregroundDeletion finalizer)
/// until its blocking dependents are gone.
#[tokio::test]
async fn garbage_collector_foreground_waits_for_dependents() {
    let env = Env::start(&[]).await;
    let rs_api: Api<ReplicaSet> = env.api("default");
    rs_api.create(&PostParams::default(), &replicaset("fg", 3)).await.unwrap();
    env.wait_pods("default", "app=fg", 3).await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    rs_api.delete("fg", &dp).await.unwrap();
    testkit::wait_for_or(TIMEOUT, "owner and dependents gone", || async {
        let pods: Api<Pod> = env.api("default");
        let left = pods.list(&ListParams::default().labels("app=fg")).await.ok()?.items.len();
        let owner = rs_api.get_opt("fg").await.ok()?;
        if let Some(o) = &owner {
            // While dependents remain, the owner must still be there.
            assert!(o.finalizers().iter().any(|f| f == "foregroundDeletion") || left == 0);
        }
        (owner.is_none() && left == 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

/// Conformance: "Garbage Collector, dependency cycle".
#[tokio::test]
async fn garbage_collector_dependency_cycle() {
    let env = Env::start(&[]).await;
    let pods: Api<Pod> = env.api("default");
    let mk = |name: &str| -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap()
    };
    let a = pods.create(&PostParams::default(), &mk("cycle-a")).await.unwrap();
    let b = pods.create(&PostParams::default(), &mk("cycle-b")).await.unwrap();
    let owner = |p: &Pod| json!([{"apiVersion": "v1", "kind": "Pod", "name": p.name_any(), "uid": p.uid(), "blockOwnerDeletion": true}]);
    let pp = kube::api::PatchParams::default();
    pods.patch(
        "cycle-a",
        &pp,
        &kube::api::Patch::Merge(json!({"metadata": {"ownerReferences": owner(&b)}})),
    )
    .await
    .unwrap();
    pods.patch(
        "cycle-b",
        &pp,
        &kube::api::Patch::Merge(json!({"metadata": {"ownerReferences": owner(&a)}})),
    )
    .await
    .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    pods.delete("cycle-a", &dp).await.unwrap();
    testkit::wait_for_or(TIMEOUT, "both pods of the cycle collected", || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

/// Conformance: "namespace-deletion-removes-pods" and "-services", plus the
/// default ServiceAccount.
#[tokio::test]
async fn namespace_deletion_removes_pods_and_services() {
    let env = Env::start(&[]).await;
    env.kubectl_ok(&["create", "namespace", "doomed"]).await;
    let sas: Api<ServiceAccount> = env.api("doomed");
    testkit::wait_for_or(TIMEOUT, "default service account", || async {
        sas.get_opt("default").await.ok()?.map(|_| ())
    })
    .await
    .unwrap();
    env.kubectl_ok(&["-n", "doomed", "create", "deployment", "web", "--image=busybox", "--replicas=2"])
        .await;
    env.kubectl_ok(&["-n", "doomed", "create", "service", "clusterip", "web", "--tcp=80:80"])
        .await;
    env.wait_pods("doomed", "app=web", 2).await;
    env.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]).await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    testkit::wait_for_or(Duration::from_secs(90), "namespace gone", || async {
        nss.get_opt("doomed").await.ok()?.is_none().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let pods: Api<Pod> = env.api("doomed");
    assert!(pods.list(&ListParams::default()).await.map(|l| l.items.is_empty()).unwrap_or(true));
}

/// A ReplicaSet must not stall waiting for pods it created but never saw:
/// here a busy deleter removes them as they appear (so some are gone before
/// the controller's cache shows them), then it must still converge, scale
/// to 0 and back.
#[tokio::test]
async fn replicaset_converges_when_its_pods_vanish_unseen() {
    let env = Env::start(&[]).await;
    let rs_api: Api<ReplicaSet> = env.api("default");
    rs_api.create(&PostParams::default(), &replicaset("big", 300)).await.unwrap();
    let pods: Api<Pod> = env.api("default");
    let mut deleted = 0;
    let started = std::time::Instant::now();
    while deleted < 200 && started.elapsed() < Duration::from_secs(20) {
        let lp = ListParams::default().labels("app=big");
        for p in pods.list(&lp).await.map(|l| l.items).unwrap_or_default() {
            if p.metadata.deletion_timestamp.is_none()
                && pods.delete(&p.name_any(), &DeleteParams::default().grace_period(0)).await.is_ok()
            {
                deleted += 1;
            }
        }
    }
    eprintln!("deleted {deleted} pods while the ReplicaSet was creating them");
    env.wait_pods("default", "app=big", 300).await;
    env.kubectl_ok(&["scale", "rs/big", "--replicas=0"]).await;
    env.wait_pods("default", "app=big", 0).await;
    env.kubectl_ok(&["scale", "rs/big", "--replicas=300"]).await;
    env.wait_pods("default", "app=big", 300).await;
    testkit::wait_for_or(TIMEOUT, "status.replicas=300", || async {
        (rs_api.get("big").await.ok()?.status?.replicas == 300).then_some(())
    })
    .await
    .unwrap();
}

/// A self-owning object and a two-object cycle, deleted in the foreground
/// and in the background, are collected, and the collector still serves an
/// ordinary deletion afterwards.
#[tokio::test]
async fn garbage_collector_survives_ownership_cycles() {
    let env = Env::start(&[]).await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = env.api("default");
    let pp = kube::api::PatchParams::default();
    let mk = |name: &str| -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})).unwrap()
    };
    let owner = |c: &k8s_openapi::api::core::v1::ConfigMap| {
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": c.name_any(), "uid": c.uid(), "blockOwnerDeletion": true}])
    };
    let gone = |names: Vec<String>| {
        let cms = cms.clone();
        async move {
            for n in &names {
                if cms.get_opt(n).await.ok()?.is_some() {
                    return None;
                }
            }
            Some(())
        }
    };
    for policy in [PropagationPolicy::Foreground, PropagationPolicy::Background] {
        let tag = format!("{policy:?}").to_lowercase();
        let (me, a, b) = (format!("self-{tag}"), format!("a-{tag}"), format!("b-{tag}"));
        let s = cms.create(&PostParams::default(), &mk(&me)).await.unwrap();
        cms.patch(&me, &pp, &kube::api::Patch::Merge(json!({"metadata": {"ownerReferences": owner(&s)}})))
            .await
            .unwrap();
        let ca = cms.create(&PostParams::default(), &mk(&a)).await.unwrap();
        let cb = cms.create(&PostParams::default(), &mk(&b)).await.unwrap();
        cms.patch(&a, &pp, &kube::api::Patch::Merge(json!({"metadata": {"ownerReferences": owner(&cb)}})))
            .await
            .unwrap();
        cms.patch(&b, &pp, &kube::api::Patch::Merge(json!({"metadata": {"ownerReferences": owner(&ca)}})))
            .await
            .unwrap();
        let dp = DeleteParams {
            propagation_policy: Some(policy.clone()),
            ..Default::default()
        };
        cms.delete(&me, &dp).await.unwrap();
        cms.delete(&a, &dp).await.unwrap();
        testkit::wait_for_or(TIMEOUT, &format!("{tag}: the self-owner and the cycle collected"), || {
            gone(vec![me.clone(), a.clone(), b.clone()])
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    }
    // The collector still works for everyone else.
    let rs_api: Api<ReplicaSet> = env.api("default");
    rs_api.create(&PostParams::default(), &replicaset("after", 2)).await.unwrap();
    env.wait_pods("default", "app=after", 2).await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    rs_api.delete("after", &dp).await.unwrap();
    env.wait_pods("default", "app=after", 0).await;
    testkit::wait_for_or(TIMEOUT, "replicaset after collected", || async {
        rs_api.get_opt("after").await.ok()?.is_none().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

/// A terminating namespace says in its conditions what is still left: here
/// a ConfigMap held by a finalizer. Once the finalizer goes, so does the
/// namespace.
#[tokio::test]
async fn namespace_conditions_name_what_remains() {
    let env = Env::start(&[]).await;
    env.kubectl_ok(&["create", "namespace", "held"]).await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = env.api("held");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "keep", "finalizers": ["example.com/hold"]}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    env.kubectl_ok(&["delete", "namespace", "held", "--wait=false"]).await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    testkit::wait_for_or(TIMEOUT, "NamespaceFinalizersRemaining names the finalizer", || async {
        let ns = nss.get_opt("held").await.ok()??;
        let status = ns.status?;
        let conds = status.conditions?;
        let has = |ty: &str, st: &str, reason: &str, text: &str| {
            conds.iter().any(|c| {
                c.type_ == ty
                    && c.status == st
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref().is_some_and(|m| m.contains(text))
            })
        };
        (status.phase.as_deref() == Some("Terminating")
            && has("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain", "example.com/hold in 1 resource instances")
            && has("NamespaceContentRemaining", "True", "SomeResourcesRemain", "configmaps. has 1 resource instances"))
        .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    cms.patch(
        "keep",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    testkit::wait_for_or(TIMEOUT, "namespace gone", || async {
        nss.get_opt("held").await.ok()?.is_none().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}
