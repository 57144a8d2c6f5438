//! Integration tests of the kubelet against a real containerd, real CNI
//! plugins and a local registry. No apiserver: pods go to the workers directly.

mod containers;
mod harness;
mod pod_lifecycle;
mod port_forward;
mod probes;
mod restarts;
mod server;
use std::sync::Arc;

use harness::Node;
use testkit::Registry;
use tokio::sync::OnceCell;

static REGISTRY: OnceCell<Arc<Registry>> = OnceCell::const_new();

async fn registry() -> Arc<Registry> {
    REGISTRY
        .get_or_init(|| async { Arc::new(Registry::start_with_images().await) })
        .await
        .clone()
}

fn terminated(
    s: &k8s_openapi::api::core::v1::PodStatus,
    i: usize,
) -> Option<k8s_openapi::api::core::v1::ContainerStateTerminated> {
    s.container_statuses
        .as_ref()?
        .get(i)?
        .state
        .as_ref()?
        .terminated
        .clone()
}

fn waiting_reason(s: &k8s_openapi::api::core::v1::PodStatus, i: usize) -> Option<String> {
    s.container_statuses
        .as_ref()?
        .get(i)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn terminated_named(
    s: &k8s_openapi::api::core::v1::PodStatus,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::ContainerStateTerminated> {
    s.container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)?
        .state
        .as_ref()?
        .terminated
        .clone()
}

/// Logs (tailLines, timestamps, limitBytes, previous), exec with exit
/// codes, /pods, /metrics and client-certificate authentication.
#[tokio::test(flavor = "multi_thread")]
async fn logs_and_exec_through_the_kubelet_server() {
    let node = Node::start(registry().await).await;
    server::logs_and_exec_through_the_kubelet_server(&node).await;
}

/// pods/portforward: SPDY/3.1 streams reach nginx in the pod's network namespace, and a
/// closed port is reported on the error stream.
#[tokio::test(flavor = "multi_thread")]
async fn port_forward_through_the_kubelet_server() {
    let node = Node::start(registry().await).await;
    port_forward::spdy_port_forward_reaches_nginx_inside_the_pods_network_namespace(&node).await;
}
