//! Integration tests of the kubelet against a real containerd, real CNI
//! plugins and a local registry. No apiserver: pods go to the workers directly.

mod harness;

use std::sync::Arc;

use harness::{phase, pod, Node};
use testkit::Registry;
use tokio::sync::OnceCell;

static REGISTRY: OnceCell<Arc<Registry>> = OnceCell::const_new();

async fn registry() -> Arc<Registry> {
    REGISTRY.get_or_init(|| async { Arc::new(Registry::start_with_images().await) }).await.clone()
}

/// [sig-node] Pods should be submitted and removed: the walking skeleton.
#[tokio::test(flavor = "multi_thread")]
async fn pod_runs_busybox_and_reports_running_with_ip() {
    let node = Node::start(registry().await).await;
    let p = pod(r#"
metadata: {name: bb}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from $(hostname); sleep 3600"]
"#);
    node.run(&p).await;
    let st = node.wait_status("bb", 60, "pod Running", |s| (phase(s) == "Running").then(|| s.clone())).await;
    let ip = st.pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.99."), "{ip}");
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready, "{:#?}", node.history("bb"));
    assert!(cs.container_id.as_ref().unwrap().starts_with("containerd://"));
    assert!(cs.image_id.contains("@sha256:"), "{}", cs.image_id);
    let ready = st.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}
