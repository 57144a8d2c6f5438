//! The kubelet or containerd restarting under running pods, and the
//! sandbox failing when a host port is taken.

use crate::harness::{phase, pod, Node};
use crate::{registry, waiting_reason};

/// A restarted kubelet adopts running containers without restarting them,
/// and removes the containers of pods that no longer exist.
#[tokio::test(flavor = "multi_thread")]
async fn restarted_kubelet_adopts_containers_and_removes_orphans() {
    let node = Node::start(registry().await).await;
    let keep = pod(r#"
metadata: {name: keep}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    let gone = pod(r#"
metadata: {name: gone}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&keep).await;
    node.run(&gone).await;
    let before = node
        .wait_status("keep", 60, "Running", |s| {
            (phase(s) == "Running").then(|| s.container_statuses.clone().unwrap()[0].clone())
        })
        .await;
    node.wait_status("gone", 60, "Running", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let node = node.restart_kubelet();
    let live: std::collections::HashSet<String> = [keep.metadata.uid.clone().unwrap()].into();
    kubelet::pod::worker::remove_orphans(&node.k, &live).await;
    node.run(&keep).await;
    let after = node
        .wait_status("keep", 30, "status after restart", |s| {
            s.container_statuses.clone().map(|c| c[0].clone())
        })
        .await;
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.restart_count, 0);
    assert!(after.ready);
    assert_eq!(
        node.container_count(gone.metadata.uid.as_deref().unwrap())
            .await,
        0
    );
    assert!(!node
        .k
        .pod_dir(gone.metadata.uid.as_deref().unwrap())
        .exists());
}

/// containerd restarted under the kubelet: running pods keep their
/// containers and new pods still start once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn containerd_restart_under_the_kubelet() {
    let mut node = Node::start(registry().await).await;
    let a = pod(r#"
metadata: {name: before}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&a).await;
    let before = node
        .wait_status("before", 60, "Running", |s| {
            (phase(s) == "Running").then(|| s.container_statuses.clone().unwrap()[0].clone())
        })
        .await;
    node.env.containerd.process().restart().unwrap();
    let b = pod(r#"
metadata: {name: after}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"]}
"#);
    node.run(&b).await;
    node.wait_status("after", 60, "new pod Running after restart", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let now = node
        .statuses
        .latest("before")
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .clone();
    assert_eq!(now.container_id, before.container_id);
    assert_eq!(now.restart_count, 0);
    assert!(now.state.unwrap().running.is_some());
}

/// A hostPort that is already taken keeps the pod in ContainerCreating
/// (sandbox creation fails) while a free one runs.
#[tokio::test(flavor = "multi_thread")]
async fn taken_host_port_keeps_pod_creating() {
    let node = Node::start(registry().await).await;
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // Below the kernel's ephemeral range, so no later test's free_port() can land on a port
    // this pod's DNAT rule redirects.
    let free = (20_000..30_000)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .unwrap();
    let mk = |name: &str, port: u16| {
        pod(&format!(
            r#"
metadata: {{name: {name}}}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    ports: [{{containerPort: 80, hostPort: {port}}}]
"#
        ))
    };
    node.run(&mk("clash", port)).await;
    node.run(&mk("fine", free)).await;
    node.wait_status("fine", 60, "Running", |s| {
        (phase(s) == "Running").then_some(())
    })
    .await;
    let st = node
        .wait_status("clash", 30, "ContainerCreating", |s| {
            (waiting_reason(s, 0).as_deref() == Some("ContainerCreating")).then(|| s.clone())
        })
        .await;
    assert_eq!(phase(&st), "Pending");
    let ready = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "PodReadyToStartContainers")
        .unwrap();
    assert_eq!(ready.status, "False");
    drop(taken);
}
