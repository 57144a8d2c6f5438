//! The walking skeleton on a whole cluster (etcd, apiserver, scheduler,
//! this controller-manager, a kubelet with containerd): a Deployment's pods
//! end up Running and `kubectl rollout status` succeeds; deleting it
//! removes its ReplicaSet and pods.

use std::time::Duration;

use testkit::{Cluster, ClusterOptions};

/// Conformance: "Deployment, completes the lifecycle of a Deployment" (create, roll out, delete).
#[tokio::test]
async fn deployment_runs_on_a_kubelet_and_is_collected() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let ok = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move {
            match cluster.kubectl_ok(args).await {
                Ok(out) => out,
                Err(e) => {
                    cluster.print_logs();
                    panic!("kubectl {args:?}: {e}")
                }
            }
        }
    };
    ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    ])
    .await;
    ok(&["rollout", "status", "deployment/web", "--timeout=180s"]).await;
    let phases = ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.phase}"]).await;
    assert_eq!(phases.split_whitespace().filter(|p| *p == "Running").count(), 2, "{phases}");
    ok(&["delete", "deployment", "web"]).await;
    let client = cluster.client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "default");
    testkit::wait_for_or(Duration::from_secs(120), "pods of the deleted deployment gone", || async {
        pods.list(&kube::api::ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        cluster.print_logs();
        panic!("{e}")
    });
}
