//! Node failure: after `kill -9` of one kubelet its node goes NotReady and
//! the Deployment's pods come back Running on the other node. Its own
//! cluster, since killing a kubelet would disturb other tests.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::pods::{is_active_running, node_name, wait_pods};
use e2e::TestNs;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use testkit::{wait_for_or, Cluster, ClusterOptions};

/// "Pod Eviction, Toleration limits" in its default form: with
/// --node-monitor-grace-period=10s and default not-ready/unreachable
/// tolerations of 10s, the pods of a dead node are replaced on the live one.
#[tokio::test]
async fn conformance_pod_eviction_dead_kubelet_node_not_ready_and_pods_rescheduled() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        controller_manager_args: vec!["--node-monitor-grace-period=10s".into()],
        apiserver_args: vec![
            "--default-not-ready-toleration-seconds=10".into(),
            "--default-unreachable-toleration-seconds=10".into(),
        ],
        ..Default::default()
    })
    .await;
    let mut cluster = cluster;
    let ns = TestNs::new(&cluster, "nodefail").await;
    let ns_name = ns.name.clone();
    ns.apply_manifest("deployment-web.yaml").await;
    let before = wait_pods(
        &ns.pods(),
        "app=web",
        Duration::from_secs(120),
        "3 Running",
        |ps| ps.iter().filter(|p| is_active_running(p)).count() == 3,
    )
    .await;
    let used: BTreeSet<String> = before.iter().map(|p| node_name(p).to_string()).collect();
    let victim = if used.contains("node-1") {
        "node-1"
    } else {
        "node-0"
    };
    let survivor = if victim == "node-1" {
        "node-0"
    } else {
        "node-1"
    };
    drop(ns);

    let killed_at = Instant::now();
    cluster
        .node_mut(victim)
        .expect("victim node")
        .kill_kubelet();

    let ns = TestNs::existing(&cluster, &ns_name).await;
    let nodes: Api<Node> = Api::all(ns.client.clone());
    wait_for_or(
        Duration::from_secs(60),
        &format!("{victim} NotReady"),
        || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get(victim).await.ok()?;
                (!testkit::cluster::node_is_ready(&n)).then_some(())
            }
        },
    )
    .await
    .unwrap();
    let not_ready_after = killed_at.elapsed();

    // Pods on the dead node stay Terminating (no kubelet confirms them
    // gone); the ReplicaSet replaces them with Running pods on the survivor.
    let left = Duration::from_secs(60).saturating_sub(killed_at.elapsed());
    wait_pods(
        &ns.pods(),
        "app=web",
        left,
        &format!("3 Running on {survivor} within 60s of kill -9"),
        |ps| {
            let active: Vec<_> = ps.iter().filter(|p| is_active_running(p)).collect();
            active.len() == 3 && active.iter().all(|p| node_name(p) == survivor)
        },
    )
    .await;
    eprintln!(
        "node failure: {victim} NotReady {:.1}s after kill -9; pods back Running on {survivor} {:.1}s after kill -9",
        not_ready_after.as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    // kubectl shows NotReady for Ready=False and Ready=Unknown alike
    // (upstream's node printer: "Not" + condition type).
    let out = ns.kubectl_ok(&["get", "node", victim]).await;
    let rows = e2e::table::parse(&out);
    assert_eq!(e2e::table::cell(&rows[0], "STATUS"), "NotReady", "{out}");
}
