//! Integration tests of the Job, DaemonSet, StatefulSet, Endpoints and
//! node lifecycle loops against a real apiserver and etcd (Node objects,
//! no kubelets: the tests set pod status themselves).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{set_pod_status, Env, TIMEOUT};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

fn job(name: &str, completions: i32, parallelism: i32, backoff: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}
    }))
    .unwrap()
}

fn condition(j: &Job, ty: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == ty && c.status == "True"))
}

/// Conformance: "Jobs, manage lifecycle" (completions with parallelism).
#[tokio::test]
async fn job_runs_to_completions() {
    let env = Env::start(&[]).await;
    let jobs: Api<Job> = env.api("default");
    jobs.create(&PostParams::default(), &job("done", 3, 2, 6)).await.unwrap();
    let pods: Api<Pod> = env.api("default");
    let j = testkit::wait_for_or(TIMEOUT, "job Complete", || async {
        let live = env.live_pods("default", "batch.kubernetes.io/job-name=done").await;
        let running: Vec<&Pod> = live
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded"))
            .collect();
        assert!(running.len() <= 2, "parallelism 2 exceeded: {}", running.len());
        for p in running {
            set_pod_status(&pods, &p.name_any(), "Succeeded", false, "10.0.0.1").await;
        }
        let j = jobs.get("done").await.ok()?;
        condition(&j, "Complete").then_some(j)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let s = j.status.unwrap();
    assert_eq!(s.succeeded, Some(3));
    assert!(s.completion_time.is_some());
}

/// Conformance: "Jobs, completion after task failure" and backoffLimit.
#[tokio::test]
async fn job_fails_after_backoff_limit() {
    let env = Env::start(&[]).await;
    let jobs: Api<Job> = env.api("default");
    jobs.create(&PostParams::default(), &job("doomed", 1, 1, 0)).await.unwrap();
    let pods: Api<Pod> = env.api("default");
    let p = env.wait_pods("default", "batch.kubernetes.io/job-name=doomed", 1).await.remove(0);
    set_pod_status(&pods, &p.name_any(), "Failed", false, "10.0.0.1").await;
    let j = testkit::wait_for_or(TIMEOUT, "job Failed", || async {
        let j = jobs.get("doomed").await.ok()?;
        condition(&j, "Failed").then_some(j)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let c = j.status.unwrap().conditions.unwrap();
    assert!(c
        .iter()
        .any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("BackoffLimitExceeded")));
}

/// Conformance: "DaemonSet-Creation" and "DaemonSet-NodeSelection" over 3 nodes.
#[tokio::test]
async fn daemonset_one_pod_per_node() {
    let env = Env::start(&[]).await;
    env.create_nodes(&["n1", "n2", "n3"]).await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let dss: Api<DaemonSet> = env.api("default");
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let pods = env.wait_pods("default", "app=agent", 3).await;
    let nodes: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| {
            let terms = &p
                .spec
                .as_ref()?
                .affinity
                .as_ref()?
                .node_affinity
                .as_ref()?
                .required_during_scheduling_ignored_during_execution
                .as_ref()?
                .node_selector_terms;
            terms[0].match_fields.as_ref()?[0].values.as_ref()?.first().cloned()
        })
        .collect();
    assert_eq!(nodes, ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect());
    env.set_pods("default", "app=agent", "Running", true).await;
    testkit::wait_for_or(TIMEOUT, "daemonset status", || async {
        let s = dss.get("agent").await.ok()?.status?;
        (s.desired_number_scheduled == 3 && s.number_ready == 3 && s.updated_number_scheduled == Some(3)).then_some(())
    })
    .await
    .unwrap();
    // Node selection: a selector no node matches removes every pod.
    env.kubectl_ok(&[
        "patch",
        "ds",
        "agent",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"disk":"ssd"}}}}}"#,
    ])
    .await;
    env.wait_pods("default", "app=agent", 0).await;
    env.kubectl_ok(&["label", "node", "n2", "disk=ssd"]).await;
    env.wait_pods("default", "app=agent", 1).await;
}

/// Conformance: "StatefulSet, Scaling" (ordered creation, stable names).
#[tokio::test]
async fn statefulset_ordered_scaling() {
    let env = Env::start(&[]).await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let api: Api<StatefulSet> = env.api("default");
    api.create(&PostParams::default(), &sts).await.unwrap();
    // Only web-0 until it is ready.
    env.wait_pods("default", "app=web", 1).await;
    let pods: Api<Pod> = env.api("default");
    for i in 0..3 {
        let name = format!("web-{i}");
        testkit::wait_for_or(TIMEOUT, &name, || async { pods.get_opt(&name).await.ok()?.map(|_| ()) })
            .await
            .unwrap();
        assert_eq!(env.live_pods("default", "app=web").await.len(), i + 1, "ordered: one at a time");
        set_pod_status(&pods, &name, "Running", true, &format!("10.0.0.{}", i + 1)).await;
    }
    testkit::wait_for_or(TIMEOUT, "readyReplicas 3", || async {
        (api.get("web").await.ok()?.status?.ready_replicas == Some(3)).then_some(())
    })
    .await
    .unwrap();
    env.kubectl_ok(&["scale", "sts/web", "--replicas=1"]).await;
    let left = env.wait_pods("default", "app=web", 1).await;
    assert_eq!(left[0].name_any(), "web-0");
}

