//! End-to-end scenarios on one shared 2-node cluster, driven by the real
//! kubectl.1.33. Each test works in its own namespace. Names say what each
//! proves and, where one matches, which upstream conformance test.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::pods::{
    container_status, is_active_running, is_running, node_name, phase, pod_ip, uid, wait_pod,
    wait_pods,
};
use e2e::table;
use e2e::{shared_cluster, TestNs, POD_START};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use testkit::wait_for_or;

/// "Conformance tests minimum number of nodes" + the Node part of issue 2:
/// every node registers and is Ready, and `get nodes -o wide` shows its
/// internal IP and `containerd://<version>`.
#[tokio::test]
async fn conformance_minimum_nodes_every_node_ready_with_internal_ip_and_containerd_runtime() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "nodes").await;
    let out = ns.kubectl_ok(&["get", "nodes", "-o", "wide"]).await;
    let rows = table::parse(&out);
    let names: BTreeSet<&str> = rows.iter().map(|r| table::cell(r, "NAME")).collect();
    assert_eq!(names, BTreeSet::from(["node-0", "node-1"]), "{out}");
    for row in &rows {
        assert_eq!(table::cell(row, "STATUS"), "Ready", "{out}");
        assert_eq!(table::cell(row, "INTERNAL-IP"), "127.0.0.1", "{out}");
        let runtime = table::cell(row, "CONTAINER-RUNTIME");
        let version = runtime.strip_prefix("containerd://").unwrap_or("");
        assert!(!version.is_empty(), "runtime column is {runtime:?}:\n{out}");
    }
    // The same through the API: Ready=True and a containerd runtime version.
    let nodes: Api<Node> = Api::all(ns.client.clone());
    for n in nodes.list(&ListParams::default()).await.unwrap() {
        let info = n
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .expect("nodeInfo");
        assert!(
            info.container_runtime_version.starts_with("containerd://"),
            "{info:?}"
        );
        assert!(testkit::cluster::node_is_ready(&n));
    }
}

/// "Pods, lifecycle" ([sig-node] Pods should be submitted and removed) and
/// "Pods, assigned hostip": apply → Running, logs, exec, and a delete that
/// returns only once the container is gone from containerd.
#[tokio::test]
async fn conformance_pods_lifecycle_apply_logs_exec_and_delete_waits_for_containers() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "podlife").await;
    ns.apply_manifest("pod.yaml").await;
    let pod = wait_pod(&ns.pods(), "busybox", POD_START, "Running", is_running).await;
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(pod_ip(&pod).is_some(), "a Running pod has an IP");

    let table_out = ns.kubectl_ok(&["get", "pods", "-o", "wide"]).await;
    let rows = table::parse(&table_out);
    assert_eq!(table::cell(&rows[0], "STATUS"), "Running", "{table_out}");
    assert_eq!(
        table::cell(&rows[0], "NODE"),
        node_name(&pod),
        "{table_out}"
    );

    // The container printed its hostname, which is the pod's name.
    let logs = wait_for_or(
        Duration::from_secs(20),
        "the container's output in logs",
        || async {
            let out = ns.kubectl(&["logs", "busybox"]).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.contains("hello from busybox").then_some(text)
        },
    )
    .await
    .unwrap();
    assert_eq!(logs.trim(), "hello from busybox");

    let hostname = ns
        .kubectl_ok(&["exec", "busybox", "--", "cat", "/etc/hostname"])
        .await;
    assert_eq!(hostname.trim(), "busybox");

    let pod_uid = uid(&pod);
    let node = cluster
        .node(node_name(&pod))
        .expect("pod's node is one of ours");
    let labels = node.containerd.container_labels().unwrap();
    assert!(
        labels
            .iter()
            .any(|l| l["io.kubernetes.pod.uid"] == pod_uid.as_str()),
        "the pod's container is in containerd: {labels:?}"
    );

    ns.kubectl_ok(&["delete", "pod", "busybox", "--wait=true", "--timeout=120s"])
        .await;
    // delete --wait returned: the container must already be gone.
    let labels = node.containerd.container_labels().unwrap();
    assert!(
        !labels
            .iter()
            .any(|l| l["io.kubernetes.pod.uid"] == pod_uid.as_str()),
        "container of deleted pod still in containerd: {labels:?}"
    );
    let out = ns.kubectl(&["get", "pod", "busybox"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

/// "Kubelet, failed pod, terminated reason" and the Never case of
/// "Container Runtime, Restart Policy, Pod Phases": exit 1 under
/// restartPolicy Never leaves the pod Failed with exit code 1, not restarted.
#[tokio::test]
async fn conformance_restart_policy_never_exit_1_leaves_pod_failed_with_exit_code_1() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "failnever").await;
    ns.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: fail-never
spec:
  restartPolicy: Never
  containers:
  - name: fail
    image: busybox
    command: ["sh", "-c", "echo about to fail; exit 1"]
"#,
    )
    .await;
    let pod = wait_pod(&ns.pods(), "fail-never", POD_START, "phase Failed", |p| {
        phase(p) == "Failed"
    })
    .await;
    let cs = container_status(&pod, "fail").expect("container status");
    let terminated = cs
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated state");
    assert_eq!(terminated.exit_code, 1);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    assert_eq!(cs.restart_count, 0);
    let out = ns.kubectl_ok(&["get", "pod", "fail-never"]).await;
    assert_eq!(
        table::cell(&table::parse(&out)[0], "STATUS"),
        "Error",
        "{out}"
    );
    let logs = ns.kubectl_ok(&["logs", "fail-never"]).await;
    assert_eq!(logs.trim(), "about to fail");
}

