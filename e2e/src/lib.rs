//! Helpers for the end-to-end tests in `e2e/tests/`: one cluster per test
//! binary, a namespace per test, and waits on pods through the kube client.
//! The tests themselves drive the cluster with the real kubectl.1.33.

pub mod manifests;
pub mod namespace;
pub mod pods;
pub mod table;

pub use namespace::TestNs;

use std::time::Duration;

use testkit::{Cluster, ClusterOptions};
use tokio::sync::OnceCell;

/// The binary's shared 2-node cluster: started by the first test that asks,
/// killed when the test binary exits. A failed start is remembered, so the
/// other tests fail at once with the same message instead of retrying.
pub async fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceCell<Result<Cluster, String>> = OnceCell::const_new();
    let res = CLUSTER
        .get_or_init(|| async {
            Cluster::try_start(ClusterOptions {
                nodes: 2,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
        })
        .await;
    match res {
        Ok(c) => c,
        Err(e) => panic!("the shared e2e cluster did not start: {e}"),
    }
}

/// Default deadline for a pod to reach Running (image pull + start).
pub const POD_START: Duration = Duration::from_secs(90);
