//! The control loops. Each module is one upstream controller: a pure
//! `plan` from observed state to actions, with tests beside it, and a thin
//! `register` that wires informers, a work queue and the kube client.

pub mod clusterroleaggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod replicationcontroller;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod volume;

use kube::Client;

use crate::metrics::Metrics;
use crate::options::Options;

/// What every controller gets at start.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub metrics: Metrics,
    pub opts: Options,
    /// Per-controller clients under --use-service-account-credentials.
    pub credentials: crate::credentials::ControllerClients,
}

/// Errors of one sync; the runtime logs them and retries with back-off.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("could not encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("API request timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// How long one write may take before the sync gives up and backs off; a
/// hung request must not hold a key (and its controller's progress) forever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Run one API call with [`REQUEST_TIMEOUT`].
pub async fn timed<T>(
    fut: impl std::future::Future<Output = std::result::Result<T, kube::Error>>,
) -> Result<std::result::Result<T, kube::Error>> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| SyncError::Timeout(REQUEST_TIMEOUT))
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Is this API error a 404 (the object is already gone)?
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Upstream's slow-start batch sizes for creating `n` children: 1, 2, 4, ...
/// so that a broken template fails after one request, not `n`.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = n;
    let mut size = 1;
    while left > 0 {
        let b = size.min(left);
        out.push(b);
        left -= b;
        size *= 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(1000).iter().sum::<usize>(), 1000);
    }
}