/// The Always case of "Container Runtime, Restart Policy, Pod Phases": a
/// container that keeps exiting 1 is restarted with back-off; restartCount
/// grows and kubectl shows CrashLoopBackOff.
#[tokio::test]
async fn conformance_restart_policy_always_restarts_and_shows_crash_loop_back_off() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "crashloop").await;
    ns.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  restartPolicy: Always
  containers:
  - name: crash
    image: busybox
    command: ["sh", "-c", "exit 1"]
"#,
    )
    .await;
    // Back-off is 10s, then 20s: two restarts fit well within two minutes.
    let pods = ns.pods();
    let pod = wait_pod(
        &pods,
        "crasher",
        Duration::from_secs(150),
        "restartCount >= 2 in CrashLoopBackOff",
        |p| {
            container_status(p, "crash")
                .map(|c| {
                    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
                    c.restart_count >= 2
                        && waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff")
                })
                .unwrap_or(false)
        },
    )
    .await;
    let cs = container_status(&pod, "crash").unwrap();
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 1);
    assert_eq!(
        phase(&pod),
        "Running",
        "a crash-looping Always pod stays Running"
    );

    let seen = wait_for_or(
        Duration::from_secs(60),
        "kubectl get showing CrashLoopBackOff",
        || async {
            let out = ns.kubectl(&["get", "pod", "crasher"]).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let rows = table::parse(&text);
            let row = rows.first()?;
            let restarts: u32 = table::cell(row, "RESTARTS")
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            (table::cell(row, "STATUS") == "CrashLoopBackOff" && restarts >= 2).then_some(text)
        },
    )
    .await;
    assert!(seen.is_ok(), "{seen:?}");
}

/// "Deployment RollingUpdate" and "Deployment, completes the scaling of a
/// Deployment subresource": 3 replicas spread over both nodes, scale to 5,
/// roll out a new image with `rollout status`, and deleting the Deployment
/// removes every pod.
#[tokio::test]
async fn conformance_deployment_spreads_scales_rolls_out_and_deletion_removes_pods() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "deploy").await;
    let pods = ns.pods();
    ns.apply_manifest("deployment-web.yaml").await;
    let running = wait_pods(
        &pods,
        "app=web",
        Duration::from_secs(120),
        "3 Running",
        |ps| ps.iter().filter(|p| is_active_running(p)).count() == 3,
    )
    .await;
    let nodes: BTreeSet<&str> = running
        .iter()
        .filter(|p| is_active_running(p))
        .map(node_name)
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "3 replicas on 2 nodes must use both: {nodes:?}"
    );

    ns.kubectl_ok(&["scale", "deployment/web", "--replicas=5"])
        .await;
    wait_pods(
        &pods,
        "app=web",
        Duration::from_secs(120),
        "5 Running",
        |ps| ps.iter().filter(|p| is_active_running(p)).count() == 5,
    )
    .await;

    ns.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:2.0"])
        .await;
    ns.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=240s"])
        .await;
    let after = wait_pods(
        &pods,
        "app=web",
        Duration::from_secs(120),
        "5 Running on nginx:2.0 and no others",
        |ps| {
            let active: Vec<_> = ps
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            active.len() == 5
                && active.iter().all(|p| {
                    is_running(p)
                        && p.spec
                            .as_ref()
                            .map(|s| s.containers[0].image.as_deref() == Some("nginx:2.0"))
                            .unwrap_or(false)
                })
        },
    )
    .await;
    let ip = pod_ip(&after[0]).expect("a Running pod has an IP");
    let page = ns
        .fetch_from_pod("fetch-v2", None, &format!("http://{ip}/"))
        .await;
    assert!(page.contains("version 2.0"), "{page}");

    ns.kubectl_ok(&["delete", "deployment", "web"]).await;
    wait_pods(
        &pods,
        "app=web",
        Duration::from_secs(120),
        "all gone",
        |ps| ps.is_empty(),
    )
    .await;
}