/// Endpoints and EndpointSlices follow pod readiness, ports by name.
#[tokio::test]
async fn endpoints_track_ready_and_not_ready_pods() {
    let env = Env::start(&[]).await;
    let pods: Api<Pod> = env.api("default");
    for (name, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        let p: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        set_pod_status(&pods, name, "Running", name == "a", ip).await;
    }
    env.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:http"]).await;
    env.kubectl_ok(&["patch", "svc", "web", "-p", r#"{"spec":{"selector":{"app":"web"}}}"#])
        .await;
    let eps: Api<Endpoints> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "endpoints", || async {
        let e = eps.get_opt("web").await.ok()??;
        let s = e.subsets?.pop()?;
        let ready: Vec<String> = s.addresses?.iter().map(|a| a.ip.clone()).collect();
        let not_ready: Vec<String> = s.not_ready_addresses?.iter().map(|a| a.ip.clone()).collect();
        (ready == ["10.0.0.1"] && not_ready == ["10.0.0.2"] && s.ports?[0].port == 8080).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let slices: Api<EndpointSlice> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "endpointslice", || async {
        let s = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .ok()?
            .items
            .pop()?;
        (s.endpoints.len() == 2 && s.ports?[0].port == Some(8080)).then_some(())
    })
    .await
    .unwrap();
}

/// A node whose Lease stops being renewed goes Unknown, is tainted
/// unreachable, and its pods are evicted when their toleration ends.
#[tokio::test]
async fn node_lifecycle_unreachable_node_evicts_pods() {
    let env = Env::start(&["--node-monitor-grace-period", "3s", "--node-monitor-period", "1s"]).await;
    env.create_nodes(&["dead"]).await;
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "dead", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 40, "renewTime": "2020-01-01T00:00:00.000000Z"}
    }))
    .unwrap();
    let leases: Api<Lease> = env.api("kube-node-lease");
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
        "spec": {"nodeName": "dead", "containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}
    }))
    .unwrap();
    let pods: Api<Pod> = env.api("default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    set_pod_status(&pods, "victim", "Running", true, "10.0.0.9").await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    testkit::wait_for_or(TIMEOUT, "node Unknown and tainted", || async {
        let n = nodes.get("dead").await.ok()?;
        let unknown = n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "Unknown");
        let taints = n.spec?.taints.unwrap_or_default();
        let tainted = ["NoExecute", "NoSchedule"]
            .iter()
            .all(|e| taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == *e));
        (unknown && tainted).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    testkit::wait_for_or(Duration::from_secs(30), "victim evicted", || async {
        match pods.get_opt("victim").await.ok()? {
            None => Some(()),
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}

/// Bad input: a Deployment whose selector does not select its template is
/// refused with 422 Invalid, naming the field, as upstream.
#[tokio::test]
async fn deployment_with_mismatched_selector_is_invalid() {
    let env = Env::start(&[]).await;
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "odd"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "one"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = env.api("default");
    let err = api.create(&PostParams::default(), &d).await.expect_err("must be refused");
    let kube::Error::Api(status) = err else { panic!("not an API error: {err}") };
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert!(
        causes.iter().any(|c| c.field == "spec.template.metadata.labels"),
        "{causes:?}"
    );
    assert!(env.live_pods("default", "app=other").await.is_empty());
}

/// Sum of the apiserver's apiserver_request_total for pod creations, all codes.
async fn pod_create_requests(env: &Env) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = env.client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("verb=\"create\"") && l.contains("resource=\"pods\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Bad input: a ReplicaSet whose pods are always refused (an unknown
/// priorityClassName fails pod admission, not ReplicaSet validation) gets
/// FailedCreate events and backs off instead of hammering the apiserver.
#[tokio::test]
async fn replicaset_whose_pods_are_refused_backs_off() {
    let env = Env::start(&[]).await;
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "refused"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "refused"}},
            "template": {"metadata": {"labels": {"app": "refused"}},
                "spec": {"priorityClassName": "no-such-class", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = env.api("default");
    let before = pod_create_requests(&env).await;
    api.create(&PostParams::default(), &rs).await.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = env.api("default");
    testkit::wait_for_or(TIMEOUT, "FailedCreate event", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedCreate") && e.involved_object.name.as_deref() == Some("refused"))
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    testkit::wait_for_or(TIMEOUT, "ReplicaFailure condition", || async {
        let s = api.get("refused").await.ok()?.status?;
        s.conditions?
            .iter()
            .any(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .then_some(())
    })
    .await
    .unwrap();
    // Observe a fixed window: what is asserted is the number of attempts in
    // it (a hot loop makes thousands), not how long anything took.
    let window = Duration::from_secs(30);
    let start = pod_create_requests(&env).await;
    tokio::time::sleep(window).await;
    let attempts = pod_create_requests(&env).await - start;
    eprintln!(
        "pod create attempts for a refused template: {attempts} in {}s ({:.2}/s; {} before the window)",
        window.as_secs(),
        attempts as f64 / window.as_secs_f64(),
        start - before
    );
    assert!(attempts < 60, "{attempts} pod create attempts in {window:?}: a hot loop");
    // /metrics counts the failed syncs and shows the queue.
    let errors = env
        .cm_metric("controller_reconcile_errors_total{name=\"replicaset-controller\"}")
        .await
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "failed syncs counted: {errors}\n{}", env.cm_metrics().await);
    assert!(env.cm_metric("workqueue_depth{name=\"replicaset-controller\"}").await.is_some());
    assert!(env.live_pods("default", "app=refused").await.is_empty());
}

/// Pod GC: a pod bound to a node that does not exist is deleted, one on a
/// node that exists is kept.
#[tokio::test]
async fn pod_gc_deletes_pods_of_missing_nodes() {
    let env = Env::start(&[]).await;
    env.create_nodes(&["alive"]).await;
    let pods: Api<Pod> = env.api("default");
    for (name, node) in [("stranded", "ghost"), ("housed", "alive")] {
        let p: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    testkit::wait_for_or(TIMEOUT, "pod on the missing node deleted", || async {
        match pods.get_opt("stranded").await.ok()? {
            None => Some(()),
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
    let housed = pods.get("housed").await.unwrap();
    assert!(housed.metadata.deletion_timestamp.is_none());
}

/// StatefulSet scale-down is ordered: the highest ordinal is deleted first,
/// and the next only once it is gone. Bound pods make each deletion
/// graceful, so the test plays the kubelet that confirms it.
#[tokio::test]
async fn statefulset_deletes_in_reverse_order() {
    let env = Env::start(&[]).await;
    env.create_nodes(&["n1"]).await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let api: Api<StatefulSet> = env.api("default");
    api.create(&PostParams::default(), &sts).await.unwrap();
    let pods: Api<Pod> = env.api("default");
    for i in 0..3 {
        let name = format!("db-{i}");
        testkit::wait_for_or(TIMEOUT, &name, || async { pods.get_opt(&name).await.ok()?.map(|_| ()) })
            .await
            .unwrap();
        set_pod_status(&pods, &name, "Running", true, &format!("10.0.1.{}", i + 1)).await;
    }
    env.kubectl_ok(&["scale", "sts/db", "--replicas=0"]).await;
    for i in (0..3).rev() {
        let name = format!("db-{i}");
        let marked = testkit::wait_for_or(TIMEOUT, &format!("{name} marked for deletion"), || async {
            let l = pods.list(&ListParams::default().labels("app=db")).await.ok()?;
            let marked: Vec<String> = l
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .map(|p| p.name_any())
                .collect();
            (!marked.is_empty()).then_some(marked)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
        assert_eq!(marked, vec![name.clone()], "one at a time, highest ordinal first");
        pods.delete(&name, &kube::api::DeleteParams::default().grace_period(0)).await.unwrap();
        testkit::wait_for_or(TIMEOUT, &format!("{name} gone"), || async {
            pods.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await
        .unwrap();
    }
}

/// DaemonSet RollingUpdate: a new template replaces every pod, never
/// leaving more than maxUnavailable (1) node without a ready pod.
#[tokio::test]
async fn daemonset_rolling_update_respects_max_unavailable() {
    let env = Env::start(&[]).await;
    env.create_nodes(&["r1", "r2", "r3"]).await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "roll"},
        "spec": {"selector": {"matchLabels": {"app": "roll"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "roll"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let dss: Api<DaemonSet> = env.api("default");
    dss.create(&PostParams::default(), &ds).await.unwrap();
    env.wait_pods("default", "app=roll", 3).await;
    env.set_pods("default", "app=roll", "Running", true).await;
    testkit::wait_for_or(TIMEOUT, "3 ready", || async {
        (dss.get("roll").await.ok()?.status?.number_ready == 3).then_some(())
    })
    .await
    .unwrap();
    env.kubectl_ok(&["set", "image", "ds/roll", "c=nginx"]).await;
    let image = |p: &Pod| p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
    testkit::wait_for_or(TIMEOUT, "every pod on the new template", || async {
        let live = env.live_pods("default", "app=roll").await;
        let ready = live
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        assert!(ready >= 2, "more than maxUnavailable nodes without a ready pod: {ready} ready");
        // Play the kubelet for the replacements.
        env.set_pods("default", "app=roll", "Running", true).await;
        (live.len() == 3 && live.iter().all(|p| image(p).as_deref() == Some("nginx"))).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cm.log_tail(4000)));
}