/// "Scheduler, resource limits": a pod asking for more cpu than any node has
/// stays Pending, and describe shows a FailedScheduling event.
#[tokio::test]
async fn conformance_scheduler_resource_limits_too_big_pod_stays_pending_with_failed_scheduling() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "unsched").await;
    ns.apply_yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: too-big
spec:
  containers:
  - name: big
    image: busybox
    command: ["sleep", "3600"]
    resources:
      requests:
        cpu: "1000"
"#,
    )
    .await;
    let pod = wait_pod(
        &ns.pods(),
        "too-big",
        Duration::from_secs(60),
        "PodScheduled=False Unschedulable",
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
                .unwrap_or(false)
        },
    )
    .await;
    assert_eq!(phase(&pod), "Pending");
    assert_eq!(node_name(&pod), "");
    let described = wait_for_or(
        Duration::from_secs(60),
        "FailedScheduling in describe",
        || async {
            let out = ns.kubectl(&["describe", "pod", "too-big"]).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.contains("FailedScheduling").then_some(text)
        },
    )
    .await
    .unwrap();
    assert!(described.contains("Insufficient cpu"), "{described}");
    let out = ns.kubectl_ok(&["get", "pod", "too-big"]).await;
    assert_eq!(
        table::cell(&table::parse(&out)[0], "STATUS"),
        "Pending",
        "{out}"
    );
}

/// "Networking, intra pod http": a busybox pod reaches a web pod's IP with
/// wget, from the same node and from the other node.
#[tokio::test]
async fn conformance_networking_intra_pod_http_same_node_and_across_nodes() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "net").await;
    ns.apply_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: node-0\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: nginx\n    image: nginx\n",
    )
    .await;
    let pods = ns.pods();
    let web = wait_pod(&pods, "web", POD_START, "Running with an IP", |p| {
        is_running(p) && pod_ip(p).is_some()
    })
    .await;
    let url = format!("http://{}/", pod_ip(&web).unwrap());
    for (client, node) in [("client-same", "node-0"), ("client-other", "node-1")] {
        let page = ns.fetch_from_pod(client, Some(node), &url).await;
        assert!(
            page.contains("Welcome to nginx!"),
            "{client} on {node} got: {page}"
        );
        let pod = pods.get(client).await.unwrap();
        assert_eq!(node_name(&pod), node);
    }
}

/// The example manifests work with `kubectl apply -f` as they are.
#[tokio::test]
async fn example_manifests_apply_as_is_and_do_what_they_say() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "manifests").await;
    let pods = ns.pods();

    ns.apply_manifest("job-pod.yaml").await;
    wait_pod(&pods, "countdown", POD_START, "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let logs = ns.kubectl_ok(&["logs", "countdown"]).await;
    assert_eq!(
        logs.lines().collect::<Vec<_>>(),
        vec!["3", "2", "1", "liftoff"]
    );
    let out = ns.kubectl_ok(&["get", "pod", "countdown"]).await;
    assert_eq!(
        table::cell(&table::parse(&out)[0], "STATUS"),
        "Completed",
        "{out}"
    );

    ns.apply_manifest("pod-full.yaml").await;
    wait_pod(&pods, "full", POD_START, "Running", is_running).await;
    let greeting = wait_for_or(Duration::from_secs(30), "reader's log", || async {
        let out = ns.kubectl(&["logs", "full", "-c", "reader"]).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("hello").then_some(text)
    })
    .await
    .unwrap();
    assert_eq!(greeting.trim(), "hello from full");

    // A namespace and a ConfigMap: applied without -n, as the README shows.
    let path = e2e::manifests::path("namespace-configmap.yaml");
    cluster
        .kubectl_ok(&[
            std::ffi::OsStr::new("apply"),
            "-f".as_ref(),
            path.as_os_str(),
        ])
        .await
        .unwrap();
    let color = cluster
        .kubectl_ok(&[
            "-n",
            "demo",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.color}",
        ])
        .await
        .unwrap();
    assert_eq!(color, "blue");
}

mod apps;
mod rbac;
mod dns;
mod serviceaccounts;
mod services;
mod subresources;
mod storage;
